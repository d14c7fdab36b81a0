"""Dependency floors that security rests on (the image locks: tests/unit/test_dockerfile.py)."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
KERAS_FLOOR = (3, 14, 1)  # earlier releases have published safe-mode bypasses (docs/security.md)


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_keras_floor_is_past_the_published_safe_mode_bypasses():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    keras = [d for d in deps if re.match(r"keras\b", d)]
    assert len(keras) == 1
    floor = re.search(r">=\s*([\d.]+)", keras[0])
    assert floor is not None and version(floor.group(1)) >= KERAS_FLOOR
