"""The labeling queues (one per pool), leases and label submission.

Every change that touches several keys runs as one Lua script, so a crash between steps cannot leave an item both
queued and lost: Redis runs a script atomically, and with AOF it is replayed whole or not at all.

Rules (documented in docs/api.md):
- An item is queued at most once while it waits for a label; items already labeled or waiting are not queued again.
- A labeler leases from one pool or from every pool (then the items queued first, whichever pool holds them).
- A lease hides the item from other labelers until its deadline; any lease call first puts expired leases back at
  the front of their queue (:meth:`LabelingStore.reclaim_expired` does it too, for a periodic reaper).
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

from alloop.errors import AlreadyLabeled, NotQueued
from alloop.store.connection import Client
from alloop.store.keys import Keys, item_member, parse_member
from alloop.validation import quoted

# The queue is a sorted set ordered by score, kept twice with the same scores: one for every pool and one per pool.
# New items take increasing scores from one counter (FIFO), and a reclaimed lease goes back in front of everything
# with a decreasing negative score from another. Taking a labeled item out is a ZREM from each, O(log n): a list
# would need an LREM that scans the whole queue for every label. Every key here is in the control slot (see
# alloop.store.keys); the scripts compute a pool's queue key from the queue prefix and the member's pool, a key of
# that same slot.

_ENQUEUE = """
-- KEYS: queued, queue of every pool, queue of the pool, labels, queue_seq ; ARGV: member1, task1, member2, ...
-- Returns the members it queued.
local added = {}
for i = 1, #ARGV, 2 do
  local m = ARGV[i]
  if redis.call('HEXISTS', KEYS[4], m) == 0 and redis.call('HSETNX', KEYS[1], m, ARGV[i + 1]) == 1 then
    local score = redis.call('INCR', KEYS[5])
    redis.call('ZADD', KEYS[2], score, m)
    redis.call('ZADD', KEYS[3], score, m)
    table.insert(added, m)
  end
end
return added
"""

_RECLAIM = """
-- KEYS: leases, lease_ids, queued, queue_front, queue of every pool ; ARGV: now_ms, queue prefix
-- Expired leases go back to the front of the queues, the one that expired first ahead of the others.
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for i = #expired, 1, -1 do
  local m = expired[i]
  redis.call('ZREM', KEYS[1], m)
  redis.call('HDEL', KEYS[2], m)
  if redis.call('HEXISTS', KEYS[3], m) == 1 then
    local score = -redis.call('INCR', KEYS[4])
    redis.call('ZADD', KEYS[5], score, m)
    redis.call('ZADD', ARGV[2] .. cjson.decode(m)[1], score, m)
  end
end
"""

_LEASE = (
    _RECLAIM
    + """
