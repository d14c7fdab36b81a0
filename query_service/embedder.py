"""A replica's share of embedding arriving pool items: take a shard from the embedding work, embed what has no vector
yet, record it (:mod:`alloop.store.embeddings`).

A replica runs one :class:`ShardEmbedder` thread when a sentence encoder is configured (``ALLOOP_ENCODER_DIR``).
At start it posts every shard of every pool that was never handed out (pools stored before the encoder was
configured get embedded too); from then on uploads post their own new shards.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import redis

from alloop.errors import Unavailable
from alloop.store.embeddings import EmbeddingStore
from alloop.store.pool import PoolStore
from alloop.store.work import Work

log = logging.getLogger(__name__)

Encode = Callable[[Sequence[str]], npt.NDArray[np.float32]]
"""Texts in, one vector per text out (:meth:`alloop.models.encoder.SentenceEncoder.embed`)."""


class ShardEmbedder:
    def __init__(
        self,
        store: EmbeddingStore,
        pools: PoolStore,
        encode: Encode,
        *,
        claim_idle_ms: int = 300_000,
        consumer: str | None = None,
        on_embedded: Callable[[int, float], None] | None = None,
        gate: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._pools = pools
        self._encode = encode
        self._claim_idle_ms = claim_idle_ms
        self.consumer = consumer or f"replica-{uuid.uuid4().hex[:12]}"
        self._on_embedded = on_embedded or (lambda items, seconds: None)
        self._gate = gate
        self._posted = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def post_all(self) -> int:
        """Hand out every shard of every pool that was never handed out; returns how many. Creates the work's group
        first (again after a Redis error: a restarted Redis may have lost it)."""
        self._store.open()
        posted = sum(self._store.post_missing(pool, self._pools.shard_count(pool)) for pool in self._pools.names())
        self._posted = True
        return posted

    def post(self, pool: str) -> int:
        """An upload's call: hand out ``pool``'s shards not handed out yet."""
        return self._store.post_missing(pool, self._pools.shard_count(pool))

    def step(self, block_ms: int | None) -> int:
        """Embed at most one entry; returns how many entries were handled (0 or 1)."""
        if not self._posted:
            self.post_all()
        work = self._store.take(self.consumer, block_ms, self._claim_idle_ms)
        for entry in work:
            self.embed(entry)
        return len(work)

    def embed(self, work: Work) -> int:
        """Embed ``work``'s items that have no vector (every item of the shard, labelled or not: the trainer
        reads labelled items' vectors too); returns how many were embedded."""
        started = time.perf_counter()
        ids = self._store.missing(work.pool, self._pools.shard_ids(work.pool, [work.shard])[0])
        texts = self._pools.texts(work.pool, ids)
        present = [(i, t) for i, t in zip(ids, texts, strict=True) if t is not None]
        vectors = self._encode([t for _, t in present]) if present else np.zeros((0, 0), dtype=np.float32)
        self._store.record(work.pool, work.shard, [i for i, _ in present], vectors)
        self._store.done(work)
        self._on_embedded(len(present), time.perf_counter() - started)
        return len(present)

    def drain(self, deadline: float) -> None:
        """Handle entries on the calling thread until none is left or the monotonic ``deadline`` passes."""
        while time.monotonic() < deadline and self.step(block_ms=None):
            pass

    # --- the replica's background thread ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="shard-embedder", daemon=True)
        self._thread.start()

    REPOST_SECONDS = 30.0
    """How often the thread posts every pool's shards never posted: an upload through a replica without an encoder
    posts none, and such shards would otherwise wait for an encoder replica to restart."""

    def _run(self) -> None:
        posted_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self._gate()
                if time.monotonic() - posted_at > self.REPOST_SECONDS:
                    self.post_all()
                    posted_at = time.monotonic()
                self.step(block_ms=500)
            except redis.exceptions.RedisError as exc:
                log.warning("shard embedder: Redis cannot be used (%s: %s); retrying", type(exc).__name__, exc)
                self._posted = False  # Redis may have restarted without the stream: post again
                self._stop.wait(1.0)
            except Exception:
                log.exception("shard embedder error; retrying")
                self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def stored_vectors(store: EmbeddingStore) -> Callable[[str, Sequence[str], Sequence[str]], npt.NDArray[np.float32]]:
    """``(pool, ids, texts) -> vectors``: each item's stored vector (query_service.features.SentenceVectors).

    An item the embedding workers have not reached yet makes the call fail with :class:`Unavailable` rather than
    be embedded here: a Query that scores a sample could otherwise run the encoder on hundreds of thousands of
    items on the request path (the score index never asks: it waits for a shard's vectors)."""

    def vectors(pool: str, ids: Sequence[str], texts: Sequence[str]) -> npt.NDArray[np.float32]:
        stored = store.vectors(pool, ids)
        missing = sum(row is None for row in stored)
        if missing:
            progress = store.progress(pool)
            raise Unavailable(
                f"{missing} of the {len(ids)} items this request scores in pool {pool!r} have no sentence vector yet "
                f"(the pool is being embedded: {progress.shards_done} of {progress.shards_posted} shards done); "
                "the served version needs them: retry when the pool is embedded, or use an uncertainty strategy, "
                "which answers from the previous complete ranking meanwhile"
            )
        return np.stack(stored).astype(np.float32, copy=False)  # type: ignore[arg-type]

    return vectors
