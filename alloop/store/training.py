"""The trainer's side of the label stream: a consumer group feeding an idempotent training set.

A label is acknowledged (XACK) in the same Lua script that writes it into the training set, so it is either both
in the set and acked, or neither: a trainer killed at any point re-reads unacked entries (its own on restart, a dead
consumer's through XAUTOCLAIM) and writing them again changes nothing, because the set is keyed by item. The same
script deletes the entry from the stream (XDEL), so the stream holds only labels the trainer has not yet taken in:
it does not grow with the number of labels ever given.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from alloop.store.connection import Client, Pipeline
from alloop.store.keys import Keys, item_member, parse_member

log = logging.getLogger(__name__)

GROUP = "trainer"

_INGEST = """
-- KEYS: training_set, untrained, stream ; ARGV: group, then per entry: stream_id, member, record_json
local added = 0
for i = 2, #ARGV, 3 do
  local sid, m, rec = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local old = redis.call('HGET', KEYS[1], m)
  if old ~= rec then
    redis.call('HSET', KEYS[1], m, rec)
    if not old then
      added = added + 1
    end
  end
  if sid ~= '' then
    redis.call('XACK', KEYS[3], ARGV[1], sid)
    redis.call('XDEL', KEYS[3], sid)
  end
end
if added > 0 then
  redis.call('INCRBY', KEYS[2], added)
end
return added
"""


@dataclass(frozen=True)
class LabeledItem:
    member: str
    text: str
    label: int


class TrainingSetStore:
    def __init__(self, client: Client, keys: Keys, *, consumer: str) -> None:
        self._r = client
        self._keys = keys
        self.consumer = consumer
        self._ingest = client.register_script(_INGEST)
        self._renew = client.register_script(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
        )
        self._release = client.register_script(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
        )
        self._take_over = client.register_script(
            "local v = redis.call('GET', KEYS[1]) "
            "if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
        )

    def ensure_group(self) -> None:
        try:
            self._r.xgroup_create(self._keys.label_stream, GROUP, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _write(self, rows: Sequence[tuple[str, str, str, int]]) -> int:
        """rows: (stream_id or '', member, text, label)."""
        if not rows:
            return 0
        args: list[str] = [GROUP]
        for sid, member, text, label in rows:
            args += [sid, member, json.dumps({"text": text, "label": int(label)}, ensure_ascii=False)]
        k = self._keys
        return int(self._ingest(keys=[k.training_set, k.untrained, k.label_stream], args=args))

    def seed(self, pool: str, items: Iterable[tuple[str, str, int]]) -> int:
        """Load an initial labeled set (id, text, label); idempotent, so a restart re-seeding changes nothing."""
        rows = [("", item_member(pool, item_id), text, label) for item_id, text, label in items]
        added = 0
        for start in range(0, len(rows), 1000):
            added += self._write(rows[start : start + 1000])
        return added

    def consume(
        self,
        *,
        block_ms: int = 1000,
        count: int = 500,
        claim_idle_ms: int = 60_000,
    ) -> int:
        """One step of the consumer loop: claim a dead consumer's entries, re-read our own unacked ones, then new."""
        self.ensure_group()
        stream = self._keys.label_stream
        # Redis 6.2 answers [cursor, entries], 7.x adds a third element (deleted ids): take entries either way.
        claimed = self._r.xautoclaim(stream, GROUP, self.consumer, min_idle_time=claim_idle_ms, count=count)[1]
        pending = self._r.xreadgroup(GROUP, self.consumer, {stream: "0"}, count=count)
        entries = list(claimed) + _entries(pending)
        if not entries:
            entries = _entries(self._r.xreadgroup(GROUP, self.consumer, {stream: ">"}, count=count, block=block_ms))
        rows = []
        for sid, fields in entries:
            if not fields:  # deleted from the stream while pending: nothing to write, just ack
                self._r.xack(stream, GROUP, sid)
                continue
            rows.append((sid, item_member(fields["pool"], fields["id"]), fields["text"], int(fields["label"])))
        return self._write(rows)

    def snapshot(self) -> tuple[list[LabeledItem], int]:
        """The training set and the untrained count, read in one MULTI so they describe the same moment."""
        pipe = self._r.pipeline(transaction=True)
        pipe.hgetall(self._keys.training_set)
        pipe.get(self._keys.untrained)
        raw, untrained = pipe.execute()
        items = []
        for member, rec in sorted(raw.items()):
            data = json.loads(rec)
            items.append(LabeledItem(member, data["text"], int(data["label"])))
        return items, int(untrained or 0)

    def size(self) -> int:
        return int(self._r.hlen(self._keys.training_set))

    def untrained(self) -> int:
        return int(self._r.get(self._keys.untrained) or 0)

    def mark_trained(self, pipe: Pipeline, count: int) -> None:
        """Queue, in the publishing MULTI, the bookkeeping for a round that started with ``count`` untrained labels."""
        if count:
            pipe.decrby(self._keys.untrained, count)

    def acquire_round_lock(self, token: str, ttl_ms: int) -> bool:
        """One round at a time across trainer replicas: the lock expires if its holder dies."""
        return bool(self._r.set(self._keys.round_lock, token, nx=True, px=ttl_ms))

    def take_over_own_lock(self) -> bool:
        """Free a round lock this consumer took before it died (its token starts with ``<consumer>/``), so a
        restarted trainer with a stable name does not wait out the lock's expiry. True if one was freed."""
        return bool(self._take_over(keys=[self._keys.round_lock], args=[f"{self.consumer}/"]))

    def renew_round_lock(self, token: str, ttl_ms: int) -> bool:
        return bool(self._renew(keys=[self._keys.round_lock], args=[token, ttl_ms]))

    def release_round_lock(self, token: str) -> None:
        self._release(keys=[self._keys.round_lock], args=[token])

    # --- stopping criterion ------------------------------------------------------------------------------------
    def stop_set(self) -> list[tuple[str, str]]:
        return [parse_member(m) for m in self._r.lrange(self._keys.stop_set, 0, -1)]

    def fix_stop_set(self, members: Sequence[str]) -> None:
        """Store the stop set once; later calls keep the first (it must stay fixed to compare versions)."""
        if members and not self._r.exists(self._keys.stop_set):
            pipe = self._r.pipeline(transaction=True)
            pipe.rpush(self._keys.stop_set, *members)
            pipe.execute()

    def last_stop_predictions(self) -> tuple[int, list[int]] | None:
        raw = self._r.get(self._keys.stop_predictions)
        if raw is None:
            return None
        data = json.loads(raw)
        return int(data["version"]), [int(v) for v in data["labels"]]

    def save_stop_predictions(self, pipe: Pipeline, version: int, labels: Sequence[int]) -> None:
        pipe.set(self._keys.stop_predictions, json.dumps({"version": version, "labels": [int(v) for v in labels]}))

    def next_round(self) -> int:
        return int(self._r.incr(self._keys.rounds))

    def current_round(self) -> int:
        return int(self._r.get(self._keys.rounds) or 0)


def _entries(response: Any) -> list[tuple[str, dict[str, str]]]:
    out: list[tuple[str, dict[str, str]]] = []
    for _stream, items in response or []:
        out.extend(items)
    return out