-- KEYS[6], if given: the one pool's queue to lease from ; ARGV: now_ms, queue prefix, deadline_ms, max_items, lease_id
-- Takes the front of that queue (or of every pool's) and the same members out of the other queue.
local out = {}
local from = KEYS[6] or KEYS[5]
local popped = redis.call('ZPOPMIN', from, tonumber(ARGV[4]))
for i = 1, #popped, 2 do
  local m = popped[i]
  if KEYS[6] then
    redis.call('ZREM', KEYS[5], m)
  else
    redis.call('ZREM', ARGV[2] .. cjson.decode(m)[1], m)
  end
  redis.call('ZADD', KEYS[1], ARGV[3], m)
  redis.call('HSET', KEYS[2], m, ARGV[5])
  table.insert(out, m)
  table.insert(out, redis.call('HGET', KEYS[3], m))
end
return out
"""
)

_SUBMIT = """
-- KEYS: queued, labels, leases, lease_ids, stream, queue of every pool, then the queue of each label's pool
-- ARGV: labeler, now_ms, then per label: member, label, id, text
local n = (#ARGV - 2) / 4
local fresh = {}
-- An item named twice in one batch is judged against its earlier label in the batch, as if the labels came one
-- by one (same label: duplicate; different: conflict). Without this both copies counted as fresh, and the second
-- one's XADD failed on its already-deleted task after the first was written: a partial batch and a Lua error.
local in_batch = {}
for i = 0, n - 1 do
  local m, label = ARGV[3 + 4 * i], ARGV[4 + 4 * i]
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
  local m, label, id, text = ARGV[3 + 4 * i], ARGV[4 + 4 * i], ARGV[5 + 4 * i], ARGV[6 + 4 * i]
  local pool = cjson.decode(m)[1]
  local task = redis.call('HGET', KEYS[1], m)
  redis.call('HSET', KEYS[2], m, label)
  redis.call('HDEL', KEYS[1], m)
  redis.call('ZREM', KEYS[6], m)
  redis.call('ZREM', KEYS[7 + i], m)
  redis.call('ZREM', KEYS[3], m)
  redis.call('HDEL', KEYS[4], m)
  redis.call('XADD', KEYS[5], '*', 'pool', pool, 'id', id, 'label', label, 'text', text,
             'labeler', ARGV[1], 'labeled_at_ms', ARGV[2], 'task', task)
end
return {'ok', tostring(#fresh), tostring(n - #fresh)}
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
    def __init__(self, client: Client, keys: Keys, *, clock: Callable[[], int] = now_ms) -> None:
        self._r = client
        self._keys = keys
        self._clock = clock
        self._enqueue = client.register_script(_ENQUEUE)
        self._reclaim = client.register_script(_RECLAIM + "return #expired")
        self._lease = client.register_script(_LEASE)
        self._submit = client.register_script(_SUBMIT)

    def _reclaim_keys(self) -> list[str]:
        k = self._keys
        return [k.leases, k.lease_ids, k.queued, k.queue_front, k.queue_all]

    def enqueue(self, pool: str, tasks: Sequence[tuple[str, QueuedTask]]) -> set[str]:
        """Queue items for labeling; returns the ids this call queued (labeled or already waiting ones are skipped,
        so two concurrent Query calls that chose the same item queue it once, and only one of them reports it)."""
        if not tasks:
            return set()
        argv: list[str] = []
        for item_id, task in tasks:
            argv += [item_member(pool, item_id), task.to_json()]
        k = self._keys
        added = self._enqueue(keys=[k.queued, k.queue_all, k.queue(pool), k.labels, k.queue_seq], args=argv)
        return {parse_member(m)[1] for m in added}

    def reclaim_expired(self) -> int:
        return int(self._reclaim(keys=self._reclaim_keys(), args=[self._clock(), self._keys.queue_prefix]))

    def lease(self, max_items: int, lease_seconds: float, pool: str | None = None) -> list[Lease]:
        """Lease up to ``max_items`` queued items of ``pool``, or of every pool (None): the items queued first,
        whichever pool they are in; a reclaimed lease goes first."""
        now = self._clock()
        deadline = now + int(lease_seconds * 1000)
        lease_id = uuid.uuid4().hex
        k = self._keys
        queue = [k.queue(pool)] if pool is not None else []
        flat = self._lease(
            keys=[*self._reclaim_keys(), *queue], args=[now, k.queue_prefix, deadline, max_items, lease_id]
        )
        pairs = [(parse_member(flat[i]), QueuedTask.from_json(flat[i + 1])) for i in range(0, len(flat), 2)]
        pipe = self._r.pipeline(transaction=False)
        for (item_pool, item_id), _ in pairs:
            pipe.hget(k.pool_items(item_pool), item_id)
        texts = pipe.execute() if pairs else []
        return [
            Lease(item_pool, item_id, text or "", lease_id, deadline, task)
            for ((item_pool, item_id), task), text in zip(pairs, texts, strict=True)
        ]

    def submit(self, labels: Sequence[LabelSubmission], labeler: str = "") -> SubmitResult:
        """Record a batch of labels atomically (all or nothing) and append the new ones to the label stream.

        The texts the stream carries are read first, from each pool's own slot: an item's text never changes once
        stored, so reading it outside the script that records the label reads what the script would have."""
        if not labels:
            return SubmitResult(0, 0)
        k = self._keys
        pipe = self._r.pipeline(transaction=False)
        for sub in labels:
            pipe.hget(k.pool_items(sub.pool), sub.item_id)
        texts = pipe.execute()
        keys = [k.queued, k.labels, k.leases, k.lease_ids, k.label_stream, k.queue_all]
        args: list[str | int] = [labeler, self._clock()]
        for sub, text in zip(labels, texts, strict=True):
            keys.append(k.queue(sub.pool))
            args += [item_member(sub.pool, sub.item_id), str(sub.label), sub.item_id, text or ""]
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
    def queue_length(self, pool: str | None = None) -> int:
        """Items queued and not leased, in ``pool`` or in every pool (None)."""
        return int(self._r.zcard(self._keys.queue(pool) if pool is not None else self._keys.queue_all))

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
