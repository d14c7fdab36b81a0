"""The score index: every pool ranked by each uncertainty measure, kept in Redis, built by all query replicas.

Work is handed out through one Redis stream per model version (consumer group ``scorers``): an entry names a pool
and one of its shards. A version's work is posted when a replica first serves it (every shard of every pool) and by
every upload (each shard of its pool not posted yet, for the published version). Whichever replica is free reads
the next entry; an entry a replica took and never acknowledged (it died) is claimed by another after ``claim_idle_ms``.

A shard's scores are recorded by one script that first adds the shard to the ranking's ``done`` set: a shard
scored twice (a slow replica whose entry was claimed) is written once. A ranking is complete when every shard
posted for it is done; the pool's ``ranked`` pointer then moves to that version and older rankings are dropped.
Query reads the ranking the pointer names (see :mod:`query_service.app` for the rule it follows).

The work stream and the ``posted`` sets live in the control slot, the rankings in each pool's slot (see
:mod:`alloop.store.keys`), so posting and recording are one script each, and moving the pointer is a third step:
``done`` only ever holds posted shards, and whoever finds a ranking complete with the pointer behind it (a replica
that died between recording the last shard and moving the pointer) moves it (:meth:`ScoreIndex.progress`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alloop.store.connection import Client
from alloop.store.keys import Keys
from alloop.store.work import POST, Work, WorkStream

GROUP = "scorers"
MEASURE_PARTS = ("least_confidence", "margin", "entropy")
_PARTS = (*MEASURE_PARTS, "probs", "done")

_RECORD = """
-- KEYS: done, least_confidence, margin, entropy, probs (the pool's slot)
-- ARGV: shard, then per item: id, -least_confidence, -margin, -entropy, probabilities
-- Returns -1 if the shard was recorded before, else how many shards are done.
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return -1 end
for i = 2, #ARGV, 5 do
  redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i])
  redis.call('ZADD', KEYS[3], ARGV[i + 2], ARGV[i])
  redis.call('ZADD', KEYS[4], ARGV[i + 3], ARGV[i])
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 4])
end
return redis.call('SCARD', KEYS[1])
"""

_ADVANCE = """
-- KEYS: ranked pointer ; ARGV: version ; moves the pointer forward only. 1 if it moved.
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Progress:
    """How far ``version``'s ranking of a pool has got, and which version's ranking Query reads now."""

    version: int
    shards_done: int
    shards_posted: int
    ranked_version: int

    @property
    def complete(self) -> bool:
        return self.shards_posted > 0 and self.shards_done >= self.shards_posted


