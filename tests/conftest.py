"""Fixtures on real parts: a redis-server on a free loopback port, real gRPC servers on port 0, tiny real models."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
from redis.cluster import RedisCluster

from alloop.config import CommonSettings, QuerySettings, TrainerSettings
from alloop.models.config import ModelConfig, TrainingConfig
from alloop.store.connection import Client, EmbeddedRedis, connect
from alloop.store.keys import Keys
from tests import synthetic
from tests.cluster import LocalCluster

TINY_MODEL = ModelConfig(
    family="bilstm", max_tokens=200, sequence_length=16, embedding_dim=8, lstm_units=4, dense_units=4
)
TINY_TRAINING = TrainingConfig(epochs=4, batch_size=32, patience=4)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


# A module whose tests must hold on a single Redis and on Redis Cluster alike sets
# ``pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)``; every other test gets "single".
BACKENDS = ("single", "cluster")
# The same for the kill -9 tests that take minutes each: their cluster runs are marked ``cluster_crash``, which
# `make test` leaves to `make test-cluster` (CI runs both) so the suite stays under 20 minutes.
LONG_BACKENDS = ("single", pytest.param("cluster", marks=pytest.mark.cluster_crash))


@dataclass(frozen=True)
class Backend:
    """Where a test's stores live: the session's single Redis, or the session's 3-master cluster."""

    url: str
    cluster: bool

    def connect(self) -> Client:
        return connect(self.url, cluster=self.cluster)

    def env(self) -> dict[str, str]:
        """What a service process reads to reach it."""
        return {"REDIS_URL": self.url, "ALLOOP_REDIS_CLUSTER": "1" if self.cluster else "0"}


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Backend:
    kind = getattr(request, "param", "single")
    if kind == "cluster":
        return Backend(request.getfixturevalue("redis_cluster").url, cluster=True)
    return Backend(request.getfixturevalue("redis_server").url, cluster=False)


@pytest.fixture
def redis_client(backend: Backend) -> Iterator[Client]:
    client = backend.connect()
    if isinstance(client, RedisCluster):
        client.flushdb(target_nodes=RedisCluster.PRIMARIES)
    else:
        client.flushdb()
    yield client
    client.close()


@pytest.fixture
def keys() -> Keys:
    return Keys(f"t{uuid.uuid4().hex[:6]}")


def dump_keys(client: Client, prefix: str) -> dict[str, object]:
    """Byte-for-byte picture of the project's keys, to show a refused request changed nothing.

    Streams are the exception: a consumer polling its group updates the consumer's seen-time, which DUMP includes,
    so for a stream the picture is its entries and each group's delivery position and pending count. The score
    index is left out: it is derived from the pools and the model, and the replicas rewrite it in the background.
    """
    keys = Keys(prefix)
    index = (keys.index_prefix, *(keys.pool_index_prefix(pool) for pool in client.smembers(keys.pools)))
    out: dict[str, object] = {}
    for key in sorted(client.scan_iter(f"{prefix}:*")):
        if key.startswith(index):
            continue
        if client.type(key) == "stream":
            groups = [(g["name"], g["last-delivered-id"], g["pending"]) for g in client.xinfo_groups(key)]
            out[key] = (client.xrange(key), groups)
        else:
            out[key] = client.execute_command("DUMP", key, NEVER_DECODE=True)
    return out


@pytest.fixture(scope="session")
def encoder_dir() -> Path:
    """The real sentence encoder's files (fetched once into the checkout's .cache, as `alloop-fetch-encoder` does)."""
    from alloop.models.encoder.files import fetch_encoder

    return fetch_encoder(Path(__file__).resolve().parents[1] / ".cache" / "alloop")


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, Path]:
    return synthetic.write_corpus(tmp_path)


@pytest.fixture
def common(backend: Backend, keys: Keys, tmp_path: Path) -> CommonSettings:
    return CommonSettings(
        redis_url=backend.url, redis_cluster=backend.cluster, redis_prefix=keys.prefix, state_dir=tmp_path / "state"
    )


@pytest.fixture
def trainer_settings(common: CommonSettings, corpus: dict[str, Path]) -> TrainerSettings:
    return TrainerSettings(
        common=common,
        address="127.0.0.1:0",
        retrain_threshold=20,
        initial_data=corpus["initial"],
        val_data=corpus["val"],
        test_data=corpus["test"],
        model=TINY_MODEL,
        training=TINY_TRAINING,
        consumer="test-trainer",
    )


@pytest.fixture
def query_settings(common: CommonSettings) -> QuerySettings:
    return replace(QuerySettings(common=common), address="127.0.0.1:0", model_poll_seconds=0.2, lease_seconds=60)
