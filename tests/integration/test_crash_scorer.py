"""kill -9 of query replicas while they score shards: the score index still converges, every open item ranked once.

A replica killed mid-shard leaves its stream entry pending; another replica takes it over after
ALLOOP_SCORE_CLAIM_SECONDS. Besides the real kills (which may land between shards), one entry is taken by a
consumer that never finishes, exactly what a replica killed mid-shard leaves behind, so the take-over is exercised
on every run.
"""

from __future__ import annotations

import random
import time

import pytest

from alloop.store.connection import free_port
from alloop.store.pool import PoolStore
from alloop.store.scores import ScoreIndex
from alloop.store.versions import VersionRegistry
from tests.conftest import BACKENDS
from tests.integration import models
from tests.integration.processes import spawn, wait_healthy
from tests.integration.services import wait_for
from tests.synthetic import reviews

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("backend", BACKENDS, indirect=True)]

SHARDS = 120
SHARD_ITEMS = 50


def test_killed_replicas_leave_an_index_that_converges(backend, redis_client, keys, tmp_path):
    seed = random.randrange(1 << 30)
    print(f"seed {seed}")  # a failure is replayed with this seed
    rng = random.Random(seed)
    pools = PoolStore(redis_client, keys)
    texts = [(str(r["id"]), str(r["text"])) for r in reviews(SHARDS * SHARD_ITEMS, 5, "c")]
    assert pools.add("p", texts, chunk=SHARD_ITEMS).shards == tuple(range(1, SHARDS + 1))
    model_dir = tmp_path / "models"
    written = models.write_and_publish(redis_client, keys, model_dir, 1)
    index = ScoreIndex(redis_client, keys)
    index.open_version(written.version)
    index.post(written.version, "p", list(range(1, SHARDS + 1)))
    abandoned = index.take(written.version, "killed-mid-shard", None, claim_idle_ms=60_000)
    assert len(abandoned) == 1

    def replica(name: str):  # type: ignore[no-untyped-def]
        address = f"127.0.0.1:{free_port()}"
        env = {
            **backend.env(),
            "ALLOOP_REDIS_PREFIX": keys.prefix,
            "ALLOOP_STATE_DIR": str(tmp_path / name),
            "ALLOOP_MODEL_DIR": str(model_dir),
            "ALLOOP_QUERY_ADDRESS": address,
            "ALLOOP_SCORE_CLAIM_SECONDS": "1",
            "ALLOOP_FEATURE_CACHE_ROWS": "0",  # every shard costs a tokenization: kills land mid-shard more often
        }
        process = spawn("query_service.server", env, tmp_path / "logs" / f"{name}.log")
        assert wait_healthy(address, process), (tmp_path / "logs" / f"{name}.log").read_text()[-2000:]
        return process

    for kill in range(3):
        process = replica(f"killed-{kill}")
        start = index.progress("p", written.version).shards_done
        wait_for(
            lambda start=start: index.progress("p", written.version).shards_done > start,
            timeout=60,
            what="the replica scoring shards",
        )
        time.sleep(rng.uniform(0.0, 0.1))
        process.kill()
        process.wait()
    assert not index.progress("p", written.version).complete, "the kills should leave work behind"
    survivor = replica("survivor")
    try:
        wait_for(lambda: index.progress("p", written.version).complete, timeout=120, what="the ranking completed")
        assert index.progress("p", written.version).shards_done == SHARDS
        assert VersionRegistry(redis_client, keys).current() == index.progress("p", 1).ranked_version == 1
        assert index.size("p", 1) == SHARDS * SHARD_ITEMS  # every item ranked, none lost
        wait_for(lambda: index.pending(1) == 0, timeout=10, what="every entry acknowledged")
    finally:
        survivor.kill()
        survivor.wait()
