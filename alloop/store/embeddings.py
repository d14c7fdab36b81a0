"""Sentence embeddings of pool items, computed once per item and encoder and shared by every replica and the trainer.

A frozen encoder's vector for an item depends on the item's text alone, and computing it is by far the slowest
thing alloop does to an item (all-MiniLM-L6-v2: ~14 long reviews or ~150 snippets a second on two cores), so it
happens once, when the item arrives, never per Query or per version. The work is handed out as the score
index's is (:mod:`alloop.store.work`): an upload posts each new shard of its pool to one stream per encoder
(consumer group ``embedders``); whichever replica is free takes an entry, embeds the shard's items that have no
vector yet and records them; an entry a replica took and never acknowledged (it died) is claimed by another after
``claim_idle_ms``.

A shard's vectors are written by one script that first adds the shard to the pool's ``done`` set, with HSETNX:
a shard embedded twice (a slow replica whose entry was claimed) keeps its first vectors, and a vector, once
written, never changes. Vectors are stored as float16 (768 bytes for a 384-wide encoder): the encoder's unit
vectors lose nothing a linear model or a distance can see at that precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from alloop.store.connection import Client
from alloop.store.keys import Keys
from alloop.store.work import POST, Work, WorkStream

GROUP = "embedders"
DTYPE = np.float16

_RECORD = """
-- KEYS: done set, vectors (the pool's slot) ; ARGV: shard, then id, vector pairs
-- Returns -1 if the shard was recorded before, else how many vectors were new.
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return -1 end
local n = 0
for i = 2, #ARGV, 2 do
  n = n + redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1])
end
return n
"""


@dataclass(frozen=True)
class EmbedProgress:
    shards_done: int
    shards_posted: int
    vectors: int

    @property
    def complete(self) -> bool:
        return self.shards_done >= self.shards_posted


class EmbeddingStore:
    """The vectors of one encoder (named by ``encoder``: vectors of two encoders never mix)."""

    def __init__(self, client: Client, keys: Keys, encoder: str) -> None:
        self._r = client
        self._keys = keys
        self.encoder = encoder
        self._record = client.register_script(_RECORD)
        self.work = WorkStream(
            client,
            keys.embed_work(encoder),
            GROUP,
            lambda pool: keys.embed_posted(pool, encoder),
            client.register_script(POST),
        )

    # --- work: alloop.store.work --------------------------------------------------------------------------------
    def open(self) -> None:
        """Create the work stream's group (idempotent); a worker does it once before it takes entries."""
        self.work.open()

    def post_missing(self, pool: str, shard_count: int) -> int:
        """Hand out every shard of ``pool`` not handed out yet."""
        return self.work.post_missing(pool, shard_count)

    def take(self, consumer: str, block_ms: int | None, claim_idle_ms: int) -> list[Work]:
        return self.work.take(consumer, block_ms, claim_idle_ms)

    def done(self, work: Work) -> None:
        self.work.done(work)

    def pending(self) -> int:
        return self.work.pending()

    # --- vectors -------------------------------------------------------------------------------------------------
    def missing(self, pool: str, ids: Sequence[str]) -> list[str]:
        """Those of ``ids`` that have no vector yet."""
        if not ids:
            return []
        pipe = self._r.pipeline(transaction=False)
        key = self._keys.embeddings(pool, self.encoder)
        for item_id in ids:
            pipe.hexists(key, item_id)
        return [item_id for item_id, has in zip(ids, pipe.execute(), strict=True) if not has]

    def record(self, pool: str, shard: int, ids: Sequence[str], vectors: npt.NDArray[Any]) -> int:
        """Write one shard's new vectors (rows of ``vectors``, in the order of ``ids``); -1: the shard was recorded
        before (nothing written), else how many vectors were new."""
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids and {len(vectors)} vectors")
        k = self._keys
        rows = np.asarray(vectors, dtype=DTYPE)
        args: list[str | int | bytes] = [shard]
        for item_id, row in zip(ids, rows, strict=True):
            args += [item_id, row.tobytes()]
        return int(self._record(keys=[k.embed_done(pool, self.encoder), k.embeddings(pool, self.encoder)], args=args))

    def vectors(self, pool: str, ids: Sequence[str], chunk: int = 10_000) -> list[npt.NDArray[np.float32] | None]:
        """Each id's vector as float32, None where it has none yet."""
        key = self._keys.embeddings(pool, self.encoder)
        out: list[npt.NDArray[np.float32] | None] = []
        for start in range(0, len(ids), chunk):
            # NEVER_DECODE: bytes, whatever the client decodes (a plain client and a cluster client both honour it)
            values = self._r.execute_command("HMGET", key, *ids[start : start + chunk], NEVER_DECODE=True)
            out += [None if v is None else np.frombuffer(v, dtype=DTYPE).astype(np.float32) for v in values]
        return out

    def shard_done(self, pool: str, shard: int) -> bool:
        """Whether every item of ``shard`` of ``pool`` has its vector."""
        return bool(self._r.sismember(self._keys.embed_done(pool, self.encoder), str(shard)))

    def progress(self, pool: str) -> EmbedProgress:
        k = self._keys
        pipe = self._r.pipeline(transaction=False)
        pipe.scard(k.embed_done(pool, self.encoder))
        pipe.scard(k.embed_posted(pool, self.encoder))
        pipe.hlen(k.embeddings(pool, self.encoder))
        done, posted, vectors = pipe.execute()
        return EmbedProgress(int(done), int(posted), int(vectors))
