"""Prometheus metrics, scraped over HTTP from both services while a labeling round runs through them."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import replace

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc
from query_service.server import create_server as create_query_server
from tests.integration.services import channel, wait_for
from trainer_service.server import create_server as create_trainer_server

pytestmark = pytest.mark.integration
Q = "/alloop.v1.QueryService/"


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def services(trainer_settings, query_settings, redis_client) -> Iterator[tuple]:
    trainer = create_trainer_server(replace(trainer_settings, metrics_address="127.0.0.1:0"), redis_client)
    query = create_query_server(replace(query_settings, metrics_address="127.0.0.1:0"), redis_client)
    yield trainer, query
    query.stop(0)
    trainer.stop(0)


def test_counters_and_state_move_through_a_labeling_round(services, corpus):
    trainer, query = services
    assert query.metrics_port and trainer.metrics_port
    wait_for(query.holder.current_or_none, timeout=120, what="version 1 served")
    q = query_pb2_grpc.QueryServiceStub(channel(query.port))
    before = scrape(query.metrics_port)
    assert value(before, "alloop_served_version") == 1
    assert 0 < value(before, "alloop_served_version_test_accuracy") <= 1

    rows = [json.loads(line) for line in corpus["pool"].read_text().splitlines()]
    truth = {row["id"]: row["label"] for row in rows}
    q.SubmitPool(
        iter(
            [
                query_pb2.SubmitPoolRequest(
                    pool="reviews", items=[query_pb2.PoolItem(id=r["id"], text=r["text"]) for r in rows]
                )
            ]
        )
    )
    q.Query(query_pb2.QueryRequest(pool="reviews", strategy=common_pb2.STRATEGY_LEAST_CONFIDENCE, k=20))
    with pytest.raises(grpc.RpcError):
        q.Query(query_pb2.QueryRequest(pool="reviews", strategy=common_pb2.STRATEGY_LEAST_CONFIDENCE, k=0))
    queued = scrape(query.metrics_port)
    assert value(queued, "alloop_pool_items", pool="reviews") == 200
    assert value(queued, "alloop_queue_items") == 20 and value(queued, "alloop_leased_items") == 0
    # An uncertainty Query reads the score index: the pool was scored once, in shards, for the index.
    assert value(queued, "alloop_scored_items_total", kind="index") == 200
    assert value(queued, "alloop_rpc_total", method=Q + "Query", code="OK") == 1
    assert value(queued, "alloop_rpc_total", method=Q + "Query", code="INVALID_ARGUMENT") == 1
    assert value(queued, "alloop_rpc_seconds_count", method=Q + "Query") == 2

    tasks = q.LeaseTasks(query_pb2.LeaseTasksRequest(max_items=20)).tasks
    assert value(scrape(query.metrics_port), "alloop_leased_items") == 20
    q.SubmitLabels(
        query_pb2.SubmitLabelsRequest(labels=[query_pb2.Label(pool=t.pool, id=t.id, label=truth[t.id]) for t in tasks])
    )
    wait_for(lambda: query.holder.current().version == 2, timeout=180, what="version 2 served")
    after = scrape(query.metrics_port)
    assert value(after, "alloop_labels_total") == 20
    assert value(after, "alloop_leased_items") == 0 and value(after, "alloop_queue_items") == 0
    assert value(after, "alloop_label_stream_lag") == 0  # the trainer took every label in
    assert value(after, "alloop_served_version") == 2 and value(after, "alloop_model_healthy") == 1

    trained = scrape(trainer.metrics_port)
    assert value(trained, "alloop_rounds_total", outcome="published") == 2
    assert value(trained, "alloop_training_set_items") == 140
    assert value(trained, "alloop_published_version") == 2
    assert value(trained, "alloop_round_phase_seconds", phase="train") > 0
