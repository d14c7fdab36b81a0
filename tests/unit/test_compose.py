"""The compose file is valid (Debian's docker-compose parses it; there is no Docker engine to run it here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_compose_file_is_valid_and_names_every_service() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--services"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {"redis", "trainer", "query"}


def test_compose_redis_is_persistent_and_password_protected() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "--appendonly" in text and "--requirepass" in text
    assert "REDIS_URL: redis://:" in text
