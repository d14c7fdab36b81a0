"""Every Redis key alloop uses, under one prefix, named once, laid out for Redis Cluster as well as one Redis.

Items are addressed by ``(pool, id)``; inside Redis that pair is one member string (compact JSON), so ids may hold
any character and the same id may live in two pools.

Every key carries a hash tag (the part in braces, the only part Redis Cluster hashes to pick a slot), so each
script and MULTI touches one slot:

- ``PREFIX:{PREFIX}:...``, the *control* slot: the pool list, the labeling queues, leases, labels and their stream,
  the training set, the model versions and the score-index work streams. Everything a label passes through lives
  here, so a label batch that spans pools is still one atomic script.
- ``PREFIX:{PREFIX:pool:NAME}:...``, one slot per pool: its texts, its shards and its rankings, the bulk of the
  data, spread over the cluster's masters pool by pool.

A tag ends at the first ``}``: a pool name holding one cuts its tag short, which still gives every key of that pool
the same slot (the tag depends only on the name). The prefix may not hold braces (:class:`Keys` refuses them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

DEFAULT_PREFIX = "alloop"


def item_member(pool: str, item_id: str) -> str:
    return json.dumps([pool, item_id], separators=(",", ":"))


def parse_member(member: str | bytes) -> tuple[str, str]:
    pool, item_id = json.loads(member)
    return pool, item_id


@dataclass(frozen=True)
class Keys:
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or "{" in self.prefix or "}" in self.prefix:
            raise ValueError(f"a Redis key prefix must be non-empty and hold no braces, got {self.prefix!r}")

    def _k(self, *parts: str) -> str:
        """A key in the control slot."""
        return ":".join((f"{self.prefix}:{{{self.prefix}}}", *parts))

    def _p(self, pool: str, *parts: str) -> str:
        """A key in ``pool``'s slot."""
        return ":".join((f"{self.prefix}:{{{self.prefix}:pool:{pool}}}", *parts))

    # --- pools -----------------------------------------------------------------------------------------------
    @property
    def pools(self) -> str:
        """SET of pool names."""
        return self._k("pools")

    def pool_items(self, pool: str) -> str:
        """HASH id -> text of one pool."""
        return self._p(pool, "items")

    def pool_shards(self, pool: str) -> str:
        """Counter: how many shards the pool's items are split into (numbered from 1)."""
        return self._p(pool, "shards")

    def pool_shard_prefix(self, pool: str) -> str:
        """Prefix of the LIST of item ids in shard ``n`` (the prefix followed by ``n``): the ids one upload chunk
        added, in upload order. Shards are the unit in which pools are scored and sampled."""
        return self._p(pool, "shard", "")

    def pool_shard(self, pool: str, shard: int) -> str:
        return self.pool_shard_prefix(pool) + str(shard)

    # --- score index: derived from the pools and the model versions, rebuilt by the query replicas -------------
    @property
    def index_prefix(self) -> str:
        """Every control-slot score-index key starts with this (:meth:`pool_index_prefix`: a pool's own): what a
        replica may rewrite at any time, not request state."""
        return self._k("index", "")

    def pool_index_prefix(self, pool: str) -> str:
        return self._p(pool, "index", "")

    def score_work(self, version: int) -> str:
        """STREAM of (pool, shard) entries still to be scored by ``version``; consumer group ``scorers``."""
        return self._k("index", "work", str(version))

    def posted(self, pool: str, version: int) -> str:
        """SET of the shard numbers of ``pool`` handed out for ``version``: in the control slot, beside the work
        stream, so an entry and its record are written by one script."""
        return self._k("index", "posted", str(version), pool)

    def ranking(self, pool: str, version: int, part: str) -> str:
        """One part of version ``version``'s ranking of ``pool``: a ZSET per uncertainty measure (id -> minus the
        score, so the most uncertain comes first and ties go to the smaller id), ``probs`` (HASH id -> float32
        bytes) and ``done`` (SET of the shard numbers recorded)."""
        return self._p(pool, "index", str(version), part)

    def ranked_version(self, pool: str) -> str:
        """The newest version whose ranking of ``pool`` covered every shard posted for it (absent: none yet)."""
        return self._p(pool, "index", "ranked")

    def ranking_versions(self, pool: str) -> str:
        """SET of versions that hold ranking keys for ``pool`` (so older ones can be dropped)."""
        return self._p(pool, "index", "versions")

    # --- sentence embeddings: one per item and encoder, written once when the item arrives (alloop.store.embeddings)
    def embed_work(self, encoder: str) -> str:
        """STREAM of (pool, shard) entries whose items ``encoder`` has yet to embed; consumer group ``embedders``."""
        return self._k("embed", encoder, "work")

    def embed_posted(self, pool: str, encoder: str) -> str:
        """SET of the shard numbers of ``pool`` handed out to embed, beside the work stream."""
        return self._k("embed", encoder, "posted", pool)

    def embeddings(self, pool: str, encoder: str) -> str:
        """HASH id -> the item's vector (float16 bytes), in the pool's slot. Not index data: embedding a pool is
        the slowest thing alloop does, so nothing drops these while the pool exists."""
        return self._p(pool, "embed", encoder, "vectors")

    def embed_done(self, pool: str, encoder: str) -> str:
        """SET of the shard numbers of ``pool`` whose items are embedded, written with their vectors."""
        return self._p(pool, "embed", encoder, "done")

    # --- labeling queues and leases ------------------------------------------------------------------------------
    @property
    def queue_all(self) -> str:
        """ZSET of every pool's item members waiting to be leased, in lease order (lowest score first)."""
        return self._k("queue", "order")

    def queue(self, pool: str) -> str:
        """ZSET of ``pool``'s members of :attr:`queue_all`, with the same scores: the same scripts write both, so a
        lease from one pool and a lease from every pool each take their items in O(log n)."""
        return self.queue_prefix + pool

    @property
    def queue_prefix(self) -> str:
        """A pool's queue is this followed by the pool name (scripts that reclaim a lease compute it)."""
        return self._k("queue", "pool", "")

    @property
    def queue_seq(self) -> str:
        """Counter giving newly queued items increasing scores (the back of the queue)."""
        return self._k("queue", "seq")

    @property
    def queue_front(self) -> str:
        """Counter giving reclaimed items decreasing negative scores (the front of the queue)."""
        return self._k("queue", "front")

    @property
    def queued(self) -> str:
        """HASH member -> task JSON, for every item waiting for a label (queued or leased)."""
        return self._k("queued")

    @property
    def leases(self) -> str:
        """ZSET member -> lease deadline (unix ms)."""
        return self._k("leases")

    @property
    def lease_ids(self) -> str:
        """HASH member -> lease id of the current lease."""
        return self._k("lease_ids")

    @property
    def labels(self) -> str:
        """HASH member -> class index: every label ever accepted, the record that makes labels idempotent."""
        return self._k("labels")

    @property
    def label_stream(self) -> str:
        """STREAM of accepted labels, consumed by the trainer's consumer group."""
        return self._k("labels", "stream")

    # --- trainer ---------------------------------------------------------------------------------------------
    @property
    def training_set(self) -> str:
        """HASH member -> {"text", "label"} JSON: the trainer's labeled set, idempotent by item."""
        return self._k("train", "set")

    @property
    def untrained(self) -> str:
        """Counter of labels added to the training set since the last round started."""
        return self._k("train", "untrained")

    @property
    def round_lock(self) -> str:
        """Held (with an expiry) by the trainer replica running a round."""
        return self._k("train", "lock")

    @property
    def stop_set(self) -> str:
        """LIST of pool item members: the fixed unlabeled sample on which consecutive versions are compared."""
        return self._k("train", "stopset")

    @property
    def stop_predictions(self) -> str:
        """JSON {"version", "labels"}: the newest version's predictions on the stop set."""
        return self._k("train", "stop_predictions")

    @property
    def rounds(self) -> str:
        """Counter of training rounds started."""
        return self._k("train", "rounds")

    # --- model versions ----------------------------------------------------------------------------------------
    @property
    def versions(self) -> str:
        """HASH version -> metadata JSON."""
        return self._k("models", "versions")

    @property
    def current_version(self) -> str:
        return self._k("models", "current")

    @property
    def next_version(self) -> str:
        return self._k("models", "next")

    @property
    def announce_channel(self) -> str:
        """Pub/sub channel on which each newly published version number is announced."""
        return self._k("models", "announce")
