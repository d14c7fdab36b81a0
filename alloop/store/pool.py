"""Unlabeled pools: items stored once by id, never overwritten."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import numpy as np

from alloop.errors import UnknownPool
from alloop.store.connection import Client
from alloop.store.keys import Keys, item_member

ADD_CHUNK = 1000
# A pool's sample is drawn from the ids of this many times its share, read shard by shard: enough shards that the
# sample spreads over the pool's uploads, few enough that the read stays bounded by the sample, not by the pool.
SAMPLE_SPREAD = 4
TEXT_READ_CHUNK = 10_000
SHARDS_PER_READ = 8  # shards fetched in one pipelined round trip when a sample reads shard by shard

_ADD = """
-- KEYS: items, shards (the pool's slot) ; ARGV: shard key prefix, then id, text pairs
-- Stores each new id (HSETNX: an id keeps its first text) and lists the ids this call added as one new shard.
local added = {}
for i = 2, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then table.insert(added, ARGV[i]) end
end
if #added == 0 then return {0, 0} end
local n = redis.call('INCR', KEYS[2])
for j = 1, #added, 500 do
  redis.call('RPUSH', ARGV[1] .. n, unpack(added, j, math.min(j + 499, #added)))
end
return {n, #added}
"""

_SHARD_EXISTING = """
-- KEYS: items, shards ; ARGV: shard key prefix, shard size
-- A pool stored before pools had shards: split its ids into shards once (a no-op when it has them).
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('HLEN', KEYS[1]) == 0 then return 0 end
local ids = redis.call('HKEYS', KEYS[1])
table.sort(ids)
local size = tonumber(ARGV[2])
local n = 0
for j = 1, #ids, size do
  n = n + 1
  for s = j, math.min(j + size - 1, #ids), 500 do
    redis.call('RPUSH', ARGV[1] .. n, unpack(ids, s, math.min(s + 499, j + size - 1, #ids)))
  end
end
redis.call('SET', KEYS[2], n)
return n
"""


@dataclass(frozen=True)
class AddResult:
    accepted: int
    duplicate: int
    shards: tuple[int, ...] = ()  # the shards this call created, one per chunk that stored a new item


class PoolStore:
    def __init__(self, client: Client, keys: Keys) -> None:
        self._r = client
        self._keys = keys
        self._add = client.register_script(_ADD)
        self._shard_existing = client.register_script(_SHARD_EXISTING)

    def add(self, pool: str, items: Sequence[tuple[str, str]], chunk: int = ADD_CHUNK) -> AddResult:
        """Store (id, text) pairs; an id already in the pool keeps its first text (HSETNX), so a retry is a no-op.

        Written in scripts of ``chunk`` items, so no single one holds Redis (single-threaded: every other client
        waits) for long. Each chunk's new ids become one shard of the pool, the unit in which pools are scored and
        sampled. A crash part-way leaves a prefix of the items stored; sending the same upload again completes it.
        The pool is listed first (its own key, in another slot than its items), so every stored item has a listed
        pool.
        """
        k = self._keys
        accepted = 0
        shards: list[int] = []
        if items:
            self._r.sadd(k.pools, pool)
        for start in range(0, len(items), chunk):
            argv = [k.pool_shard_prefix(pool)]
            for item_id, text in items[start : start + chunk]:
                argv += [item_id, text]
            shard, added = self._add(keys=[k.pool_items(pool), k.pool_shards(pool)], args=argv)
            accepted += int(added)
            if int(shard):
                shards.append(int(shard))
        return AddResult(accepted, len(items) - accepted, tuple(shards))

    def shard_count(self, pool: str) -> int:
        """How many shards the pool has (numbered 1..n); a pool stored before shards existed is split first."""
        k = self._keys
        count = self._r.get(k.pool_shards(pool))
        if count is None:
            return int(
                self._shard_existing(
                    keys=[k.pool_items(pool), k.pool_shards(pool)], args=[k.pool_shard_prefix(pool), ADD_CHUNK]
                )
            )
        return int(count)

    def shard_ids(self, pool: str, shards: Sequence[int]) -> list[list[str]]:
        pipe = self._r.pipeline(transaction=False)
        for shard in shards:
            pipe.lrange(self._keys.pool_shard(pool, shard), 0, -1)
        return list(pipe.execute()) if shards else []

    def open_items(self, pool: str, ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """Those of ``ids`` that are neither labeled nor waiting for a label, with their texts (reads only them)."""
        keep = [item_id for item_id, is_open in zip(ids, self.is_open(pool, ids), strict=True) if is_open]
        texts = self.texts(pool, keep)
        return [i for i, t in zip(keep, texts, strict=True) if t is not None], [t for t in texts if t is not None]

    def is_open(self, pool: str, ids: Sequence[str]) -> list[bool]:
        """For each id: True while it is neither labeled nor waiting for a label."""
        if not ids:
            return []
        members = [item_member(pool, item_id) for item_id in ids]
        pipe = self._r.pipeline(transaction=False)
        pipe.hmget(self._keys.labels, members)
        pipe.hmget(self._keys.queued, members)
        labeled, queued = pipe.execute()
        return [lab is None and que is None for lab, que in zip(labeled, queued, strict=True)]

    def sample_open(self, pool: str, rng: np.random.Generator, limit: int) -> tuple[list[str], list[str]]:
        """Up to ``limit`` open items (neither labeled nor waiting), read shard by shard in an order drawn from
        ``rng``, never more shards than it takes; returned sorted by id, so a seed names one sample for one pool
        state. Items beyond ``limit`` in the last shard read are dropped by a draw from ``rng`` as well."""
        self.require(pool)
        order = rng.permutation(self.shard_count(pool)) + 1
        ids: list[str] = []
        texts: list[str] = []
        for start in range(0, len(order), SHARDS_PER_READ):
            for shard in self.shard_ids(pool, [int(s) for s in order[start : start + SHARDS_PER_READ]]):
                open_ids, open_texts = self.open_items(pool, shard)
                ids += open_ids
                texts += open_texts
            if len(ids) >= limit:
                break
        ranked = sorted(range(len(ids)), key=ids.__getitem__)
        if len(ranked) > limit:
            ranked = [ranked[int(i)] for i in np.sort(rng.choice(len(ranked), size=limit, replace=False))]
        return [ids[i] for i in ranked], [texts[i] for i in ranked]

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
        return sorted(cast("set[str]", self._r.smembers(self._keys.pools)))

    def texts(self, pool: str, ids: Sequence[str]) -> list[str | None]:
        if not ids:
            return []
        return cast("list[str | None]", self._r.hmget(self._keys.pool_items(pool), list(ids)))

    def members(self) -> list[str]:
        """Every pool item as a member string, for picking a stop set."""
        out: list[str] = []
        for pool in self.names():
            ids = cast("list[str]", self._r.hkeys(self._keys.pool_items(pool)))
            out.extend(item_member(pool, item_id) for item_id in ids)
        return out

    def all_texts(self) -> list[str]:
        """Every pool's text: unlabeled text a bag-of-words vocabulary may adapt on.

        Sorted, because a Redis hash has no stable order and a vocabulary capped at N tokens breaks frequency ties
        by order: the same pool must give the same vocabulary, the same model and the same benchmark numbers.
        """
        texts: list[str] = []
        for pool in sorted(self.names()):
            texts.extend(cast("list[str]", self._r.hvals(self._keys.pool_items(pool))))
        return sorted(texts)

    def sample_members(self, limit: int, seed: int) -> list[str]:
        """At most ``limit`` pool items as member strings, sorted: every item while the pools hold at most ``limit``,
        else a seeded sample (:meth:`sample_ids`). For picking a stop set without reading every id of a large pool."""
        sizes = self._sizes()
        if sum(sizes.values()) <= limit:
            return sorted(self.members())
        return sorted(
            item_member(pool, item_id) for pool, ids in self._sample(sizes, limit, seed).items() for item_id in ids
        )

    def sample_texts(self, limit: int, seed: int) -> tuple[list[str], bool]:
        """The pools' text for a round's statistics, sorted, and whether it is a sample.

        While the pools hold at most ``limit`` items this is every text (:meth:`all_texts`, and False). Past it, it
        is the texts of a seeded sample of ``limit`` items (:meth:`sample_ids`, and True): what reading them costs is
        bounded by ``limit``, not by the pools.
        """
        sizes = self._sizes()
        if sum(sizes.values()) <= limit:
            return self.all_texts(), False
        texts: list[str] = []
        for pool, ids in self._sample(sizes, limit, seed).items():
            for start in range(0, len(ids), TEXT_READ_CHUNK):
                texts.extend(t for t in self.texts(pool, ids[start : start + TEXT_READ_CHUNK]) if t is not None)
        return sorted(texts), True

    def sample_corpus(self, limit: int, seed: int) -> tuple[list[str], bool, dict[str, list[str]]]:
        """:meth:`sample_texts`, and the ids whose texts they are, per pool, read together (an upload between two
        reads could otherwise change the sample's shares)."""
        sizes = self._sizes()
        texts: list[str] = []
        ids: dict[str, list[str]] = {}
        if sum(sizes.values()) <= limit:
            for pool in sorted(sizes):
                items = cast("dict[str, str]", self._r.hgetall(self._keys.pool_items(pool)))
                ids[pool] = list(items)
                texts.extend(items.values())
            return sorted(texts), False, ids
        for pool, chosen in self._sample(sizes, limit, seed).items():
            kept = ids.setdefault(pool, [])
            for start in range(0, len(chosen), TEXT_READ_CHUNK):
                chunk = chosen[start : start + TEXT_READ_CHUNK]
                for item_id, text in zip(chunk, self.texts(pool, chunk), strict=True):
                    if text is not None:
                        kept.append(item_id)
                        texts.append(text)
        return sorted(texts), True, ids

    def sample_ids(self, limit: int, seed: int) -> dict[str, list[str]]:
        """A seeded sample of ``limit`` item ids in all (the pools hold more), per pool, each pool's share in proportion to its size.

        Each pool's shards are read in an order fixed by a hash of (seed, pool, shard) until the ids read reach
        ``SAMPLE_SPREAD`` times the pool's share; of those, the ids ranked lowest by a hash of (seed, pool, id) are
        the sample. Hashes, not a random stream: the same pools and seed give the same sample in every round and
        process, and a pool that grows keeps the shards it had in the same order, so most of its sample stays.
        """
        return self._sample(self._sizes(), limit, seed)

    def _sample(self, sizes: dict[str, int], limit: int, seed: int) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for pool, share in _shares(sizes, limit).items():
            if share == 0:
                continue
            shards = sorted(range(1, self.shard_count(pool) + 1), key=partial(_rank_shard, seed, pool))
            ids: list[str] = []
            for start in range(0, len(shards), SHARDS_PER_READ):
                for shard in self.shard_ids(pool, shards[start : start + SHARDS_PER_READ]):
                    ids.extend(shard)
                if len(ids) >= SAMPLE_SPREAD * share:
                    break
            out[pool] = sorted(ids, key=partial(_rank, seed, pool))[:share]
        return out

    def _sizes(self) -> dict[str, int]:
        """Every pool's item count, in one round trip."""
        names = self.names()
        pipe = self._r.pipeline(transaction=False)
        for pool in names:
            pipe.hlen(self._keys.pool_items(pool))
        return {pool: int(n) for pool, n in zip(names, pipe.execute(), strict=True)}

    def candidates(self, pool: str) -> tuple[list[str], list[str]]:
        """Ids and texts of the pool's items that are neither labeled nor waiting for a label."""
        self.require(pool)
        items = cast("dict[str, str]", self._r.hgetall(self._keys.pool_items(pool)))
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
    chosen: Any = rng.choice(len(ordered), size=min(size, len(ordered)), replace=False) if ordered else []
    return [ordered[int(i)] for i in sorted(chosen)]


def _rank(seed: int, pool: str, name: str) -> bytes:
    """A seeded, process-independent order key (Python's own ``hash`` of a str changes per process)."""
    return hashlib.blake2b(f"{seed}\x00{pool}\x00{name}".encode(), digest_size=8).digest()


def _rank_shard(seed: int, pool: str, shard: int) -> bytes:
    return _rank(seed, pool, str(shard))


def _shares(sizes: dict[str, int], limit: int) -> dict[str, int]:
    """``limit`` split over the pools in proportion to their sizes, by largest remainders (ties to the name), each
    share at most its pool's size."""
    total = sum(sizes.values())
    if total <= limit:
        return dict(sizes)
    exact = {pool: size * limit / total for pool, size in sizes.items()}
    shares = {pool: int(value) for pool, value in exact.items()}
    left = limit - sum(shares.values())
    for pool in sorted(exact, key=lambda p: (shares[p] - exact[p], p))[:left]:
        shares[pool] += 1
    return shares
