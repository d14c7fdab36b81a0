"""The labeling queue, leases and label submission.

Every change that touches several keys runs as one Lua script, so a crash between steps cannot leave an item both
queued and lost: Redis runs a script atomically, and with AOF it is replayed whole or not at all.

Rules (documented in docs/api.md):
- An item is queued at most once while it waits for a label; items already labeled or waiting are not queued again.
- A lease hides the item from other labelers until its deadline; any lease call first puts expired leases back at
  the front of the queue (:meth:`LabelingStore.reclaim_expired` does it too, for a periodic reaper).
- A label is accepted for any item that is waiting for one, leased or not, even after its lease expired (the first
  label wins; the item leaves the queue and any lease). The same label again is an idempotent no-op (counted as
  duplicate). A different label for a labeled item is refused (FAILED_PRECONDITION), as is a label for an item
  that was never queued. A batch is all-or-nothing: one bad label and nothing is recorded.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from alloop.errors import AlreadyLabeled, NotQueued
from alloop.store.keys import Keys, item_member, parse_member
from alloop.validation import quoted

# The queue is a sorted set ordered by score: new items take increasing scores from one counter (FIFO), and a
# reclaimed lease goes back in front of everything with a decreasing negative score from another. Taking a labeled
# item out is one ZREM, O(log n): a list would need an LREM that scans the whole queue for every label.

_ENQUEUE = """
-- KEYS: queued, queue, labels, queue_seq ; ARGV: member1, task1, member2, task2, ... ; returns the members it queued
local added = {}
for i = 1, #ARGV, 2 do
  local m = ARGV[i]
  if redis.call('HEXISTS', KEYS[3], m) == 0 and redis.call('HSETNX', KEYS[1], m, ARGV[i + 1]) == 1 then
    redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), m)
    table.insert(added, m)
  end
end
return added
"""

_RECLAIM = """
-- KEYS: queue, leases, lease_ids, queued, queue_front ; ARGV: now_ms
-- Expired leases go back to the front of the queue, the one that expired first ahead of the others.
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for i = #expired, 1, -1 do
  local m = expired[i]
  redis.call('ZREM', KEYS[2], m)
  redis.call('HDEL', KEYS[3], m)
  if redis.call('HEXISTS', KEYS[4], m) == 1 then
    redis.call('ZADD', KEYS[1], -redis.call('INCR', KEYS[5]), m)
  end
end
return #expired
"""

_LEASE = (
    _RECLAIM.replace("return #expired", "")
    + """
-- ARGV: now_ms, deadline_ms, max_items, lease_id
local out = {}
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[3]))
for i = 1, #popped, 2 do
  local m = popped[i]
  redis.call('ZADD', KEYS[2], ARGV[2], m)
  redis.call('HSET', KEYS[3], m, ARGV[4])
  table.insert(out, m)
  table.insert(out, redis.call('HGET', KEYS[4], m))
