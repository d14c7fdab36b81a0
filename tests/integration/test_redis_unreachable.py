"""A service whose Redis cannot be reached from the start says so: NOT_SERVING on every health entry at once."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2

from alloop.store.connection import connect, free_port
from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc
from query_service.server import SERVICE_NAME as QUERY_SERVICE
from query_service.server import create_server as create_query_server
from tests.integration.generic_calls import health_status
from tests.integration.services import channel, wait_for

pytestmark = pytest.mark.integration
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_a_query_replica_without_redis_reports_not_serving_from_the_first_ping(query_settings):
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = replace(query_settings, common=replace(query_settings.common, redis_url=url))
    running = create_query_server(settings, connect(url, timeout=0.5))
    try:
        with channel(running.port) as ch:
            assert health_status(ch) == NOT_SERVING
            assert health_status(ch, QUERY_SERVICE) == NOT_SERVING
            with pytest.raises(grpc.RpcError) as err:
                grpc_query(ch)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        running.stop(0)


def grpc_query(ch: grpc.Channel) -> object:
    return query_pb2_grpc.QueryServiceStub(ch).Query(
        query_pb2.QueryRequest(pool="p", strategy=common_pb2.STRATEGY_ENTROPY, k=1), timeout=10
    )


def test_get_model_names_the_unreachable_redis_and_the_watcher_logs_no_traceback(query_settings, caplog):
    url = f"redis://127.0.0.1:{free_port()}/0"
    settings = replace(query_settings, common=replace(query_settings.common, redis_url=url))
    running = create_query_server(settings, connect(url, timeout=0.5))
    try:
        with channel(running.port) as ch:
            stub = query_pb2_grpc.QueryServiceStub(ch)
            with pytest.raises(grpc.RpcError) as err:
                stub.GetModel(query_pb2.GetModelRequest(), timeout=10).version
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "Redis" in err.value.details() and "no model version is published" not in err.value.details()
            wait_for(
                lambda: any("model watcher" in r.getMessage() for r in caplog.records),
                timeout=10,
                what="the watcher's retry logged",
            )
    finally:
        running.stop(0)
    watcher = [r for r in caplog.records if "model watcher" in r.getMessage()]
    assert watcher and all(r.exc_info is None for r in watcher)


def test_the_trainer_waits_for_redis_logging_one_line_per_try_without_the_password(tmp_path):
    env = {
        **os.environ,
        "ALLOOP_STATE_DIR": str(tmp_path),
        "ALLOOP_TRAINER_ADDRESS": "127.0.0.1:0",
        "REDIS_URL": f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "trainer_service.server"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        assert process.stdout is not None
        while len([line for line in lines if "cannot be used" in line]) < 2:
            line = process.stdout.readline()
            assert line, f"the trainer exited: {''.join(lines)}"
            lines.append(line)
        assert process.poll() is None  # still waiting, not dead
    finally:
        process.kill()
        process.wait(timeout=30)
    text = "".join(lines)
    assert "Traceback" not in text and "s3cret-pw" not in text
    assert "redis://:***@127.0.0.1:" in text and "ConnectionError" in text
