"""Dependency floors that security rests on, and the image's lock file that pins them with hashes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

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


def test_the_lock_pins_every_dependency_with_hashes_and_the_image_installs_it():
    lock = (ROOT / "requirements.lock").read_text()
    pins = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==([^\s;]+)", lock, flags=re.M | re.I))
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name = re.match(r"[A-Za-z0-9._-]+", dep).group(0).lower()  # type: ignore[union-attr]
        if "platform_machine != 'x86_64'" in dep:
            continue  # the lock is for linux/amd64, where tensorflow-cpu stands in for tensorflow
        assert name in pins, f"{name} is not pinned in requirements.lock (run `make lock`)"
    assert version(pins["keras"]) >= KERAS_FLOOR
    blocks = re.split(r"\n(?=[a-z0-9])", lock.split("\n\n", 1)[-1], flags=re.I)
    assert all("--hash=sha256:" in block for block in blocks if "==" in block)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in dockerfile
    assert "file://" not in lock and "/opt/" not in lock  # no index of this machine leaks into the image
