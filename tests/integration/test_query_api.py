"""The query service's API over a real gRPC channel, with a tiny real model published without the trainer.

Every refused request is checked three ways: the status code, a message that says what to fix, and a byte-for-byte
dump of the service's Redis keys that is identical before and after (a refused request changes nothing).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from alloop.rpc.messages import duration
from alloop.store.keys import Keys
from alloop.store.labeling import LabelingStore
from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc
from query_service.server import RunningQueryService
from query_service.server import create_server as create_query_server
from tests import synthetic
from tests.conftest import BACKENDS, dump_keys
from tests.integration import models
from tests.integration.services import channel, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("backend", BACKENDS, indirect=True)]

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
POOL = "reviews"


@dataclass
class Api:
    stub: query_pb2_grpc.QueryServiceStub
    channel: grpc.Channel
    running: RunningQueryService
    client: redis.Redis
    keys: Keys

    def refused(self, call: Callable[[], Any], code: grpc.StatusCode, *fragments: str) -> str:
        """Run a call that must fail with ``code``; its message must name the fragments; nothing may change."""
        before = dump_keys(self.client, self.keys.prefix)
        with pytest.raises(grpc.RpcError) as err:
            result = call()
            if isinstance(result, Iterator):  # a response stream fails when it is read
                list(result)
        assert err.value.code() == code, err.value.details()
        details = err.value.details()
        assert details and details.strip(), "a refusal must say why"
        for fragment in fragments:
            assert fragment in details, f"{fragment!r} not in {details!r}"
        assert dump_keys(self.client, self.keys.prefix) == before, f"a refused call changed Redis: {details}"
        return details

    def submit_pool(
        self, items: list[tuple[str, str]], pool: str = POOL, **kwargs: Any
    ) -> query_pb2.SubmitPoolResponse:
        return self.stub.SubmitPool(iter([pool_request(items, pool, **kwargs)]))


def pool_request(items: list[tuple[str, str]], pool: str = POOL, **kwargs: Any) -> query_pb2.SubmitPoolRequest:
    return query_pb2.SubmitPoolRequest(pool=pool, items=[query_pb2.PoolItem(id=i, text=t) for i, t in items], **kwargs)


def reviews(n: int, prefix: str = "r") -> list[tuple[str, str]]:
    return [(str(row["id"]), str(row["text"])) for row in synthetic.reviews(n, 7, prefix)]


def start(settings, client, keys) -> Api:  # type: ignore[no-untyped-def]
    running = create_query_server(settings, client)
    ch = channel(running.port)
    return Api(query_pb2_grpc.QueryServiceStub(ch), ch, running, client, keys)


@pytest.fixture
def api(query_settings, redis_client, keys) -> Iterator[Api]:
    models.write_and_publish(redis_client, keys, query_settings.common.models_path, 1)
    running = start(query_settings, redis_client, keys)
    wait_for(running.running.holder.current_or_none, timeout=30, what="version 1 served")
    yield running
    running.channel.close()
    running.running.stop(0)


@pytest.fixture
def unready(query_settings, redis_client, keys) -> Iterator[Api]:
    running = start(query_settings, redis_client, keys)
    yield running
    running.channel.close()
    running.running.stop(0)


def with_pool(api: Api, n: int = 30) -> list[tuple[str, str]]:
    items = reviews(n)
    assert api.submit_pool(items).accepted == n
    return items


# --- SubmitPool --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_text", ["", "   \n\t "])
def test_submit_pool_with_an_empty_text_is_refused_and_stores_nothing(api, bad_text):
    items = [("a", "fine text"), ("b", bad_text), ("c", "more text")]
    api.refused(
        lambda: api.submit_pool(items),
        INVALID,
        "item #1 ('b')",
        "empty or only white space",
        "nothing was stored",
        "skip_invalid",
    )
    assert api.client.exists(api.keys.pools, api.keys.pool_items(POOL)) == 0


def test_submit_pool_with_a_duplicate_id_in_one_stream_is_refused(api):
    with_pool(api, 5)
    stream = [pool_request([("x1", "one"), ("x2", "two")]), pool_request([("x3", "three"), ("x1", "again")], pool="")]
    api.refused(lambda: api.stub.SubmitPool(iter(stream)), INVALID, "'x1' appears twice", "nothing was stored")
    api.refused(lambda: api.submit_pool([("", "no id")]), INVALID, "id must not be empty")
    api.refused(lambda: api.submit_pool([("ok", "text")], pool=" padded "), INVALID, "white space")


def test_submit_pool_naming_another_pool_mid_stream_is_refused(api):
    # The pool is named by the first message; a later message may repeat it or leave it empty, but naming another
    # pool must not silently store that pool's items in the first one.
    stream = [
        pool_request([("x1", "one")], pool="first"),
        pool_request([("x2", "two")], pool=""),
        pool_request([("y1", "three")], pool="second"),
    ]
    api.refused(lambda: api.stub.SubmitPool(iter(stream)), INVALID, "'second'", "'first'")
    assert api.client.exists(api.keys.pools) == 0
    ok = api.stub.SubmitPool(
        iter([pool_request([("x1", "one")], pool="first"), pool_request([("x2", "two")], pool="first")])
    )
    assert (ok.pool, ok.accepted, ok.pool_size) == ("first", 2, 2)
    # An empty name in the first message means the default pool, which a later message may then name.
    default = api.stub.SubmitPool(
        iter([pool_request([("d1", "one")], pool=""), pool_request([("d2", "two")], pool="default")])
    )
    assert (default.pool, default.accepted) == ("default", 2)


def test_submit_pool_skip_invalid_stores_the_valid_items_and_reports_rejections(api):
    stream = [
        pool_request([("a", "good one"), ("b", " "), ("a", "a again")], skip_invalid=True),
        pool_request([("c", "good two"), ("", "no id")]),  # skip_invalid comes from the first message
    ]
    response = api.stub.SubmitPool(iter(stream))
    assert (response.pool, response.accepted, response.duplicate, response.rejected, response.pool_size) == (
        POOL,
        2,
        0,
        3,
        2,
    )
    assert [(r.index, r.id) for r in response.rejections] == [(1, "b"), (2, "a"), (4, "")]
    assert all(r.reason for r in response.rejections)
    assert "empty or only white space" in response.rejections[0].reason
    assert "appears twice" in response.rejections[1].reason
    assert api.client.hgetall(api.keys.pool_items(POOL)) == {"a": "good one", "c": "good two"}
    # Re-sending is idempotent: ids already stored are duplicates and keep their first text.
    again = api.submit_pool([("a", "changed"), ("d", "new")])
    assert (again.accepted, again.duplicate, again.pool_size) == (1, 1, 3)
    assert api.client.hget(api.keys.pool_items(POOL), "a") == "good one"


# --- Query -------------------------------------------------------------------------------------------------------


def test_query_bad_requests(api):
    with_pool(api, 30)
    query = lambda **kw: api.stub.Query(
        query_pb2.QueryRequest(**{"pool": POOL, "strategy": common_pb2.STRATEGY_MARGIN, "k": 5, **kw})
    )
    api.refused(lambda: query(pool="nope"), NOT_FOUND, "'nope' does not exist", "SubmitPool first")
    api.refused(lambda: query(k=0), INVALID, "k must be a positive number", "got 0")
    api.refused(lambda: query(k=-3), INVALID, "k must be a positive number", "got -3")
    api.refused(lambda: query(strategy=99), INVALID, "unknown Strategy number 99", "STRATEGY_LEAST_CONFIDENCE")
    api.refused(lambda: query(strategy=common_pb2.STRATEGY_UNSPECIFIED), INVALID, "QueryRequest.strategy is unset")
    api.refused(lambda: query(k=31), PRECONDITION, "k=31 is more than the 30", "'reviews'")
    api.refused(lambda: query(pool=""), INVALID, "pool name must not be empty")
    api.refused(lambda: query(max_candidates=-1), INVALID, "max_candidates must be 0", "got -1")
    api.refused(lambda: query(k=5, max_candidates=4), INVALID, "k=5 is more than max_candidates=4")
    # The same service still answers a good query, and k may then not exceed what is left.
    selected = query(k=25, strategy=common_pb2.STRATEGY_ENTROPY)
    assert len(selected.selected) == 25 and selected.candidates == 30 and selected.model_version == 1
    api.refused(lambda: query(k=6), PRECONDITION, "k=6 is more than the 5")
    query(k=5)
    api.refused(lambda: query(k=1), PRECONDITION, "no unlabeled, unqueued items left")


def test_query_with_max_candidates_scores_a_seeded_sample_and_selects_from_it(api):
    with_pool(api, 30)
    ids, texts = api.running.app.pools.candidates(POOL)
    ids, texts = (
        list(t) for t in zip(*sorted(zip(ids, texts, strict=True)), strict=True)
    )  # the service draws from the items in id order
    # What the service must do: draw 10 of the 30 with the request's seed, then take the 3 least confident of those.
    sample = np.sort(np.random.default_rng(5).choice(len(ids), size=10, replace=False))
    probs = api.running.holder.current().predictor.predict_proba([texts[i] for i in sample])
    top = np.argsort(probs.max(axis=1), kind="stable")[:3]
    first = api.stub.Query(
        query_pb2.QueryRequest(pool=POOL, strategy=common_pb2.STRATEGY_LEAST_CONFIDENCE, k=3, seed=5, max_candidates=10)
    )
    assert first.candidates == 10
    assert {s.id for s in first.selected} == {ids[sample[i]] for i in top}
    # A cap above what is left scores everything that is left.
    rest = api.stub.Query(
        query_pb2.QueryRequest(pool=POOL, strategy=common_pb2.STRATEGY_RANDOM, k=2, seed=5, max_candidates=1000)
    )
    assert rest.candidates == 27


# --- LeaseTasks --------------------------------------------------------------------------------------------------


def test_lease_tasks_bad_requests(api):
    with_pool(api, 10)
    api.stub.Query(query_pb2.QueryRequest(pool=POOL, strategy=common_pb2.STRATEGY_LEAST_CONFIDENCE, k=3))
    lease = lambda **kw: api.stub.LeaseTasks(query_pb2.LeaseTasksRequest(**{"labeler": "l1", "max_items": 2, **kw}))
    api.refused(lambda: lease(max_items=0), INVALID, "max_items must be positive", "got 0")
    api.refused(lambda: lease(max_items=-1), INVALID, "max_items must be positive")
    api.refused(lambda: lease(lease_duration=duration(-5)), INVALID, "lease_duration must not be negative")
    before = time.time()
    leased = lease()
    assert len(leased.tasks) == 2 and all(t.lease_id and t.text for t in leased.tasks)
    for task in leased.tasks:  # the strategy that queued it, and the default lease (60 s in these settings)
        assert task.strategy == common_pb2.STRATEGY_LEAST_CONFIDENCE and task.model_version == 1
        assert before + 59 <= task.lease_expire_time.ToMilliseconds() / 1000 <= time.time() + 61
    short = lease(max_items=1, lease_duration=duration(2.5))
    assert short.tasks[0].lease_expire_time.ToMilliseconds() / 1000 == pytest.approx(time.time() + 2.5, abs=1.0)


def test_the_running_replica_returns_expired_leases_without_another_lease_call(api, redis_client, keys):
    """The once-a-second reaper each replica runs, not LeaseTasks' own reclaim, brings a dead labeler's items back."""
    with_pool(api, 10)
    api.stub.Query(query_pb2.QueryRequest(pool=POOL, strategy=common_pb2.STRATEGY_LEAST_CONFIDENCE, k=3))
    store = LabelingStore(redis_client, keys)
    leased = api.stub.LeaseTasks(query_pb2.LeaseTasksRequest(labeler="l1", max_items=3, lease_duration=duration(3)))
    assert len(leased.tasks) == 3 and store.leased_count() == 3 and store.queue_length() == 0
    # No call reaches the service from here on: only its reaper can put the items back.
    wait_for(lambda: store.leased_count() == 0 and store.queue_length() == 3, timeout=30, what="expired leases back")


# --- SubmitLabels ------------------------------------------------------------------------------------------------


def labels_request(*labels: tuple[str, str, int]) -> query_pb2.SubmitLabelsRequest:
    return query_pb2.SubmitLabelsRequest(
        labeler="l1", labels=[query_pb2.Label(pool=p, id=i, label=lab) for p, i, lab in labels]
    )


def test_submit_labels_bad_requests_record_nothing(api):
    items = with_pool(api, 10)
    selected = api.stub.Query(
        query_pb2.QueryRequest(pool=POOL, strategy=common_pb2.STRATEGY_LEAST_CONFIDENCE, k=3)
    ).selected
    queued = [s.id for s in selected]
    never = next(i for i, _ in items if i not in queued)
    submit = lambda *labels: api.stub.SubmitLabels(labels_request(*labels))

    api.refused(lambda: submit((POOL, queued[0], 2)), INVALID, "label 2 is not a class index", "0=negative, 1=positive")
    api.refused(lambda: submit((POOL, queued[0], -1)), INVALID, "label -1 is not a class index")
    api.refused(lambda: submit(("nope", queued[0], 1)), NOT_FOUND, "'nope' does not exist")
    api.refused(lambda: submit((POOL, never, 1)), PRECONDITION, "never queued by Query", "nothing in this batch")
    api.refused(lambda: api.stub.SubmitLabels(query_pb2.SubmitLabelsRequest(labeler="l1")), INVALID, "no labels")
    api.refused(lambda: submit((POOL, queued[0], 1), (POOL, queued[0], 1)), INVALID, "appears twice")
    # A batch of good labels with one bad one records none of them, whatever the reason for the bad one.
    api.refused(lambda: submit((POOL, queued[0], 1), (POOL, queued[1], 5)), INVALID, "label #1", "label 5")
    api.refused(lambda: submit((POOL, queued[0], 1), (POOL, never, 0)), PRECONDITION, repr(never))
    assert api.client.hlen(api.keys.labels) == 0 and api.client.xlen(api.keys.label_stream) == 0

    first = submit((POOL, queued[0], 1))
    assert (first.accepted, first.duplicate) == (1, 0)
    api.refused(
        lambda: submit((POOL, queued[1], 0), (POOL, queued[0], 0)),
        PRECONDITION,
        "already labeled 1",
        "first label stands",
        "Nothing in this batch was recorded",
    )
    both = submit((POOL, queued[0], 1), (POOL, queued[1], 0))
    assert (both.accepted, both.duplicate) == (1, 1)


def test_labels_for_distinct_items_whose_pool_and_id_share_a_slash_are_not_duplicates(api):
    # ("a/b", "c") and ("a", "b/c") are different items; ids and pool names may hold any character.
    for pool, item_id in (("a/b", "c"), ("a", "b/c")):
        assert api.submit_pool([(item_id, f"text of {pool} {item_id}")], pool=pool).accepted == 1
        assert (
            len(api.stub.Query(query_pb2.QueryRequest(pool=pool, strategy=common_pb2.STRATEGY_MARGIN, k=1)).selected)
            == 1
        )
    result = api.stub.SubmitLabels(labels_request(("a/b", "c", 1), ("a", "b/c", 0)))
    assert (result.accepted, result.duplicate) == (2, 0)


# --- Predict and ScorePool ---------------------------------------------------------------------------------------


def test_predict_bad_requests_and_a_good_one(api):
    predict = lambda *texts: api.stub.Predict(query_pb2.PredictRequest(texts=list(texts)))
    api.refused(lambda: predict(), INVALID, "no texts in the request")
    api.refused(lambda: predict("fine", ""), INVALID, "texts #1", "empty or only white space")
    api.refused(lambda: predict(" \n"), INVALID, "texts #0")
    good = predict("a wonderful superb film", "dull awful mess")
    assert good.model_version == 1 and len(good.predictions) == 2
    for prediction in good.predictions:
        assert len(prediction.probabilities) == 2 and sum(prediction.probabilities) == pytest.approx(1.0, abs=1e-5)
        assert prediction.class_name == ("negative", "positive")[prediction.label]


def test_score_pool_answers_each_batch_in_turn_and_stores_nothing(api):
    with_pool(api, 5)
    before = dump_keys(api.client, api.keys.prefix)
    batches = [reviews(3, "s"), reviews(1, "t"), reviews(6, "u")]
    requests: queue.Queue[query_pb2.ScorePoolRequest | None] = queue.Queue()

    def outgoing() -> Iterator[query_pb2.ScorePoolRequest]:
        while (request := requests.get()) is not None:
            yield request

    responses = api.stub.ScorePool(outgoing())
    # Lock-step: each batch is answered before the next one is sent, so the stream really is bidirectional.
    for n, batch in enumerate(batches):
        requests.put(
            query_pb2.ScorePoolRequest(
                items=[query_pb2.PoolItem(id=i, text=t) for i, t in batch],
                strategy=common_pb2.STRATEGY_MARGIN if n == 1 else common_pb2.STRATEGY_UNSPECIFIED,
            )
        )
        response = next(responses)
        assert response.model_version == 1
        assert [s.id for s in response.scores] == [i for i, _ in batch]
        for score in response.scores:
            assert len(score.probabilities) == 2
            assert sum(score.probabilities) == pytest.approx(1.0, abs=1e-5)
            assert score.model_version == 1 and score.predicted_label in (0, 1)
            assert 0.0 <= score.uncertainty <= 1.0
    requests.put(None)
    assert list(responses) == []
    assert dump_keys(api.client, api.keys.prefix) == before

    # A bad batch mid-stream ends the stream with INVALID_ARGUMENT after the good batches were answered.
    stream = api.stub.ScorePool(
        iter(
            [
                query_pb2.ScorePoolRequest(items=[query_pb2.PoolItem(id="ok", text="fine")]),
                query_pb2.ScorePoolRequest(items=[query_pb2.PoolItem(id="bad", text="")]),
            ]
        )
    )
    assert len(next(stream).scores) == 1
    api.refused(lambda: list(stream), INVALID, "items #0", "empty or only white space")
    api.refused(
        lambda: api.stub.ScorePool(
            iter([query_pb2.ScorePoolRequest(items=[query_pb2.PoolItem(id="a", text="x")], strategy=42)])
        ),
        INVALID,
        "ScorePoolRequest.strategy is an unknown Strategy number 42",
    )
    api.refused(lambda: api.stub.ScorePool(iter([query_pb2.ScorePoolRequest()])), INVALID, "no items")


# --- before any model is published -------------------------------------------------------------------------------


def test_query_and_predict_before_any_model_is_failed_precondition(unready, query_settings):
    api = unready
    assert api.submit_pool(reviews(10)).accepted == 10  # pools do not need a model
    ready = "no model version is published yet"
    api.refused(
        lambda: api.stub.Query(query_pb2.QueryRequest(pool=POOL, strategy=common_pb2.STRATEGY_MARGIN, k=2)),
        PRECONDITION,
        ready,
    )
    api.refused(lambda: api.stub.Predict(query_pb2.PredictRequest(texts=["hello"])), PRECONDITION, ready)
    api.refused(lambda: api.stub.GetModel(query_pb2.GetModelRequest()).version, PRECONDITION, ready)
    api.refused(
        lambda: api.stub.ScorePool(iter([query_pb2.ScorePoolRequest(items=[query_pb2.PoolItem(id="a", text="x")])])),
        PRECONDITION,
        ready,
    )
    # Publishing a version is all it takes: the replica picks it up by itself.
    models.write_and_publish(api.client, api.keys, query_settings.common.models_path, 1)
    wait_for(api.running.holder.current_or_none, timeout=30, what="version 1 served")
    assert api.stub.Predict(query_pb2.PredictRequest(texts=["hello"])).model_version == 1
    assert api.stub.GetModel(query_pb2.GetModelRequest()).version.train_size == models.TRAIN_SIZE


# --- health ------------------------------------------------------------------------------------------------------


def test_health_reports_serving(api):
    health = health_pb2_grpc.HealthStub(api.channel)
    for service in ("", "alloop.v1.QueryService"):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING, service
    with pytest.raises(grpc.RpcError) as err:
        health.Check(health_pb2.HealthCheckRequest(service="alloop.v1.NoSuchService"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