class ScoreIndex:
    def __init__(self, client: Client, keys: Keys) -> None:
        self._r = client
        self._keys = keys
        self._post = client.register_script(POST)
        self._record = client.register_script(_RECORD)
        self._advance = client.register_script(_ADVANCE)

    # --- work ----------------------------------------------------------------------------------------------------
    def work(self, version: int) -> WorkStream:
        """``version``'s work: every shard of every pool it is to score."""
        k = self._keys
        return WorkStream(self._r, k.score_work(version), GROUP, lambda pool: k.posted(pool, version), self._post)

    def open_version(self, version: int) -> None:
        """Create ``version``'s work stream and group (idempotent): from then on uploads post their shards to it."""
        self.work(version).open()

    def is_open(self, version: int) -> bool:
        return self.work(version).exists()

    def post_missing(self, version: int, pool: str, shard_count: int) -> int:
        """Hand out every shard of ``pool`` not posted for ``version`` yet (:meth:`WorkStream.post_missing`)."""
        if int(self._r.scard(self._keys.posted(pool, version))) >= shard_count:
            return 0
        return self.post(version, pool, list(range(1, shard_count + 1)))

    def post(self, version: int, pool: str, shards: Sequence[int], chunk: int = 1000) -> int:
        """Hand out ``shards`` of ``pool`` for ``version`` (each shard once, however often it is posted)."""
        self._r.sadd(self._keys.ranking_versions(pool), version)  # first, so a posted ranking can always be dropped
        return self.work(version).post(pool, shards, chunk)

    def take(self, version: int, consumer: str, block_ms: int | None, claim_idle_ms: int) -> list[Work]:
        """One entry of ``version``'s work (:meth:`WorkStream.take`)."""
        return self.work(version).take(consumer, block_ms, claim_idle_ms)

    def done(self, version: int, work: Work) -> None:
        self.work(version).done(work)

    def pending(self, version: int) -> int:
        """Entries of ``version`` not yet acknowledged (queued or being scored)."""
        return self.work(version).pending()

    # --- scores --------------------------------------------------------------------------------------------------
    def record(
        self, version: int, pool: str, shard: int, ids: Sequence[str], probs: np.ndarray, measures: np.ndarray
    ) -> int:
        """Write one shard's scores (``measures``: one column per :data:`MEASURE_PARTS`); -1: already recorded,
        1: this shard completed the ranking (older rankings of the pool are dropped), 0: otherwise."""
        k = self._keys
        args: list[str | int | bytes] = [shard]
        probs32 = np.asarray(probs, dtype=np.float32)
        for i, item_id in enumerate(ids):
            args += [item_id, *(repr(-float(m)) for m in measures[i]), probs32[i].tobytes()]
        done = int(
            self._record(
                keys=[
                    k.ranking(pool, version, "done"),
                    *(k.ranking(pool, version, part) for part in MEASURE_PARTS),
                    k.ranking(pool, version, "probs"),
                ],
                args=args,
            )
        )
        if done < 0:
            return -1
        return int(done >= int(self._r.scard(k.posted(pool, version))) and self._complete(pool, version))

    def _complete(self, pool: str, version: int) -> bool:
        """Point ``pool``'s ranking at ``version`` (whose every posted shard is done) and drop older rankings."""
        moved = bool(self._advance(keys=[self._keys.ranked_version(pool)], args=[version]))
        if moved:
            self.drop_older(pool, version)
        return moved

    def drop_older(self, pool: str, version: int) -> None:
        k = self._keys
        older = [int(v) for v in self._r.smembers(k.ranking_versions(pool)) if int(v) < version]
        if older:
            pipe = self._r.pipeline(transaction=False)
            for v in older:
                for key in (*(k.ranking(pool, v, part) for part in _PARTS), k.posted(pool, v)):
                    pipe.unlink(key)  # one key per command: a cluster pipeline routes each by its slot
                pipe.srem(k.ranking_versions(pool), v)
            pipe.execute()

    def progress(self, pool: str, version: int) -> Progress:
        """Where ``version``'s ranking of ``pool`` stands; a complete ranking whose pointer is behind (its last
        recorder died before moving it) gets the pointer moved here."""
        k = self._keys
        pipe = self._r.pipeline(transaction=False)
        pipe.scard(k.ranking(pool, version, "done"))
        pipe.scard(k.posted(pool, version))
        pipe.get(k.ranked_version(pool))
        done, posted, ranked = pipe.execute()
        progress = Progress(version, int(done), int(posted), int(ranked or 0))
        if progress.complete and progress.ranked_version < version and self._complete(pool, version):
            return Progress(version, progress.shards_done, progress.shards_posted, version)
        return progress

    def window(self, pool: str, version: int, measure: str, start: int, count: int) -> list[tuple[str, float]]:
        """Items ``start`` .. ``start + count - 1`` of the ranking, most uncertain first, with their score."""
        rows: Any = self._r.zrange(
            self._keys.ranking(pool, version, measure), start, start + count - 1, withscores=True
        )
        return [(item_id, -float(score)) for item_id, score in rows]

    def size(self, pool: str, version: int) -> int:
        return int(self._r.zcard(self._keys.ranking(pool, version, MEASURE_PARTS[0])))

    def probabilities(self, pool: str, version: int, ids: Sequence[str]) -> list[np.ndarray | None]:
        # NEVER_DECODE: bytes, whatever the client decodes (a plain client and a cluster client both honour it)
        values = self._r.execute_command("HMGET", self._keys.ranking(pool, version, "probs"), *ids, NEVER_DECODE=True)
        return [None if v is None else np.frombuffer(v, dtype=np.float32) for v in values]

    def forget(self, pool: str, version: int, ids: Sequence[str]) -> None:
        """Take items out of the ranking (queued or labeled: Query would skip them from now on anyway)."""
        if not ids:
            return
        pipe = self._r.pipeline(transaction=False)
        for part in MEASURE_PARTS:
            pipe.zrem(self._keys.ranking(pool, version, part), *ids)
        pipe.execute()
