"""Unlabeled pools: items stored once by id, never overwritten."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import redis

from alloop.errors import UnknownPool
from alloop.store.keys import Keys, item_member

ADD_CHUNK = 1000


@dataclass(frozen=True)
class AddResult:
    accepted: int
    duplicate: int


class PoolStore:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._keys = keys

    def add(self, pool: str, items: Sequence[tuple[str, str]], chunk: int = ADD_CHUNK) -> AddResult:
        """Store (id, text) pairs; an id already in the pool keeps its first text (HSETNX), so a retry is a no-op.

        Written in transactions of ``chunk`` items, so no single one holds Redis (single-threaded: every other
        client waits) for long: one transaction of 100,000 reviews blocked it for about half a second. A crash
        part-way leaves a prefix of the items stored; sending the same upload again completes it.
        """
        if not items:
            return AddResult(0, 0)
        key = self._keys.pool_items(pool)
        accepted = 0
        for start in range(0, len(items), chunk):
            pipe = self._r.pipeline(transaction=True)
            pipe.sadd(self._keys.pools, pool)
            for item_id, text in items[start : start + chunk]:
                pipe.hsetnx(key, item_id, text)
            accepted += sum(1 for flag in pipe.execute()[1:] if flag)
        return AddResult(accepted, len(items) - accepted)

    def exists(self, pool: str) -> bool:
        return bool(self._r.sismember(self._keys.pools, pool))

    def require(self, pool: str) -> None:
        if not self.exists(pool):
            raise UnknownPool(pool)

    def count(self) -> int:
        """How many pools exist."""
        return int(self._r.scard(self._keys.pools))

    def new_ids(self, pool: str, ids: Sequence[str], chunk: int = 10_000) -> int:
        """How many of ``ids`` the pool does not hold yet (HEXISTS in pipelined chunks, no texts read)."""
        key = self._keys.pool_items(pool)
        new = 0
        for start in range(0, len(ids), chunk):
            pipe = self._r.pipeline(transaction=False)
            for item_id in ids[start : start + chunk]:
                pipe.hexists(key, item_id)
            new += sum(1 for found in pipe.execute() if not found)
        return new

    def size(self, pool: str) -> int:
        return int(self._r.hlen(self._keys.pool_items(pool)))

    def names(self) -> list[str]:
        return sorted(self._r.smembers(self._keys.pools))

    def texts(self, pool: str, ids: Sequence[str]) -> list[str | None]:
        if not ids:
            return []
        return list(self._r.hmget(self._keys.pool_items(pool), list(ids)))

    def members(self) -> list[str]:
        """Every pool item as a member string, for picking a stop set."""
        out: list[str] = []
        for pool in self.names():
            out.extend(item_member(pool, item_id) for item_id in self._r.hkeys(self._keys.pool_items(pool)))
        return out

    def all_texts(self) -> list[str]:
        """Every pool's text: unlabeled text a bag-of-words vocabulary may adapt on.

        Sorted, because a Redis hash has no stable order and a vocabulary capped at N tokens breaks frequency ties
        by order: the same pool must give the same vocabulary, the same model and the same benchmark numbers.
        """
        texts: list[str] = []
        for pool in sorted(self.names()):
            texts.extend(self._r.hvals(self._keys.pool_items(pool)))
        return sorted(texts)

    def candidates(self, pool: str) -> tuple[list[str], list[str]]:
        """Ids and texts of the pool's items that are neither labeled nor waiting for a label."""
        self.require(pool)
        items = self._r.hgetall(self._keys.pool_items(pool))
        if not items:
            return [], []
        ids = list(items)
        members = [item_member(pool, item_id) for item_id in ids]
        pipe = self._r.pipeline(transaction=False)
        pipe.hmget(self._keys.labels, members)
        pipe.hmget(self._keys.queued, members)
        labeled, queued = pipe.execute()
        keep = [i for i, (lab, que) in enumerate(zip(labeled, queued, strict=True)) if lab is None and que is None]
        return [ids[i] for i in keep], [items[ids[i]] for i in keep]


def choose_stop_set(members: Sequence[str], size: int, seed: int) -> list[str]:
    """A fixed random sample of pool items, the same for the same pool and seed (sorted first, then drawn)."""
    ordered = sorted(members)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(ordered), size=min(size, len(ordered)), replace=False) if ordered else []
    return [ordered[int(i)] for i in sorted(chosen)]
