"""Sentence embeddings stored once per pool item, on real Redis (single and cluster) with the real encoder: shards
handed out to every replica, each item embedded once, work a dead replica took taken over, and a query replica that
embeds what a SubmitPool stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from alloop.errors import Unavailable
from alloop.models.encoder import SentenceEncoder
from alloop.models.encoder.files import NAME
from alloop.store.embeddings import EmbeddingStore
from alloop.store.pool import PoolStore
from query_service.embedder import ShardEmbedder, stored_vectors
from tests.conftest import BACKENDS
from tests.integration.services import wait_for
from tests.integration.test_query_api import reviews, start

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("backend", BACKENDS, indirect=True)]

FLOAT16 = 1e-3  # a unit vector's components stored as float16


@pytest.fixture(scope="module")
def encoder(encoder_dir: Path) -> SentenceEncoder:
    return SentenceEncoder(encoder_dir, max_windows=2)


class Counting:
    """The real encoder, counting the texts it is given."""

    def __init__(self, encoder: SentenceEncoder) -> None:
        self.encoder = encoder
        self.texts: list[str] = []

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += texts
        return self.encoder.embed(texts)


def snippets(n: int, prefix: str = "s") -> list[tuple[str, str]]:
    words = ["good", "bad", "plot", "actor", "boring", "great", "slow", "funny", "dark", "sweet"]
    return [(f"{prefix}{i:03d}", f"{words[i % 10]} {words[(i * 3) % 10]} film number {i}") for i in range(n)]


def test_each_item_is_embedded_once_by_whichever_replica_is_free(redis_client, keys, encoder):
    pools = PoolStore(redis_client, keys)
    items = snippets(50)
    pools.add("p", items[:30], chunk=10)
    pools.add("q", items[30:], chunk=10)
    store = EmbeddingStore(redis_client, keys, NAME)
    first, second = Counting(encoder), Counting(encoder)
    a = ShardEmbedder(store, pools, first, consumer="a")
    b = ShardEmbedder(store, pools, second, consumer="b")
    assert a.post_all() == 5 and b.post_all() == 0  # three shards of p, two of q, handed out once
    while a.step(block_ms=None) + b.step(block_ms=None):
        pass
    assert sorted(first.texts + second.texts) == sorted(t for _, t in items)  # every item once, none twice
    assert first.texts and second.texts
    for pool, chunk in (("p", items[:30]), ("q", items[30:])):
        vectors = store.vectors(pool, [i for i, _ in chunk])
        np.testing.assert_allclose(np.stack(vectors), encoder.embed([t for _, t in chunk]), atol=FLOAT16)
        assert store.progress(pool).complete and store.progress(pool).vectors == len(chunk)
    assert store.pending() == 0
    # A second upload posts only its new shard, and only its items are embedded.
    pools.add("p", [*items[:5], *snippets(3, "new")], chunk=10)
    assert b.post("p") == 1
    b.drain(deadline=float("inf"))
    assert second.texts[-3:] == [t for _, t in snippets(3, "new")]
    assert store.vectors("p", ["new000", "nothing"])[1] is None


def test_a_shard_recorded_twice_keeps_its_first_vectors(redis_client, keys):
    store = EmbeddingStore(redis_client, keys, NAME)
    ones, twos = np.ones((2, 4), dtype=np.float32), np.full((2, 4), 2.0, dtype=np.float32)
    assert store.record("p", 1, ["a", "b"], ones) == 2
    assert store.record("p", 1, ["a", "b"], twos) == -1  # a slow replica whose entry was taken over
    np.testing.assert_array_equal(np.stack(store.vectors("p", ["a", "b"])), ones)
    assert store.missing("p", ["a", "c", "b"]) == ["c"]
    other = EmbeddingStore(redis_client, keys, "another-encoder")  # vectors of two encoders never mix
    assert other.vectors("p", ["a"]) == [None]
    with pytest.raises(ValueError, match="2 ids and 1 vectors"):
        store.record("p", 2, ["a", "b"], ones[:1])


def test_a_request_that_needs_vectors_not_stored_yet_is_refused_not_embedded(redis_client, keys):
    store = EmbeddingStore(redis_client, keys, NAME)
    PoolStore(redis_client, keys).add("p", snippets(3), chunk=10)
    store.post_missing("p", 1)
    vectors = stored_vectors(store)
    with pytest.raises(Unavailable, match="2 of the 2 items .* pool 'p' have no sentence vector yet .* 0 of 1 shards"):
        vectors("p", ["s000", "s001"], ["", ""])
    store.record("p", 1, ["s000", "s001"], np.eye(2, 4, dtype=np.float32))
    np.testing.assert_array_equal(vectors("p", ["s001", "s000"], ["", ""]), np.eye(2, 4)[::-1])


def test_work_a_dead_replica_took_is_taken_over(redis_client, keys, encoder):
    pools = PoolStore(redis_client, keys)
    items = snippets(20)
    pools.add("p", items, chunk=10)
    store = EmbeddingStore(redis_client, keys, NAME)
    dead = ShardEmbedder(store, pools, Counting(encoder), consumer="dead")
    dead.post_all()
    taken = store.take("dead", None, claim_idle_ms=60_000)  # took an entry, then was killed before recording it
    assert len(taken) == 1
    survivor = Counting(encoder)
    alive = ShardEmbedder(store, pools, survivor, consumer="alive", claim_idle_ms=1)
    alive.drain(deadline=float("inf"))
    assert sorted(survivor.texts) == sorted(t for _, t in items)
    assert store.progress("p").complete and store.pending() == 0


def test_a_replica_with_an_encoder_embeds_what_an_upload_stored(query_settings, redis_client, keys, encoder_dir):
    settings = replace(query_settings, common=replace(query_settings.common, encoder_dir=encoder_dir))
    api = start(settings, redis_client, keys)
    try:
        items = reviews(12)
        assert api.submit_pool(items, pool="emb").accepted == 12
        store = EmbeddingStore(redis_client, keys, NAME)
        wait_for(lambda: store.progress("emb").vectors == 12, timeout=120, what="12 vectors")
        assert store.progress("emb").complete
        assert api.running.metrics.embedded_items._value.get() == 12
        expected = SentenceEncoder(encoder_dir).embed([t for _, t in items])
        np.testing.assert_allclose(np.stack(store.vectors("emb", [i for i, _ in items])), expected, atol=FLOAT16)
    finally:
        api.channel.close()
        api.running.stop(0)
