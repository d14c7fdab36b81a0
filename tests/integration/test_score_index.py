"""The score index on real Redis and real query replicas: shards, work handed out and taken over, each shard
recorded once, and uncertainty Queries answered from the top of the ranking without reading the pool."""

from __future__ import annotations

from dataclasses import replace

import grpc
import numpy as np
import pytest

from alloop.store.labeling import LabelingStore, QueuedTask
from alloop.store.pool import PoolStore
from alloop.store.scores import MEASURE_PARTS, ScoreIndex
from alloop.strategies import MEASURES
from alloop.v1 import common_pb2, query_pb2
from tests.conftest import BACKENDS
from tests.integration import models, test_query_api
from tests.integration.services import wait_for
from tests.integration.test_query_api import POOL, Api, reviews, start

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("backend", BACKENDS, indirect=True)]

# Commands that read a whole pool (or a whole hash of items): none may run while a ranking answers a Query.
WHOLE_POOL_READS = ("hgetall", "hkeys", "hvals", "hscan", "smembers")


api = test_query_api.api  # the fixture: a replica serving version 1 of the tiny model


def items(n: int, prefix: str = "i") -> list[tuple[str, str]]:
    return [(f"{prefix}{i:04d}", f"text {i}") for i in range(n)]


def test_each_upload_chunk_of_new_items_becomes_one_shard(redis_client, keys):
    pools = PoolStore(redis_client, keys)
    added = pools.add("p", items(7), chunk=3)
    assert (added.accepted, added.shards) == (7, (1, 2, 3))
    assert pools.shard_ids("p", [1, 2, 3]) == [["i0000", "i0001", "i0002"], ["i0003", "i0004", "i0005"], ["i0006"]]
    again = pools.add("p", items(9), chunk=3)  # 7 known ids and 2 new ones: one new shard holding the new ones
    assert (again.accepted, again.duplicate, again.shards) == (2, 7, (4,))
    assert pools.shard_ids("p", [4]) == [["i0007", "i0008"]]
    assert pools.add("p", items(9), chunk=3).shards == ()
    assert pools.shard_count("p") == 4


def test_a_pool_stored_without_shards_is_split_once_in_id_order(redis_client, keys):
    redis_client.sadd(keys.pools, "old")
    redis_client.hset(keys.pool_items("old"), mapping=dict(items(2500)))
    pools = PoolStore(redis_client, keys)
    assert pools.shard_count("old") == 3
    assert pools.shard_count("old") == 3
    shards = pools.shard_ids("old", [1, 2, 3])
    assert [len(s) for s in shards] == [1000, 1000, 500]
    assert [i for shard in shards for i in shard] == [i for i, _ in items(2500)]


def test_a_shard_is_recorded_once_and_completes_the_ranking(redis_client, keys):
    index = ScoreIndex(redis_client, keys)
    index.open_version(1)
    assert index.post(1, "p", [1, 2]) == 2
    assert index.post(1, "p", [1, 2]) == 0  # posting again hands nothing out twice
    probs = np.array([[0.9, 0.1], [0.6, 0.4]])
    measures = np.column_stack([MEASURES[m](probs) for m in MEASURE_PARTS])
    assert index.record(1, "p", 1, ["a", "b"], probs, measures) == 0
    assert not index.progress("p", 1).complete
    assert index.progress("p", 1).ranked_version == 0
    # The same shard again (a slow replica whose entry was taken over): nothing is written.
    assert index.record(1, "p", 1, ["a", "b"], probs[::-1], measures[::-1]) == -1
    window = index.window("p", 1, "least_confidence", 0, 10)
    assert [item_id for item_id, _ in window] == ["b", "a"]
    assert [score for _, score in window] == pytest.approx([0.4, 0.1])
    assert index.record(1, "p", 2, ["c"], probs[:1], measures[:1]) == 1
    progress = index.progress("p", 1)
    assert (progress.complete, progress.ranked_version, progress.shards_done) == (True, 1, 2)
    np.testing.assert_allclose(index.probabilities("p", 1, ["b"])[0], [0.6, 0.4], rtol=1e-6)
    # Version 2 completes: version 1's ranking is dropped, the pointer moves.
    index.open_version(2)
    index.post(2, "p", [1])
    assert index.record(2, "p", 1, ["a"], probs[:1], measures[:1]) == 1
    assert index.progress("p", 2).ranked_version == 2
    assert redis_client.exists(keys.ranking("p", 1, "least_confidence")) == 0


