"""The model-version registry: metadata per version, the current pointer, and the announcement channel.

The pointer and the metadata change in one MULTI; the announcement follows it and is only a hint: replicas also poll the
pointer, so a replica that missed a pub/sub message (disconnected, restarted) still converges.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis

from alloop.store.connection import Client, Pipeline
from alloop.store.keys import Keys


class VersionRegistry:
    def __init__(self, client: Client, keys: Keys) -> None:
        self._r = client
        self._keys = keys

    def allocate(self) -> int:
        return int(self._r.incr(self._keys.next_version))

    def publish(
        self, version: int, metadata: dict[str, Any], *, also: Callable[[Pipeline], object] | None = None
    ) -> None:
        """Record and point to ``version`` in one MULTI; ``also`` adds the caller's own writes to the same MULTI
        (the trainer's "these labels are trained" bookkeeping), so a crash cannot separate them."""
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(self._keys.versions, str(version), json.dumps(metadata, sort_keys=True))
        pipe.set(self._keys.current_version, version)
        if also is not None:
            also(pipe)
        pipe.execute()
        # After the MULTI, not in it: a cluster transaction holds keys of one slot, and a channel is not a key.
        self._r.publish(self._keys.announce_channel, str(version))

    def current(self) -> int:
        return int(self._r.get(self._keys.current_version) or 0)

    def get(self, version: int) -> dict[str, Any] | None:
        raw = self._r.hget(self._keys.versions, str(version))
        return None if raw is None else json.loads(raw)

    def all(self) -> list[dict[str, Any]]:
        raw = self._r.hgetall(self._keys.versions)
        return [json.loads(raw[v]) for v in sorted(raw, key=int)]

    def subscribe(self) -> redis.client.PubSub:
        pubsub = self._r.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self._keys.announce_channel)
        return pubsub
