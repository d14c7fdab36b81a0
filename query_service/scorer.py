"""A replica's share of keeping the score index fresh: take a shard from the work stream, score it, record it.

Each replica runs one :class:`ShardScorer` thread. It scores with the version the replica serves: when that
changes it opens the version's work (posting every shard of every pool, idempotently), then takes entries one at a
time. A Query may also call :meth:`ShardScorer.help` to take entries on its own thread while it waits for a
ranking (see :mod:`query_service.app`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

import numpy as np
import redis

from alloop.store.embeddings import EmbeddingStore
from alloop.store.pool import PoolStore
from alloop.store.scores import MEASURE_PARTS, ScoreIndex
from alloop.store.work import Work
from alloop.strategies import MEASURES
from query_service.features import FeatureCache
from query_service.model_holder import ModelHolder, ServedModel

log = logging.getLogger(__name__)


class ShardScorer:
    def __init__(
        self,
        index: ScoreIndex,
        pools: PoolStore,
        holder: ModelHolder,
        features: FeatureCache,
        *,
        claim_idle_ms: int = 30_000,
        consumer: str | None = None,
        on_scored: Callable[[int, float], None] | None = None,
        gate: Callable[[], None] = lambda: None,
        embeddings: EmbeddingStore | None = None,
    ) -> None:
        self._index = index
        self._pools = pools
        self._holder = holder
        self._features = features
        self._claim_idle_ms = claim_idle_ms
        self.consumer = consumer or f"replica-{uuid.uuid4().hex[:12]}"
        self._on_scored = on_scored or (lambda items, seconds: None)
        self._gate = gate  # before the first read of the store (alloop.store.layout.LayoutGate.ensure)
        # The pools' sentence vectors: a version that joins them to its input scores a shard only once its vectors
        # are stored, and never runs the encoder on pool items.
        self._embeddings = embeddings
        self.waiting_for_vectors = 0  # shards put off until their vectors are stored
        self._opened: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self, version: int) -> None:
        """Post every shard of every pool for ``version`` (once per replica and version; idempotent in Redis)."""
        if version in self._opened:
            return
        self._index.open_version(version)
        for pool in self._pools.names():
            shards = self._pools.shard_count(pool)
            self._index.post(version, pool, list(range(1, shards + 1)))
        self._opened.add(version)

    def step(self, served: ServedModel, block_ms: int | None) -> int:
        """Score at most one entry of ``served``'s work; returns how many were scored (0 or 1)."""
        self.open(served.version)
        work = self._index.take(served.version, self.consumer, block_ms, self._claim_idle_ms)
        for entry in work:
            self.score(served, entry)
        return len(work)

    def score(self, served: ServedModel, work: Work) -> None:
        if self._waits_for(served) and not self._embeddings.shard_done(work.pool, work.shard):  # type: ignore[union-attr]
            # Left unacknowledged: taken again (by any replica) once it has been idle ALLOOP_SCORE_CLAIM_SECONDS.
            self.waiting_for_vectors += 1
            return
        started = time.perf_counter()
        ids = self._pools.shard_ids(work.pool, [work.shard])[0]
        ids, texts = self._pools.open_items(work.pool, ids)
        if ids:
            features = self._features.features(served.predictor, work.pool, ids, texts)
            probs = served.predictor.predict_proba_features(features)
            measures = np.column_stack([MEASURES[name](probs) for name in MEASURE_PARTS])
        else:
            probs = measures = np.zeros((0, 0), dtype=np.float32)
        self._index.record(served.version, work.pool, work.shard, ids, probs, measures)
        self._index.done(served.version, work)
        self._on_scored(len(ids), time.perf_counter() - started)

    def help(self, served: ServedModel, pool: str, deadline: float) -> None:
        """Take entries of ``served``'s work (any pool's) until its ranking of ``pool`` is complete or the
        monotonic ``deadline`` passes; then return, complete or not."""
        self.open(served.version)
        if self._waits_for(served) and not self._embeddings.progress(pool).complete:  # type: ignore[union-attr]
            return  # its shards wait for vectors, not for a scorer: helping would only wait out the deadline
        while not self._index.progress(pool, served.version).complete and time.monotonic() < deadline:
            if not self.step(served, block_ms=None):
                # Nothing to take: another replica is scoring the last shards; wait for it, not on the stream.
                time.sleep(0.02)

    def _waits_for(self, served: ServedModel) -> bool:
        """Whether ``served`` scores from stored sentence vectors (and so a shard waits until they are there)."""
        return bool(served.predictor.sentence_width) and self._embeddings is not None

    # --- the replica's background thread ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="shard-scorer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            served = self._holder.current_or_none()
            if served is None:
                self._stop.wait(0.2)
                continue
            try:
                self._gate()
                self.step(served, block_ms=500)
            except redis.exceptions.RedisError as exc:
                log.warning("shard scorer: Redis cannot be used (%s: %s); retrying", type(exc).__name__, exc)
                self._opened.clear()  # Redis may have restarted without the streams: post again
                self._stop.wait(1.0)
            except Exception:
                log.exception("shard scorer error; retrying")
                self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
