"""A whole round through the real services: initial version, pool, query, lease, label, retrain, hot swap."""

from __future__ import annotations

import datetime as dt
import json

import grpc
import pytest

from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from query_service.server import create_server as create_query_server
from tests.conftest import BACKENDS
from tests.integration.services import channel, wait_for
from trainer_service.server import create_server as create_trainer_server

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("backend", BACKENDS, indirect=True)]


@pytest.fixture
def services(trainer_settings, query_settings, redis_client):
    trainer = create_trainer_server(trainer_settings, redis_client)
    query = create_query_server(query_settings, redis_client)
    yield trainer, query
    query.stop(0)
    trainer.stop(0)


def test_full_round_query_lease_label_retrain_serves_new_version(services, corpus):
    trainer, query = services
    q = query_pb2_grpc.QueryServiceStub(channel(query.port))
    t = trainer_pb2_grpc.TrainerServiceStub(channel(trainer.port))

    # The first version trains on the initial labeled set, and the query service picks it up by itself.
    wait_for(lambda: query.holder.current_or_none(), timeout=120, what="version 1 served")
    first = q.GetModel(query_pb2.GetModelRequest()).version
    assert first.version == 1 and first.train_size == 120
    assert first.family == "bilstm" and not first.adapts_to_pool  # its vocabulary comes from the labels only
    assert 0.0 <= first.metrics.accuracy <= 1.0 and first.metrics.test_size == 60
    assert abs(first.create_time.ToDatetime(dt.timezone.utc) - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(
        minutes=10
    )
    assert 0 < first.train_duration.ToNanoseconds() < 600e9

    pool = [json.loads(line) for line in corpus["pool"].read_text().splitlines()]
    truth = {row["id"]: row["label"] for row in pool}
    submitted = q.SubmitPool(
        iter(
            [
                query_pb2.SubmitPoolRequest(
                    pool="reviews", items=[query_pb2.PoolItem(id=r["id"], text=r["text"]) for r in pool]
                )
            ]
        )
    )
    assert (submitted.accepted, submitted.duplicate, submitted.pool_size) == (200, 0, 200)

    selected = q.Query(query_pb2.QueryRequest(pool="reviews", strategy=common_pb2.STRATEGY_LEAST_CONFIDENCE, k=20))
    assert len(selected.selected) == 20 and selected.model_version == 1
    assert all(s.model_version == 1 for s in selected.selected)
    assert selected.candidates == 200

    leased = q.LeaseTasks(query_pb2.LeaseTasksRequest(labeler="l1", max_items=50))
    assert {task.id for task in leased.tasks} == {s.id for s in selected.selected}
    assert list(leased.classes) == ["negative", "positive"]

    watch = q.WatchModels(query_pb2.WatchModelsRequest())
    assert next(watch).version.version == 1
    labels = [query_pb2.Label(pool=task.pool, id=task.id, label=truth[task.id]) for task in leased.tasks]
    result = q.SubmitLabels(query_pb2.SubmitLabelsRequest(labeler="l1", labels=labels))
    assert (result.accepted, result.duplicate) == (20, 0)

    # 20 new labels reach the retrain threshold: the trainer trains version 2 and the query replica swaps to it.
    assert next(watch).version.version == 2
    watch.cancel()
    status = t.GetStatus(trainer_pb2.GetStatusRequest()).status
    assert status.labels_seen == 140 and status.current_version == 2
    wait_for(lambda: t.GetStatus(trainer_pb2.GetStatusRequest()).status.pending == 0, what="pending labels trained")
    versions = t.ListModelVersions(trainer_pb2.ListModelVersionsRequest())
    assert [v.version for v in versions.versions] == [1, 2] and versions.versions[1].train_size == 140

    again = q.Query(query_pb2.QueryRequest(pool="reviews", strategy=common_pb2.STRATEGY_MARGIN, k=5))
    assert again.model_version == 2 and again.candidates == 180  # labeled items are never offered again
    predicted = q.Predict(query_pb2.PredictRequest(texts=["a wonderful superb film", "dull awful mess"]))
    assert predicted.model_version == 2 and len(predicted.predictions) == 2

    # Re-sending the same labels is an idempotent no-op.
    again_labels = q.SubmitLabels(query_pb2.SubmitLabelsRequest(labeler="l1", labels=labels))
    assert (again_labels.accepted, again_labels.duplicate) == (0, 20)

    # The model volume that replicas share holds published versions only: checkpoints and caches stay private.
    model_dir = trainer.trainer.settings.common.models_path
    assert sorted(p.name for p in model_dir.iterdir()) == ["v000001", "v000002"]


def test_train_rpc_waits_for_the_published_version(services):
    trainer, query = services
    t = trainer_pb2_grpc.TrainerServiceStub(channel(trainer.port))
    wait_for(
        lambda: t.GetStatus(trainer_pb2.GetStatusRequest()).status.current_version == 1, timeout=120, what="version 1"
    )
    events = t.WatchTraining(trainer_pb2.WatchTrainingRequest())
    # Events are not replayed: start the round only once the stream's handler has subscribed.
    wait_for(lambda: trainer.trainer.events.subscriber_count() == 1, what="WatchTraining subscribed")
    response = t.Train(trainer_pb2.TrainRequest(wait=True))
    assert response.started and response.version.version == 2
    kinds = []
    for update in events:
        event = update.event
        kinds.append(event.kind)
        if event.kind == trainer_pb2.TrainingEvent.KIND_ROUND_FINISHED:
            assert event.version == 2
            break
    events.cancel()
    assert kinds[0] == trainer_pb2.TrainingEvent.KIND_ROUND_STARTED
    assert trainer_pb2.TrainingEvent.KIND_EPOCH_END in kinds


def test_train_without_labels_is_failed_precondition(trainer_settings, redis_client):
    from dataclasses import replace

    running = create_trainer_server(replace(trainer_settings, initial_data=None), redis_client)
    try:
        t = trainer_pb2_grpc.TrainerServiceStub(channel(running.port))
        with pytest.raises(grpc.RpcError) as err:
            t.Train(trainer_pb2.TrainRequest())
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "training set is empty" in err.value.details()
    finally:
        running.stop(0)
