"""Files that appear whole or not at all: the one place alloop writes a file atomically.

A reader (another replica, a restarted trainer, a benchmark that resumes) never sees half a file, and a crash
leaves either the old file or the new one. Version directories, which hold many files, are renamed into place as a
whole by :mod:`alloop.artifacts`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".tmp-"
"""What a temporary file's name starts with: directories that clean up after killed writers look for it."""


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary handle whose bytes replace ``path`` when the block ends without an exception.

    They go to a uniquely named temporary file in the same directory (``os.replace`` is atomic only within one file
    system), are fsynced, and the file is renamed over ``path``. On an exception the temporary file is removed and
    ``path`` is left as it was. The file gets the usual permissions (a plain ``open``, unlike ``mkstemp``)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f"{TEMP_PREFIX}{target.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        with temporary.open("xb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with suppress(FileNotFoundError):
            temporary.unlink()
        raise


__all__ = ["TEMP_PREFIX", "atomic_file"]
