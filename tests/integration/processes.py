"""Services as real child processes, for tests that kill them (kill -9) or their Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]

TINY_ENV = {
    "ALLOOP_MODEL_FAMILY": "bilstm",  # the tiny BiLSTM: these tests are about processes and crashes, not models
    "ALLOOP_MAX_TOKENS": "200",
    "ALLOOP_SEQUENCE_LENGTH": "16",
    "ALLOOP_EMBEDDING_DIM": "8",
    "ALLOOP_LSTM_UNITS": "4",
    "ALLOOP_DENSE_UNITS": "4",
    "ALLOOP_EPOCHS": "3",
    "ALLOOP_BATCH_SIZE": "32",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONUNBUFFERED": "1",
}


def spawn(module: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env={**os.environ, **TINY_ENV, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def health(address: str, service: str = "", timeout: float = 1.0) -> int | None:
    """The health status of a service, or None when it does not answer."""
    with grpc.insecure_channel(address) as channel:
        try:
            return (
                health_pb2_grpc.HealthStub(channel)
                .Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
                .status
            )
        except grpc.RpcError:
            return None


def wait_healthy(address: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 90.0) -> bool:
    """True once SERVING; False if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        if health(address) == health_pb2.HealthCheckResponse.SERVING:
            return True
        time.sleep(0.2)
    raise AssertionError(f"{address} not healthy within {timeout}s")
