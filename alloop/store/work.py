"""Shards of pools handed out to whichever replica is free: one Redis stream with a consumer group, and a set per
pool of the shards posted to it.

Both kinds of background work a query replica does go through this: scoring a shard with a version (the score
index, :mod:`alloop.store.scores`) and embedding a shard's items (:mod:`alloop.store.embeddings`). A shard is posted
once however often it is posted (one script adds it to the pool's ``posted`` set and, if it was not there, to the
stream); a replica reads the next entry in the group; an entry a replica read and never acknowledged (it died) is
claimed by another after ``claim_idle_ms`` (XAUTOCLAIM). The stream and the ``posted`` sets live in one slot (the
control slot), so posting is one script on Redis Cluster too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from alloop.store.connection import Client

POST = """
-- KEYS: work stream, posted set (both in the control slot) ; ARGV: pool, shard... ; posts each shard not posted yet
local n = 0
for i = 2, #ARGV do
  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    redis.call('XADD', KEYS[1], '*', 'pool', ARGV[1], 'shard', ARGV[i])
    n = n + 1
  end
end
return n
"""


@dataclass(frozen=True)
class Work:
    """One stream entry: a shard of a pool to work on."""

    entry_id: str
    pool: str
    shard: int


class WorkStream:
    """One stream (``stream``, consumer group ``group``) and its pools' ``posted`` sets (``posted(pool)``).

    ``post_script`` is :data:`POST` registered on ``client``: the owner registers it once, not per stream.
    """

    def __init__(self, client: Client, stream: str, group: str, posted: Any, post_script: Any) -> None:
        self._r = client
        self.stream = stream
        self._group = group
        self._posted = posted
        self._post = post_script

    def open(self) -> None:
        """Create the stream and its group (idempotent)."""
        try:
            self._r.xgroup_create(self.stream, self._group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def exists(self) -> bool:
        return bool(self._r.exists(self.stream))

    def post(self, pool: str, shards: Sequence[int], chunk: int = 1000) -> int:
        """Hand out ``shards`` of ``pool`` (each shard once, however often it is posted); how many were new."""
        posted = 0
        for start in range(0, len(shards), chunk):
            posted += int(
                self._post(keys=[self.stream, self._posted(pool)], args=[pool, *shards[start : start + chunk]])
            )
        return posted

    def post_missing(self, pool: str, shard_count: int) -> int:
        """Hand out every shard of ``pool`` (1..``shard_count``) not posted yet: one SCARD when none is missing. An
        upload calls it even when it stored nothing new, so sending again an upload whose first try stored its
        items and died before posting them posts them."""
        if int(self._r.scard(self._posted(pool))) >= shard_count:
            return 0
        return self.post(pool, list(range(1, shard_count + 1)))

    def take(self, consumer: str, block_ms: int | None, claim_idle_ms: int) -> list[Work]:
        """One entry: first one a dead consumer left pending longer than ``claim_idle_ms``, else the next new one
        (waiting up to ``block_ms``; None: do not wait)."""
        claimed: Any = self._r.xautoclaim(self.stream, self._group, consumer, claim_idle_ms, start_id="0-0", count=1)
        entries = claimed[1]
        if not entries:
            read: Any = self._r.xreadgroup(self._group, consumer, {self.stream: ">"}, count=1, block=block_ms)
            entries = read[0][1] if read else []
        return [Work(entry_id, fields["pool"], int(fields["shard"])) for entry_id, fields in entries if fields]

    def done(self, work: Work) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.xack(self.stream, self._group, work.entry_id)
        pipe.xdel(self.stream, work.entry_id)
        pipe.execute()

    def pending(self) -> int:
        """Entries not yet acknowledged (queued or being worked on)."""
        return int(self._r.xlen(self.stream)) if self.exists() else 0
