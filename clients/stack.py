"""A whole alloop stack on this machine: an embedded Redis and both services as child processes.

`make demo` and the benchmarks use it, so they exercise exactly what an operator runs (separate processes talking
gRPC and Redis), and everything started is stopped on exit, also on Ctrl-C or an error.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from alloop.store.connection import EmbeddedRedis, free_port


@dataclass(frozen=True)
class Stack:
    query: str
    trainer: str
    redis_url: str
    run_dir: Path
    query_pid: int = 0  # the first query replica's process, for benchmarks that read its memory
    replicas: tuple[str, ...] = ()  # every query replica's address (``query`` is the first)
    replica_pids: tuple[int, ...] = ()


def wait_serving(address: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    channel = grpc.insecure_channel(address)
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the service for {address} exited with {process.returncode}; see its log")
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.5)
    finally:
        channel.close()
    raise TimeoutError(f"service at {address} did not become healthy within {timeout:.0f}s")


def _replica_env(env: Mapping[str, str], address: str, *, first: bool) -> dict[str, str]:
    """A query replica's environment: its own address; a metrics endpoint (one port) only on the first."""
    out = {**env, "ALLOOP_QUERY_ADDRESS": address}
    if not first:
        out.pop("ALLOOP_METRICS_ADDRESS", None)
    return out


@contextmanager
def local_stack(run_dir: Path, data_dir: Path, env: Mapping[str, str], replicas: int = 1) -> Iterator[Stack]:
    """Start Redis, the trainer (on ``data_dir``'s initial/val/test files) and ``replicas`` query replicas sharing
    them; stop them all after."""
    run_dir.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    redis_server = EmbeddedRedis(run_dir / "redis", password=secrets.token_urlsafe(24)).start()
    try:
        addresses = tuple(f"127.0.0.1:{free_port()}" for _ in range(max(1, replicas)))
        stack = Stack(addresses[0], f"127.0.0.1:{free_port()}", redis_server.url, run_dir, replicas=addresses)
        full_env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            # One replica, driven by one client that waits for each version: a Query should rank with the version
            # just published however long scoring the pool takes, not fall back to the previous ranking.
            "ALLOOP_QUERY_SCORE_SECONDS": "3600",
            **env,
            "REDIS_URL": redis_server.url,
            "ALLOOP_STATE_DIR": str(run_dir),
            "ALLOOP_QUERY_ADDRESS": stack.query,
            "ALLOOP_TRAINER_ADDRESS": stack.trainer,
            "ALLOOP_INITIAL_DATA": str(data_dir / "initial.jsonl"),
            "ALLOOP_VAL_DATA": str(data_dir / "val.jsonl"),
            "ALLOOP_TEST_DATA": str(data_dir / "test.jsonl"),
        }
        logs = run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        services = [("trainer", "trainer_service.server", stack.trainer)]
        services += [
            ("query" if n == 0 else f"query-{n + 1}", "query_service.server", address)
            for n, address in enumerate(addresses)
        ]
        for name, module, address in services:
            with (logs / f"{name}.log").open("wb") as log_file:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", module],
                        env=_replica_env(full_env, address, first=address == addresses[0])
                        if module.startswith("query")
                        else full_env,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                    )
                )
        for (_, _, address), process in zip(services, processes, strict=True):
            wait_serving(address, 180, process)
        pids = tuple(process.pid for process in processes[1:])
        yield replace(stack, query_pid=pids[0], replica_pids=pids)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        redis_server.stop()
