"""Open streams cannot freeze a replica: more streams than workers, and every other call still answers in time.

The query service runs with auth on and small limits (8 workers, 4 thread-holding streams, 12 health watches,
streams idle for 2 s cancelled). The attacker's streams travel on a channel of their own, as another client's
would; the probes (health ``Check``, ``GetModel``, ``Predict``) on another, each with a 5 s deadline.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from alloop.rpc.auth import Credentials
from alloop.rpc.limits import ServerLimits
from alloop.rpc.security import SecuritySettings
from alloop.rpc.serving import new_server
from alloop.v1 import query_pb2, query_pb2_grpc
from query_service.server import create_server as create_query_server
from tests.integration import models
from tests.integration.generic_calls import bearer
from tests.integration.services import channel, wait_for

pytestmark = pytest.mark.integration

WORKERS = 8
LIMITS = ServerLimits(workers=WORKERS, max_streams=4, max_watches=12, max_concurrent_rpcs=64, stream_idle_seconds=2.0)
TOKENS = {"labeler": "lab-token", "client": "cli-token"}
PROBE_DEADLINE = 5.0
STREAM_DEADLINE = 20.0  # the attacker's streams end by themselves, so a replica that does freeze fails the test


@pytest.fixture
def replica(query_settings, redis_client, keys) -> Iterator[tuple]:
    models.write_and_publish(redis_client, keys, query_settings.common.models_path, 1)
    security = SecuritySettings(auth=Credentials(tuple((token, role) for role, token in TOKENS.items())))
    running = create_query_server(replace(query_settings, security=security, limits=LIMITS), redis_client)
    wait_for(running.holder.current_or_none, timeout=30, what="version 1 served")
    attacker, prober = channel(running.port), channel(running.port)
    yield running, attacker, prober
    attacker.close()
    prober.close()
    running.stop(0)


def assert_still_answers(prober: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(prober)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=PROBE_DEADLINE).status == (
        health_pb2.HealthCheckResponse.SERVING
    )
    stub = query_pb2_grpc.QueryServiceStub(prober)
    assert (
        stub.GetModel(
            query_pb2.GetModelRequest(), metadata=bearer(TOKENS["labeler"]), timeout=PROBE_DEADLINE
        ).version.version
        == 1
    )
    predicted = stub.Predict(
        query_pb2.PredictRequest(texts=["a fine film"]), metadata=bearer(TOKENS["client"]), timeout=PROBE_DEADLINE
    )
    assert len(predicted.predictions) == 1


def code_of(call: grpc.Future) -> grpc.StatusCode:
    try:
        call.result(timeout=30)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_health_watches_without_a_token_hold_no_worker(replica):
    running, attacker, prober = replica
    health = health_pb2_grpc.HealthStub(attacker)
    watches = [
        health.Watch(health_pb2.HealthCheckRequest(), timeout=STREAM_DEADLINE) for _ in range(LIMITS.max_watches)
    ]
    for watch in watches:  # each one is open: the first status arrives at once
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    assert LIMITS.max_watches > WORKERS
    assert_still_answers(prober)
    extra = health.Watch(health_pb2.HealthCheckRequest(), timeout=STREAM_DEADLINE)
    with pytest.raises(grpc.RpcError) as refused:
        next(extra)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "ALLOOP_MAX_HEALTH_WATCHES" in refused.value.details()
    for watch in watches:
        watch.cancel()
    wait_for(lambda: running.limiter.open_watches == 0, timeout=10, what="watch slots given back")
    again = health.Watch(health_pb2.HealthCheckRequest(), timeout=STREAM_DEADLINE)
    assert next(again).status == health_pb2.HealthCheckResponse.SERVING
    again.cancel()


def test_watch_models_streams_beyond_the_cap_are_refused(replica):
    running, attacker, prober = replica
    stub = query_pb2_grpc.QueryServiceStub(attacker)
    streams = [
        stub.WatchModels(query_pb2.WatchModelsRequest(), metadata=bearer(TOKENS["labeler"]), timeout=STREAM_DEADLINE)
        for _ in range(WORKERS + 4)
    ]
    admitted, refused = [], []
    for stream in streams:
        try:
            assert next(stream).version.version == 1
            admitted.append(stream)
        except grpc.RpcError as exc:
            refused.append(exc.code())
    assert len(admitted) == LIMITS.max_streams
    assert refused == [grpc.StatusCode.RESOURCE_EXHAUSTED] * (len(streams) - LIMITS.max_streams)
    assert_still_answers(prober)
    for stream in admitted:
        stream.cancel()
    wait_for(lambda: running.limiter.open_streams == 0, timeout=10, what="stream slots given back")


def never_sends(release: threading.Event) -> Iterator[query_pb2.SubmitPoolRequest]:
    release.wait()
    return
    yield  # pragma: no cover - makes this a generator


def test_silent_upload_streams_are_capped_then_cancelled_when_idle(replica, redis_client, keys):
    running, attacker, prober = replica
    stub = query_pb2_grpc.QueryServiceStub(attacker)
    release = threading.Event()
    client = bearer(TOKENS["client"])
    uploads = [
        stub.SubmitPool.future(never_sends(release), metadata=client, timeout=STREAM_DEADLINE) for _ in range(WORKERS)
    ]
    scores = [stub.ScorePool(never_sends(release), metadata=client, timeout=STREAM_DEADLINE) for _ in range(WORKERS)]
    try:
        # While they are open (the idle limit is 2 s), the replica answers everyone else.
        assert_still_answers(prober)
        codes = [code_of(f) for f in uploads]
        for stream in scores:
            try:
                list(stream)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.append(exc.code())
    finally:
        release.set()
    # Four were admitted and cancelled for idleness; every other one was refused before it read anything.
    assert codes.count(grpc.StatusCode.CANCELLED) == LIMITS.max_streams
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 2 * WORKERS - LIMITS.max_streams
    wait_for(lambda: running.limiter.open_streams == 0, timeout=10, what="stream slots given back")
    assert not redis_client.exists(keys.pool_items("default"))  # nothing stored by a cancelled upload
    assert_still_answers(prober)


def test_an_upload_that_keeps_sending_is_not_idle(replica):
    running, _, prober = replica
    stub = query_pb2_grpc.QueryServiceStub(prober)

    def slow() -> Iterator[query_pb2.SubmitPoolRequest]:
        for i in range(4):  # 4 messages 1 s apart: 4 s in all, each gap under the 2 s idle limit
            yield query_pb2.SubmitPoolRequest(pool="slow", items=[query_pb2.PoolItem(id=f"i{i}", text=f"text {i}")])
            threading.Event().wait(1.0)

    response = stub.SubmitPool(slow(), metadata=bearer(TOKENS["client"]), timeout=30)
    assert response.accepted == 4


def test_a_cancelled_stream_keeps_its_slot_until_its_worker_is_free():
    """Cancelling and reopening cannot stack up work: the slot follows the worker, not the caller's cancel."""
    bound = new_server(
        "127.0.0.1:0",
        max_message_bytes=1024 * 1024,
        limits=ServerLimits(workers=4, max_streams=2, max_watches=4, max_concurrent_rpcs=64),
    )
    entered, release = threading.Semaphore(0), threading.Event()

    def slow(requests, context):  # type: ignore[no-untyped-def]
        next(requests)
        entered.release()
        release.wait(30)  # the servicer still works after its caller has gone
        return b"done"

    bound.server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("t.Test", {"Slow": grpc.stream_unary_rpc_method_handler(slow)}),)
    )
    bound.server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{bound.port}") as ch:
            slow_call = ch.stream_unary("/t.Test/Slow")
            first = slow_call.future(iter([b"x"]), timeout=30)
            assert entered.acquire(timeout=10)
            first.cancel()
            assert first.cancelled()
            second = slow_call.future(iter([b"x"]), timeout=30)
            assert entered.acquire(timeout=10)
            assert bound.limiter.open_streams == 2  # the cancelled call's worker is still busy: its slot too
            with pytest.raises(grpc.RpcError) as refused:
                slow_call(iter([b"x"]), timeout=10)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            release.set()
            assert second.result(timeout=10) == b"done"
            wait_for(lambda: bound.limiter.open_streams == 0, timeout=10, what="slots given back")
    finally:
        release.set()
        bound.server.stop(0)
