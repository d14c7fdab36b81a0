"""Each service, started as an operator would, refuses an unsafe start-up with one line and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("main", ["query_service.server", "trainer_service.server"])
def test_a_service_on_a_public_address_without_tokens_exits_with_one_line(main, tmp_path: Path):
    env = {**os.environ, "ALLOOP_STATE_DIR": str(tmp_path), "ALLOOP_QUERY_ADDRESS": "0.0.0.0:0",
           "ALLOOP_TRAINER_ADDRESS": "0.0.0.0:0"}
    env.pop("REDIS_URL", None)  # so a start-up that went ahead would create an embedded Redis in the state dir
    env.pop("ALLOOP_AUTH_TOKENS", None)
    env.pop("ALLOOP_ALLOW_INSECURE", None)
    done = subprocess.run([sys.executable, "-m", main], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if "refusing to serve" in line]
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "redis").exists()  # refused before anything started


@pytest.mark.parametrize("main", ["query_service.server", "trainer_service.server"])
def test_a_password_on_the_command_line_is_refused_with_one_line(main, tmp_path: Path):
    env = {**os.environ, "ALLOOP_STATE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", main, "--redis-url", "redis://:pw@127.0.0.1:1/0"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "process list" in done.stderr and "Traceback" not in done.stderr


def test_an_unknown_log_format_is_refused_with_one_line_naming_the_variable(tmp_path: Path):
    env = {**os.environ, "ALLOOP_STATE_DIR": str(tmp_path), "ALLOOP_LOG_FORMAT": "xml"}
    done = subprocess.run([sys.executable, "-m", "query_service.server"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "ALLOOP_LOG_FORMAT must be one of plain, json" in done.stderr
    assert "Traceback" not in done.stderr
