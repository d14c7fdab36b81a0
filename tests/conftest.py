"""Fixtures on real parts: a redis-server on a free loopback port, real gRPC servers on port 0, tiny real models."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
import redis

from alloop.config import CommonSettings, QuerySettings, TrainerSettings
from alloop.models.config import ModelConfig, TrainingConfig
from alloop.store.connection import EmbeddedRedis, connect
from alloop.store.keys import Keys
from tests import synthetic

TINY_MODEL = ModelConfig(
    family="bilstm", max_tokens=200, sequence_length=16, embedding_dim=8, lstm_units=4, dense_units=4
)
TINY_TRAINING = TrainingConfig(epochs=4, batch_size=32, patience=4)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False) as server:
        yield server


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = connect(redis_server.url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def keys() -> Keys:
    return Keys(f"t{uuid.uuid4().hex[:6]}")


def dump_keys(client: redis.Redis, prefix: str) -> dict[str, object]:
    """Byte-for-byte picture of the project's keys, to show a refused request changed nothing.

    Streams are the exception: a consumer polling its group updates the consumer's seen-time, which DUMP includes,
    so for a stream the picture is its entries and each group's delivery position and pending count. The score
    index is left out: it is derived from the pools and the model, and the replicas rewrite it in the background.
    """
    raw = redis.Redis(connection_pool=client.connection_pool)
    out: dict[str, object] = {}
    index = Keys(prefix).index_prefix
    for key in sorted(client.scan_iter(f"{prefix}:*")):
        if key.startswith(index):
            continue
        if client.type(key) == "stream":
            groups = [(g["name"], g["last-delivered-id"], g["pending"]) for g in client.xinfo_groups(key)]
            out[key] = (client.xrange(key), groups)
        else:
            out[key] = raw.execute_command("DUMP", key, NEVER_DECODE=True)
    return out


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, Path]:
    return synthetic.write_corpus(tmp_path)


@pytest.fixture
def common(redis_server: EmbeddedRedis, keys: Keys, tmp_path: Path) -> CommonSettings:
    return CommonSettings(redis_url=redis_server.url, redis_prefix=keys.prefix, state_dir=tmp_path / "state")


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
