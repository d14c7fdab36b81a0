"""Moving the keys of an older release's layout into today's (:mod:`alloop.store.keys`), on a single Redis.

Before keys carried hash tags, every key was ``PREFIX:name`` and the labeling queue was one sorted set for every
pool (before that, a list). :func:`migrate` moves such a store into the tagged layout: each key is renamed by a
script that renames it only if the old name exists and the new one does not, the queue is split by pool in one
script, and the old score index, which the replicas rebuild from the pools, is dropped. Every step is idempotent,
so services that start together, or a migration cut short by a crash, converge on the same store: a service runs
it before it reads anything. A store on Redis Cluster never had the old layout (its scripts span slots), so
:func:`migrate` returns at once there.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import cast

from alloop.errors import IntegrityError
from alloop.store.connection import Client, is_cluster
from alloop.store.keys import Keys

log = logging.getLogger(__name__)

# Old name (after "PREFIX:") -> the Keys attribute that names it today. The pool list is moved last: while the old
# one exists the migration is not finished, which is what a service starting up checks.
_CONTROL = {
    "queue:seq": "queue_seq",
    "queue:front": "queue_front",
    "queued": "queued",
    "leases": "leases",
    "lease_ids": "lease_ids",
    "labels": "labels",
    "labels:stream": "label_stream",
    "train:set": "training_set",
    "train:untrained": "untrained",
    "train:lock": "round_lock",
    "train:stopset": "stop_set",
    "train:stop_predictions": "stop_predictions",
    "train:rounds": "rounds",
    "models:versions": "versions",
    "models:current": "current_version",
    "models:next": "next_version",
}

_RENAME = """
-- KEYS: old, new ; renames old to new unless new exists. 1: renamed, 0: nothing to do, -1: both exist
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1
"""

_SPLIT_QUEUE = """
-- KEYS: old sorted-set queue, older list queue, queued, leases, queue_seq, queue of every pool ; ARGV: queue prefix
-- Moves each queued member into today's queues with its score; the list form (older still) in order, behind it,
-- skipping members that no longer wait for a label or are leased. Returns how many it moved.
local moved = 0
local function add(score, m)
  redis.call('ZADD', KEYS[6], 'NX', score, m)
  redis.call('ZADD', ARGV[1] .. cjson.decode(m)[1], 'NX', score, m)
  moved = moved + 1
end
if redis.call('TYPE', KEYS[1])['ok'] == 'zset' then
  local rows = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #rows, 2 do add(rows[i + 1], rows[i]) end
  redis.call('DEL', KEYS[1])
end
if redis.call('TYPE', KEYS[2])['ok'] == 'list' then
  for _, m in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
    if redis.call('HEXISTS', KEYS[3], m) == 1 and not redis.call('ZSCORE', KEYS[4], m) then
      add(redis.call('INCR', KEYS[5]), m)
    end
  end
  redis.call('DEL', KEYS[2])
end
return moved
"""


@dataclass(frozen=True)
class Migration:
    renamed: int = 0
    queued_moved: int = 0
    index_dropped: int = 0

    def __bool__(self) -> bool:
        return bool(self.renamed or self.queued_moved or self.index_dropped)


def migrate(client: Client, keys: Keys) -> Migration:
    """Move an older release's keys under ``keys.prefix`` into today's layout (a no-op when there are none)."""
    if is_cluster(client):
        return Migration()
    old = f"{keys.prefix}:"
    if not client.exists(*(old + name for name in (*_CONTROL, "pools", "queue:order", "queue"))):
        return Migration()
    rename = client.register_script(_RENAME)

    def move(source: str, target: str) -> int:
        outcome = int(rename(keys=[source, target]))
        if outcome < 0:
            raise IntegrityError(
                f"Redis holds both {source} (the older layout) and {target} (today's): a service of the older "
                "release may still be running. Stop every alloop service, merge or delete one of the two by hand, "
                "then start again (docs/operations.md, Upgrading)"
            )
        return outcome

    renamed = sum(move(old + name, getattr(keys, attribute)) for name, attribute in _CONTROL.items())
    split = client.register_script(_SPLIT_QUEUE)
    queued_moved = int(
        split(
            keys=[old + "queue:order", old + "queue", keys.queued, keys.leases, keys.queue_seq, keys.queue_all],
            args=[keys.queue_prefix],
        )
    )
    pools = cast("set[str]", client.smembers(old + "pools")) | cast("set[str]", client.smembers(keys.pools))
    for pool in sorted(pools):
        renamed += move(f"{old}pool:{pool}:items", keys.pool_items(pool))
        renamed += move(f"{old}pool:{pool}:shards", keys.pool_shards(pool))
        shards = int(cast("str | None", client.get(keys.pool_shards(pool))) or 0)
        for shard in range(1, shards + 1):
            renamed += move(f"{old}pool:{pool}:shard:{shard}", keys.pool_shard(pool, shard))
    stale = list(client.scan_iter(match=_glob_escaped(old) + "index:*", count=1000))
    for start in range(0, len(stale), 500):
        client.unlink(*stale[start : start + 500])
    if client.exists(old + "pools"):
        client.sunionstore(keys.pools, [keys.pools, old + "pools"])
        client.unlink(old + "pools")
        renamed += 1
    done = Migration(renamed, queued_moved, len(stale))
    if done:
        log.info(
            "moved the store under %r into the tagged key layout: %d keys renamed, %d queued items moved to their "
            "pool's queue, %d old score-index keys dropped",
            keys.prefix,
            done.renamed,
            done.queued_moved,
            done.index_dropped,
        )
    return done


def _glob_escaped(text: str) -> str:
    """``text`` as a SCAN pattern that matches only itself (a prefix may hold ``*``, ``?``, ``[`` or ``\\``)."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class LayoutGate:
    """Runs :func:`migrate` once, before the first use of the store by this process.

    A query replica may start while Redis is down; every request and its shard scorer pass this gate first, so
    nothing reads or writes today's keys before the older layout's are moved (the first one through migrates, under
    a lock; a Redis error leaves the gate closed for the next one)."""

    def __init__(self, client: Client, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._lock = threading.Lock()
        self._open = False

    def ensure(self) -> None:
        if self._open:
            return
        with self._lock:
            if not self._open:
                migrate(self._client, self._keys)
                self._open = True