def test_work_a_dead_replica_took_is_taken_over(redis_client, keys):
    index = ScoreIndex(redis_client, keys)
    index.open_version(1)
    index.post(1, "p", [1, 2])
    taken = index.take(1, "dead", None, claim_idle_ms=60_000)
    assert [w.shard for w in taken] == [1]
    # Another consumer gets the next new entry while the dead one's is still young...
    assert [w.shard for w in index.take(1, "alive", None, claim_idle_ms=60_000)] == [2]
    assert index.take(1, "alive", None, claim_idle_ms=60_000) == []
    # ...and the dead one's entry once it has been pending longer than the claim time.
    over = index.take(1, "alive", None, claim_idle_ms=0)
    assert [w.shard for w in over] == [1]
    index.done(1, over[0])
    assert index.pending(1) == 1  # shard 2 is still unacknowledged


def test_post_missing_hands_out_only_the_shards_not_posted(redis_client, keys):
    index = ScoreIndex(redis_client, keys)
    index.open_version(1)
    index.post(1, "p", [2])
    assert index.post_missing(1, "p", 3) == 2  # shards 1 and 3; 2 was posted already
    assert index.post_missing(1, "p", 3) == 0
    shards = sorted(w.shard for _ in range(4) for w in index.take(1, "r", None, claim_idle_ms=60_000))
    assert shards == [1, 2, 3]


def commandstats(client) -> dict[str, int]:  # type: ignore[no-untyped-def]
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def in_process_top(api: Api, pool_items: list[tuple[str, str]], k: int, measure: str) -> list[str]:
    """The k most uncertain items by the served model, scored in this process; ties to the smaller id."""
    served = api.running.holder.current()
    probs = served.predictor.predict_proba([text for _, text in pool_items])
    scores = MEASURES[measure](probs)
    order = sorted(range(len(pool_items)), key=lambda i: (-scores[i], pool_items[i][0]))
    return [pool_items[i][0] for i in order[:k]]


def query(api: Api, k: int, strategy: int = common_pb2.STRATEGY_LEAST_CONFIDENCE) -> query_pb2.QueryResponse:
    return api.stub.Query(query_pb2.QueryRequest(pool=POOL, k=k, strategy=strategy))


@pytest.mark.parametrize(
    ("strategy", "measure"),
    [(common_pb2.STRATEGY_LEAST_CONFIDENCE, "least_confidence"), (common_pb2.STRATEGY_ENTROPY, "entropy")],
)
def test_an_uncertainty_query_takes_the_top_of_the_ranking_without_reading_the_pool(api, strategy, measure):
    pool_items = reviews(2500)
    assert api.submit_pool(pool_items).accepted == 2500  # three shards
    first = query(api, 5, strategy)
    assert [s.id for s in first.selected] == in_process_top(api, pool_items, 5, measure)
    assert first.ranking.ranked_version == first.model_version == 1
    assert (first.ranking.shards_scored, first.ranking.shards_total) == (3, 3)
    assert all(s.model_version == 1 for s in first.selected)
    served = api.running.holder.current().predictor
    chosen = dict(pool_items)
    np.testing.assert_allclose(
        [list(s.probabilities) for s in first.selected],
        served.predict_proba([chosen[s.id] for s in first.selected]),
        rtol=1e-5,
    )
    api.client.config_resetstat()
    second = query(api, 5, strategy)
    calls = commandstats(api.client)
    assert not {c for c in WHOLE_POOL_READS if calls.get(c)}, calls
    open_items = [item for item in pool_items if item[0] not in {s.id for s in first.selected}]
    assert [s.id for s in second.selected] == in_process_top(api, open_items, 5, measure)


def scored_in_queries(api: Api) -> float:
    return api.running.app.metrics.scored_items.labels("query")._value.get()


@pytest.mark.parametrize(
    ("strategy", "measure"),
    [(common_pb2.STRATEGY_KMEANS_DIVERSITY, "margin"), (common_pb2.STRATEGY_DIVERSITY, "least_confidence")],
)
def test_a_diversity_query_scores_the_top_of_the_ranking_not_the_pool(api, strategy, measure):
    pool_items = reviews(2500)
    api.submit_pool(pool_items)
    first = query(api, 1)  # the pool is ranked (and one item queued) before the Query measured here
    open_items = [item for item in pool_items if item[0] != first.selected[0].id]
    api.client.config_resetstat()
    before = scored_in_queries(api)
    answer = query(api, 5, strategy)
    # The strategy's 10 * k candidates are the top of its measure's ranking; only they are scored for it.
    assert scored_in_queries(api) - before == 50
    top = set(in_process_top(api, open_items, 50, measure))
    assert len({s.id for s in answer.selected}) == 5 and {s.id for s in answer.selected} <= top
    assert answer.model_version == answer.ranking.ranked_version == 1 and answer.candidates == 2499
    calls = commandstats(api.client)
    assert not {c for c in WHOLE_POOL_READS if calls.get(c)}, calls
    # The queued items leave the ranking; the next Query chooses among the next most uncertain.
    again = query(api, 5, strategy)
    assert {s.id for s in again.selected}.isdisjoint({s.id for s in answer.selected})
    assert again.candidates == 2499 - 5