end
return out
"""
)

_SUBMIT = """
-- KEYS: queued, labels, queue, leases, lease_ids, stream, pool_items_1 .. pool_items_n
-- ARGV: labeler, now_ms, then per label: member, label, id
local n = (#ARGV - 2) / 3
local fresh = {}
-- An item named twice in one batch is judged against its earlier label in the batch, as if the labels came one
-- by one (same label: duplicate; different: conflict). Without this both copies counted as fresh, and the second
-- one's XADD failed on its already-deleted task after the first was written: a partial batch and a Lua error.
local in_batch = {}
for i = 0, n - 1 do
  local m, label = ARGV[3 + 3 * i], ARGV[4 + 3 * i]
  local existing = redis.call('HGET', KEYS[2], m) or in_batch[m]
  if existing then
    if existing ~= label then
      return {'conflict', m, existing}
    end
  elseif redis.call('HEXISTS', KEYS[1], m) == 0 then
    return {'not_queued', m}
  else
    table.insert(fresh, i)
    in_batch[m] = label
  end
end
for _, i in ipairs(fresh) do
  local m, label, id = ARGV[3 + 3 * i], ARGV[4 + 3 * i], ARGV[5 + 3 * i]
  local pool = cjson.decode(m)[1]
  local task = redis.call('HGET', KEYS[1], m)
  redis.call('HSET', KEYS[2], m, label)
  redis.call('HDEL', KEYS[1], m)
  redis.call('ZREM', KEYS[3], m)
  redis.call('ZREM', KEYS[4], m)
  redis.call('HDEL', KEYS[5], m)
  local text = redis.call('HGET', KEYS[7 + i], id)
  redis.call('XADD', KEYS[6], '*', 'pool', pool, 'id', id, 'label', label, 'text', text or '',
             'labeler', ARGV[1], 'labeled_at_ms', ARGV[2], 'task', task)
end
return {'ok', tostring(#fresh), tostring(n - #fresh)}
"""

_MIGRATE_LIST_QUEUE = """
-- KEYS: old list queue, queue, queued, leases, queue_seq ; moves a queue kept as a LIST (before the sorted set)
-- into the sorted set, in order, dropping members that no longer wait for a label or are leased.
if redis.call('TYPE', KEYS[1])['ok'] ~= 'list' then return 0 end
local moved = 0
for _, m in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if redis.call('HEXISTS', KEYS[3], m) == 1 and not redis.call('ZSCORE', KEYS[4], m) then
    redis.call('ZADD', KEYS[2], 'NX', redis.call('INCR', KEYS[5]), m)
    moved = moved + 1
  end
end
redis.call('DEL', KEYS[1])
return moved
"""


@dataclass(frozen=True)
class QueuedTask:
    """Why an item was queued: the score and model version that chose it."""

    score: float
    model_version: int
    strategy: str

    def to_json(self) -> str:
        return json.dumps({"score": self.score, "model_version": self.model_version, "strategy": self.strategy})

    @classmethod
    def from_json(cls, raw: str | None) -> QueuedTask:
        data = json.loads(raw) if raw else {}
        return cls(float(data.get("score", 0.0)), int(data.get("model_version", 0)), str(data.get("strategy", "")))


@dataclass(frozen=True)
class Lease:
    pool: str
    item_id: str
    text: str
    lease_id: str
    expires_unix_ms: int
    task: QueuedTask


@dataclass(frozen=True)
class LabelSubmission:
    pool: str
    item_id: str
    label: int


@dataclass(frozen=True)
class SubmitResult:
    accepted: int
    duplicate: int


def now_ms() -> int:
    return int(time.time() * 1000)


class LabelingStore:
    def __init__(self, client: redis.Redis, keys: Keys, *, clock: Callable[[], int] = now_ms) -> None:
        self._r = client
        self._keys = keys
        self._clock = clock
        self._enqueue = client.register_script(_ENQUEUE)
        self._reclaim = client.register_script(_RECLAIM)
        self._lease = client.register_script(_LEASE)
        self._submit = client.register_script(_SUBMIT)
        self._migrate = client.register_script(_MIGRATE_LIST_QUEUE)

    def migrate(self) -> int:
        """Move a queue an older release kept as a Redis LIST into today's sorted set (once; then a no-op)."""
        k = self._keys
        return int(self._migrate(keys=[k.legacy_queue, k.queue, k.queued, k.leases, k.queue_seq]))

    def enqueue(self, pool: str, tasks: Sequence[tuple[str, QueuedTask]]) -> set[str]:
        """Queue items for labeling; returns the ids this call queued (labeled or already waiting ones are skipped,
        so two concurrent Query calls that chose the same item queue it once, and only one of them reports it)."""
        if not tasks:
            return set()
        argv: list[str] = []
        for item_id, task in tasks:
            argv += [item_member(pool, item_id), task.to_json()]
        k = self._keys
        added = self._enqueue(keys=[k.queued, k.queue, k.labels, k.queue_seq], args=argv)
        return {parse_member(m)[1] for m in added}

    def reclaim_expired(self) -> int:
        k = self._keys
        return int(self._reclaim(keys=[k.queue, k.leases, k.lease_ids, k.queued, k.queue_front], args=[self._clock()]))

    def lease(self, max_items: int, lease_seconds: float) -> list[Lease]:
        now = self._clock()
        deadline = now + int(lease_seconds * 1000)
        lease_id = uuid.uuid4().hex
        k = self._keys
        flat = self._lease(
            keys=[k.queue, k.leases, k.lease_ids, k.queued, k.queue_front], args=[now, deadline, max_items, lease_id]
        )
        pairs = [(parse_member(flat[i]), QueuedTask.from_json(flat[i + 1])) for i in range(0, len(flat), 2)]
        pipe = self._r.pipeline(transaction=False)
        for (pool, item_id), _ in pairs:
            pipe.hget(k.pool_items(pool), item_id)
        texts = pipe.execute() if pairs else []
        return [
            Lease(pool, item_id, text or "", lease_id, deadline, task)
            for ((pool, item_id), task), text in zip(pairs, texts, strict=True)
        ]

    def submit(self, labels: Sequence[LabelSubmission], labeler: str = "") -> SubmitResult:
        """Record a batch of labels atomically (all or nothing) and append the new ones to the label stream."""
        if not labels:
            return SubmitResult(0, 0)
        k = self._keys
        keys = [k.queued, k.labels, k.queue, k.leases, k.lease_ids, k.label_stream]
        args: list[str | int] = [labeler, self._clock()]
        for sub in labels:
            keys.append(k.pool_items(sub.pool))
            args += [item_member(sub.pool, sub.item_id), str(sub.label), sub.item_id]
        outcome = self._submit(keys=keys, args=args)
        status = outcome[0]
        if status == "conflict":
            pool, item_id = parse_member(outcome[1])
            raise AlreadyLabeled(
                f"item {quoted(item_id)} of pool {quoted(pool)} is already labeled {outcome[2]}; a different label is refused "
                "(the first label stands). Nothing in this batch was recorded."
            )
        if status == "not_queued":
            pool, item_id = parse_member(outcome[1])
            raise NotQueued(
                f"item {quoted(item_id)} of pool {quoted(pool)} is not waiting for a label (never queued by Query); "
                "nothing in this batch was recorded"
            )
        return SubmitResult(int(outcome[1]), int(outcome[2]))

    # --- read side ---------------------------------------------------------------------------------------------
    def queue_length(self) -> int:
        return int(self._r.zcard(self._keys.queue))

    def leased_count(self) -> int:
        return int(self._r.zcard(self._keys.leases))

    def stream_length(self) -> int:
        """Accepted labels on the stream: the trainer deletes each one it takes in, so this is its lag."""
        return int(self._r.xlen(self._keys.label_stream))

    def waiting_count(self) -> int:
        return int(self._r.hlen(self._keys.queued))

    def label_of(self, pool: str, item_id: str) -> int | None:
        value = self._r.hget(self._keys.labels, item_member(pool, item_id))
        return None if value is None else int(value)
