"""Redis goes down mid-run and comes back: services say NOT_SERVING, callers get UNAVAILABLE at once, and the work
resumes from Redis' append-only file with nothing lost."""

from __future__ import annotations

import time
from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from alloop.store.connection import EmbeddedRedis, connect, free_port
from alloop.store.keys import Keys
from alloop.store.training import GROUP
from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from query_service.server import create_server as create_query_server
from tests import synthetic
from tests.integration import models
from tests.integration.services import channel, wait_for
from trainer_service.server import create_server as create_trainer_server

pytestmark = pytest.mark.integration
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def status(port: int) -> int:
    return health_pb2_grpc.HealthStub(channel(port)).Check(health_pb2.HealthCheckRequest(), timeout=2).status


def test_services_ride_out_a_redis_restart(tmp_path, query_settings, trainer_settings):
    port = free_port()
    server = EmbeddedRedis(tmp_path / "redis", port=port, appendonly=True).start()
    client = connect(server.url)
    keys = Keys("restart")
    common = replace(query_settings.common, redis_url=server.url, redis_prefix=keys.prefix)
    models.write_and_publish(client, keys, common.models_path, 1)
    query = create_query_server(replace(query_settings, common=common), client)
    trainer = create_trainer_server(replace(trainer_settings, common=common, initial_data=None), client)
    try:
        wait_for(query.holder.current_or_none, timeout=30, what="version 1 served")
        q = query_pb2_grpc.QueryServiceStub(channel(query.port))
        t = trainer_pb2_grpc.TrainerServiceStub(channel(trainer.port))
        rows = synthetic.reviews(50, 9, "r")
        q.SubmitPool(
            iter(
                [
                    query_pb2.SubmitPoolRequest(
                        pool="p", items=[query_pb2.PoolItem(id=str(r["id"]), text=str(r["text"])) for r in rows]
                    )
                ]
            )
        )
        selected = q.Query(query_pb2.QueryRequest(pool="p", strategy=common_pb2.STRATEGY_ENTROPY, k=4)).selected
        truth = {str(r["id"]): int(r["label"]) for r in rows}  # type: ignore[call-overload]
        first = selected[0]
        q.SubmitLabels(
            query_pb2.SubmitLabelsRequest(labels=[query_pb2.Label(pool="p", id=first.id, label=truth[first.id])])
        )
        wait_for(
            lambda: t.GetStatus(trainer_pb2.GetStatusRequest()).status.labels_seen == 1, what="first label consumed"
        )

        group_before = {g["name"]: g["last-delivered-id"] for g in client.xinfo_groups(keys.label_stream)}
        assert set(group_before) == {GROUP}
        server.stop()  # SIGTERM: Redis flushes its AOF and exits
        wait_for(
            lambda: status(query.port) == NOT_SERVING and status(trainer.port) == NOT_SERVING,
            timeout=10,
            what="NOT_SERVING while Redis is down",
        )
        for call in (
            lambda: q.Query(query_pb2.QueryRequest(pool="p", strategy=common_pb2.STRATEGY_ENTROPY, k=1), timeout=10),
            lambda: q.LeaseTasks(query_pb2.LeaseTasksRequest(max_items=5), timeout=10),
            lambda: t.GetStatus(trainer_pb2.GetStatusRequest(), timeout=10).status,
        ):
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
            assert "retry" in err.value.details()
            assert time.monotonic() - started < 3, "a call during the outage must fail fast, not hang"
        # Inference needs no Redis: production traffic is served through the outage.
        assert q.Predict(query_pb2.PredictRequest(texts=["superb"]), timeout=10).model_version == 1

        server = EmbeddedRedis(tmp_path / "redis", port=port, appendonly=True).start()
        wait_for(
            lambda: status(query.port) == SERVING and status(trainer.port) == SERVING, timeout=15, what="SERVING again"
        )
        # Everything written before the outage is back: pool, queue, labels, the trainer's consumer group. The group
        # is checked directly: a lost group would be recreated from the stream's start, with another delivered id.
        back = connect(server.url)
        groups = {g["name"]: g["last-delivered-id"] for g in back.xinfo_groups(keys.label_stream)}
        back.close()
        assert groups == group_before, "the consumer group did not survive the restart as it was"
        leased = q.LeaseTasks(query_pb2.LeaseTasksRequest(max_items=10)).tasks
        assert sorted(task.id for task in leased) == sorted(s.id for s in selected[1:])
        result = q.SubmitLabels(
            query_pb2.SubmitLabelsRequest(
                labels=[query_pb2.Label(pool="p", id=task.id, label=truth[task.id]) for task in leased]
            )
        )
        assert result.accepted == 3
        wait_for(
            lambda: t.GetStatus(trainer_pb2.GetStatusRequest()).status.labels_seen == 4,
            timeout=15,
            what="the trainer's consumer resumed",
        )
        assert q.Query(query_pb2.QueryRequest(pool="p", strategy=common_pb2.STRATEGY_MARGIN, k=2)).candidates == 46
    finally:
        query.stop(0)
        trainer.stop(0)
        server.stop()
