"""A replica's cache of pool items' features, so a Query does not re-tokenize the whole pool every time.

Tokenizing is most of what scoring a pool costs a bag-of-words model: 40,000 IMDB reviews take about 5 s to turn
into 1-2-gram counts on 2 cores, and well under 1 s to score once counted. A pool changes little between two
Queries (a round's labelled items leave it), and consecutive versions usually share their vectorizer (the linear
family keeps its vocabulary while the pools' text is unchanged; a warm-started BiLSTM keeps its own), so the
features are kept per pool and reused while :attr:`Predictor.fingerprint` stays the same.

A version whose input joins a sentence vector to the counts (the linear family's encoder block) gets each pool
item's stored vector (:mod:`alloop.store.embeddings`, through ``sentence_vectors``) rather than running the encoder:
a Query or a new version never re-embeds the pool.

An entry is keyed by the item id *and* its text, so an item whose text changed is never scored on stale features.
The cache is bounded by rows; a pool that would not fit is scored without it. It holds only the latest
fingerprint: a new vectorizer drops everything. Memory: up to ``max_rows`` rows, plus while a pool grows one copy
of its rows being stacked and the block a Query takes (so briefly two to three times the bound). When the bound is
reached, the pool is re-tokenized from scratch rather than compacted: simpler, and rare at the default bound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from alloop.models.text_model import Features, Predictor

SentenceVectors = Callable[[str, Sequence[str], Sequence[str]], npt.NDArray[np.float32]]
"""``(pool, ids, texts) -> one sentence vector per item``: the stored ones, the encoder's for an item without."""


@dataclass
class _PoolFeatures:
    rows: dict[tuple[str, int], int] = field(default_factory=dict)  # (item id, hash of its text) -> row
    blocks: list[Features] = field(default_factory=list)
    matrix: Features | None = None  # the blocks stacked, built when a lookup needs it

    @property
    def size(self) -> int:
        return len(self.rows)

    def add(self, keys: Sequence[tuple[str, int]], block: Features) -> None:
        start = self.size
        self.rows.update((key, start + i) for i, key in enumerate(keys))
        self.blocks.append(block)
        self.matrix = None

    def take(self, rows: np.ndarray) -> Features:
        if self.matrix is None:
            sparse = sp.issparse(self.blocks[0])
            self.matrix = sp.vstack(self.blocks, format="csr") if sparse else np.concatenate(self.blocks)
            self.blocks = [self.matrix]
        return self.matrix[rows]


class FeatureCache:
    """Thread-safe; one per query-service replica, injected into :class:`query_service.app.QueryApp`."""

    def __init__(self, max_rows: int, sentence_vectors: SentenceVectors | None = None) -> None:
        self.max_rows = max_rows
        self._sentence_vectors = sentence_vectors
        self._lock = threading.Lock()
        self._fingerprint: str | None = None
        self._pools: dict[str, _PoolFeatures] = {}
        self.misses = 0  # rows vectorized so far: what the tests and the benchmark read

    def _rows(self) -> int:
        return sum(p.size for p in self._pools.values())

    def features(self, predictor: Predictor, pool: str, ids: Sequence[str], texts: Sequence[str]) -> Features:
        """The features of ``texts`` (pool items ``ids``), in order, vectorizing only the items not seen before.

        Vectorizing new items happens under the lock: two Queries on a cold pool wait for one tokenization
        instead of both doing it.
        """
        if self.max_rows <= 0 or len(ids) > self.max_rows or not ids:
            return self._vectorize(predictor, pool, ids, texts)
        fingerprint = predictor.fingerprint
        keys = [(item_id, hash(text)) for item_id, text in zip(ids, texts, strict=True)]
        with self._lock:
            if fingerprint != self._fingerprint:
                self._fingerprint, self._pools = fingerprint, {}
            entry = self._pools.setdefault(pool, _PoolFeatures())
            missing = [i for i, key in enumerate(keys) if key not in entry.rows]
            if self._rows() + len(missing) > self.max_rows:
                # Full: start this pool over with its current items only (the rows of labelled items go), and
                # drop the other pools too if that is still too many.
                self._pools[pool] = entry = _PoolFeatures()
                missing = list(range(len(keys)))
                if self._rows() + len(missing) > self.max_rows:
                    self._pools = {pool: entry}
            if missing:
                block = self._vectorize(predictor, pool, [ids[i] for i in missing], [texts[i] for i in missing])
                entry.add([keys[i] for i in missing], block)
                self.misses += len(missing)
                if len(missing) == len(keys):
                    return block  # all new (a shard scored for the first time): no need to stack the pool's rows
            rows = np.fromiter((entry.rows[key] for key in keys), dtype=np.int64, count=len(keys))
            return entry.take(rows)

    def _vectorize(self, predictor: Predictor, pool: str, ids: Sequence[str], texts: Sequence[str]) -> Features:
        if predictor.sentence_width and self._sentence_vectors is not None and texts:
            return predictor.features_with_vectors(texts, self._sentence_vectors(pool, ids, texts))
        return predictor.features(texts)
