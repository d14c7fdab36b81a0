"""Each service, started as an operator would, refuses an unsafe start-up with one line and exit status 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

# TensorFlow's native logger writes these at import on some CPUs (oneDNN on AVX-512) whatever TF_CPP_MIN_LOG_LEVEL
# says; they are TensorFlow's, not the service's.
NATIVE_LOG = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWEF]\d{4} \d\d:\d\d:\d\d)")


def service_lines(stderr: str) -> list[str]:
    return [line for line in stderr.strip().splitlines() if not NATIVE_LOG.match(line)]


@pytest.mark.parametrize("main", ["query_service.server", "trainer_service.server"])
def test_a_service_on_a_public_address_without_tokens_exits_with_one_line(main, tmp_path: Path):
    env = {
        **os.environ,
        "ALLOOP_STATE_DIR": str(tmp_path),
        "ALLOOP_QUERY_ADDRESS": "0.0.0.0:0",
        "ALLOOP_TRAINER_ADDRESS": "0.0.0.0:0",
    }
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
    done = subprocess.run(
        [sys.executable, "-m", main, "--redis-url", "redis://:pw@127.0.0.1:1/0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "process list" in done.stderr and "Traceback" not in done.stderr


def test_an_unknown_log_format_is_refused_with_one_line_naming_the_variable(tmp_path: Path):
    env = {**os.environ, "ALLOOP_STATE_DIR": str(tmp_path), "ALLOOP_LOG_FORMAT": "xml"}
    done = subprocess.run(
        [sys.executable, "-m", "query_service.server"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "ALLOOP_LOG_FORMAT='xml'; choose one of plain, json" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("main", "variable", "value", "message"),
    [
        (
            "query_service.server",
            "ALLOOP_LEASE_SECONDS",
            "five minutes",
            "ALLOOP_LEASE_SECONDS must be a number, got 'five minutes'",
        ),
        ("query_service.server", "ALLOOP_GRPC_WORKERS", "many", "ALLOOP_GRPC_WORKERS must be an integer, got 'many'"),
        (
            "trainer_service.server",
            "ALLOOP_RETRAIN_THRESHOLD",
            "1e3",
            "ALLOOP_RETRAIN_THRESHOLD must be an integer, got '1e3'",
        ),
        ("trainer_service.server", "ALLOOP_LINEAR_C", "nan", "ALLOOP_LINEAR_C must be a finite number"),
    ],
)
def test_a_malformed_number_is_refused_with_one_line_naming_the_variable(main, variable, value, message, tmp_path):
    env = {**os.environ, "ALLOOP_STATE_DIR": str(tmp_path), variable: value}
    done = subprocess.run([sys.executable, "-m", main], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert len(service_lines(done.stderr)) == 1, done.stderr


def test_a_linear_trainer_without_scikit_learn_is_refused_with_one_line(tmp_path: Path):
    shadow = tmp_path / "shadow" / "sklearn"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError('no sklearn here', name='sklearn')\n")
    env = {**os.environ, "ALLOOP_STATE_DIR": str(tmp_path), "PYTHONPATH": str(tmp_path / "shadow")}
    done = subprocess.run(
        [sys.executable, "-m", "trainer_service.server"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "pip install 'alloop[trainer]'" in done.stderr and "Traceback" not in done.stderr


def test_a_missing_data_file_is_refused_with_one_line_naming_the_variable(tmp_path: Path):
    env = {**os.environ, "ALLOOP_STATE_DIR": str(tmp_path), "ALLOOP_VAL_DATA": str(tmp_path / "nope.jsonl")}
    done = subprocess.run(
        [sys.executable, "-m", "trainer_service.server"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "ALLOOP_VAL_DATA (or its flag)" in done.stderr and "Traceback" not in done.stderr
