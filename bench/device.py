"""The machine a benchmark ran on, as every result file records it."""

from __future__ import annotations

import os
import platform


def device() -> str:
    return f"cpu ({os.cpu_count()} cores), {platform.machine()}, {platform.python_version()}"