def test_a_diversity_query_scores_no_more_candidates_than_the_callers_bound(api, query_settings, redis_client, keys):
    bounded = start(replace(query_settings, max_query_candidates=20), redis_client, keys)
    try:
        bounded.submit_pool(reviews(300))
        before = scored_in_queries(bounded)
        answer = bounded.stub.Query(
            query_pb2.QueryRequest(pool=POOL, k=5, strategy=common_pb2.STRATEGY_KMEANS_DIVERSITY)
        )
        assert len(answer.selected) == 5 and scored_in_queries(bounded) - before == 20  # not 10 * k = 50
    finally:
        bounded.channel.close()
        bounded.running.stop(0)


def test_a_diversity_query_on_a_pool_not_ranked_yet_scores_a_sample(api, query_settings, redis_client, keys):
    # A replica with no time to help and no scorer running anywhere: the new pool's ranking never completes.
    slow = start(replace(query_settings, query_score_seconds=0), redis_client, keys)
    try:
        slow.running.app.scorer.stop()
        api.running.app.scorer.stop()
        slow.submit_pool(reviews(300))
        with pytest.raises(grpc.RpcError) as refused:
            slow.stub.Query(query_pb2.QueryRequest(pool=POOL, k=5, strategy=common_pb2.STRATEGY_LEAST_CONFIDENCE))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        answer = slow.stub.Query(query_pb2.QueryRequest(pool=POOL, k=5, strategy=common_pb2.STRATEGY_KMEANS_DIVERSITY))
        assert len(answer.selected) == 5 and answer.candidates == 300 and not answer.HasField("ranking")
    finally:
        slow.channel.close()
        slow.running.stop(0)


def test_labeled_and_queued_items_are_skipped_and_new_items_join_the_ranking(api):
    pool_items = reviews(300)
    api.submit_pool(pool_items)
    top = in_process_top(api, pool_items, 3, "least_confidence")
    # Queued outside Query (as a second replica would): the ranking still lists them; Query must skip them.
    LabelingStore(api.client, api.keys).enqueue(POOL, [(top[0], QueuedTask(0.0, 1, "random"))])
    assert [s.id for s in query(api, 2).selected] == top[1:3]
    extra = reviews(40, "late")
    api.submit_pool(extra)
    answer = query(api, 1)
    assert (answer.ranking.shards_scored, answer.ranking.shards_total) == (2, 2)
    assert answer.candidates == 300 + 40 - 3


def test_a_query_out_of_time_answers_from_the_previous_complete_ranking(api, query_settings, redis_client, keys):
    api.submit_pool(reviews(200))
    assert query(api, 1).ranking.ranked_version == 1
    # A second replica that has no time to help and no background scorer: version 2's ranking never completes.
    slow = start(replace(query_settings, query_score_seconds=0), redis_client, keys)
    try:
        slow.running.app.scorer.stop()
        api.running.app.scorer.stop()
        models.write_and_publish(redis_client, keys, query_settings.common.models_path, 2)
        wait_for(lambda: slow.running.holder.current().version == 2, timeout=30, what="version 2 served")
        answer = slow.stub.Query(query_pb2.QueryRequest(pool=POOL, k=1, strategy=common_pb2.STRATEGY_LEAST_CONFIDENCE))
        assert answer.model_version == answer.ranking.ranked_version == 1
        assert answer.ranking.served_version == 2
        assert answer.ranking.shards_scored < answer.ranking.shards_total == 1
        # With time to help, the same replica answers from version 2.
        wait_for(lambda: api.running.holder.current().version == 2, timeout=30, what="version 2 served")
        fresh = query(api, 1)
        assert fresh.model_version == fresh.ranking.ranked_version == fresh.ranking.served_version == 2
    finally:
        slow.channel.close()
        slow.running.stop(0)
