"""Sentence vectors for a round of the linear family's encoder block: the store's, read by item, and the encoder's
for texts no pool holds (the validation and test splits, an initial labelled set).

The query replicas embed every pool item once, when it arrives (:mod:`alloop.store.embeddings`); the trainer reads
those vectors and never embeds the pools. What it embeds itself (the splits, labelled items outside every pool) it
keeps in memory by text, so each is embedded once per process. A round whose corpus has an item without a stored
vector yet (a pool still being embedded) runs without the encoder block: its rows cannot be pseudo-labelled on
vectors the trainer would have to compute, and waiting is cheaper than embedding a pool here.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt

from alloop.store.embeddings import DTYPE, EmbeddingStore
from alloop.store.keys import parse_member
from alloop.store.pool import TEXT_READ_CHUNK, PoolStore

log = logging.getLogger(__name__)

Encode = Callable[[Sequence[str]], npt.NDArray[np.float32]]


class RoundVectors:
    """What :func:`alloop.models.training.train_round` asks for sentence vectors (``SentenceVectorSource``)."""

    def __init__(self, store: EmbeddingStore, pools: PoolStore, encode: Encode, sha256: str) -> None:
        self._store = store
        self._pools = pools
        self._encode = encode
        self.sha256 = sha256
        self._embedded: dict[str, npt.NDArray[np.float32]] = {}  # by text, kept across rounds
        self._stored: dict[str, npt.NDArray[np.float32]] = {}  # by text, this round's reads from the store
        self.missing_in_store = 0  # corpus items of this round without a stored vector
        self.embedded_here = 0  # texts this process embedded (tests and logs read it)

    def load(self, labelled_members: Iterable[str], pool_ids: dict[str, list[str]]) -> None:
        """Read the stored vectors of the round's labelled items (member strings) and of its corpus items
        (``pool_ids``: the ids per pool whose texts are the corpus), forgetting the previous round's."""
        self._stored = {}
        self.missing_in_store = 0
        self.add(labelled_members)
        for pool, ids in pool_ids.items():
            self._read(pool, ids, corpus=True)

    def add(self, members: Iterable[str]) -> None:
        """Read the stored vectors of more pool items (member strings: the labelled items, the stop set)."""
        by_pool: dict[str, list[str]] = defaultdict(list)
        for member in members:
            pool, item_id = parse_member(member)
            by_pool[pool].append(item_id)
        for pool, ids in by_pool.items():
            self._read(pool, ids, corpus=False)

    def _read(self, pool: str, ids: list[str], corpus: bool) -> None:
        for start in range(0, len(ids), TEXT_READ_CHUNK):
            chunk = ids[start : start + TEXT_READ_CHUNK]
            texts = self._pools.texts(pool, chunk)
            for text, vector in zip(texts, self._store.vectors(pool, chunk), strict=True):
                if text is None:
                    continue
                if vector is None:
                    self.missing_in_store += int(corpus)
                else:
                    self._stored[text] = vector

    def __call__(self, texts: Sequence[str], *, embed_missing: bool) -> npt.NDArray[np.float32] | None:
        """One vector per text; texts with none stored are embedded here if ``embed_missing``, else the answer is
        None (the round goes without the block)."""
        missing = sorted({t for t in texts if t not in self._stored and t not in self._embedded})
        if missing and not embed_missing:
            log.info(
                "%d corpus texts have no stored sentence vector yet: this round goes without the encoder block",
                len(missing),
            )
            return None
        if missing:
            vectors = self._encode(missing).astype(DTYPE).astype(np.float32)  # as the store keeps them
            self._embedded.update(zip(missing, vectors, strict=True))
            self.embedded_here += len(missing)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._stored.get(t, self._embedded.get(t)) for t in texts])  # type: ignore[misc]

    def every(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One vector per text, embedding here what the store does not hold."""
        vectors = self(texts, embed_missing=True)
        assert vectors is not None  # embed_missing never leaves a text out
        return vectors
