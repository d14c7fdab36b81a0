"""Hot swap of the served model under load, over real gRPC, and refusal of corrupt artifacts.

Versions are published without the trainer (tests/integration/models.py); the query replica finds them by itself,
through the announcement channel or by polling the pointer (``model_poll_seconds=0.2`` in the fixture).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from alloop import artifacts
from alloop.artifacts import MODEL_FILE
from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc
from query_service.server import MODEL_HEALTH
from query_service.server import create_server as create_query_server
from tests.integration import models
from tests.integration.generic_calls import SERVING, health_status
from tests.integration.services import channel, wait_for

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

pytestmark = pytest.mark.integration

TEXTS = ["a wonderful superb film", "dull awful mess", "the plot and the cast"]
THREADS = 4


@pytest.fixture
def served(query_settings, redis_client, keys) -> Iterator[tuple]:
    first = models.write_and_publish(redis_client, keys, query_settings.common.models_path, 1)
    running = create_query_server(query_settings, redis_client)
    wait_for(running.holder.current_or_none, timeout=30, what="version 1 served")
    ch = channel(running.port)
    running.first = first  # type: ignore[attr-defined]
    yield running, query_pb2_grpc.QueryServiceStub(ch)
    ch.close()
    running.stop(0)


def served_version(stub: query_pb2_grpc.QueryServiceStub) -> int:
    return stub.Predict(query_pb2.PredictRequest(texts=TEXTS), timeout=10).model_version


def test_hot_swap_under_concurrent_predict_calls_has_zero_errors(served, query_settings, redis_client, keys):
    running, stub = served
    assert served_version(stub) == 1
    model_dir = query_settings.common.models_path
    # Version 2 answers differently from version 1, so every response shows which version computed it.
    second = models.write_shifted(model_dir, 2, shift=3.0)
    expected = {1: models.answers(model_dir, running.first, TEXTS), 2: models.answers(model_dir, second, TEXTS)}
    assert not np.allclose(expected[1], expected[2], atol=0.05)
    stop = threading.Event()
    seen: list[list[int]] = [[] for _ in range(THREADS)]
    mixed: list[int] = []
    errors: list[BaseException] = []

    def caller(index: int) -> None:
        # Each thread opens its own channel, as separate clients would.
        ch = channel(running.port)
        own = query_pb2_grpc.QueryServiceStub(ch)
        try:
            while not stop.is_set():
                response = own.Predict(query_pb2.PredictRequest(texts=TEXTS), timeout=30)
                assert len(response.predictions) == len(TEXTS)
                probabilities = np.array([list(p.probabilities) for p in response.predictions])
                if not np.allclose(probabilities, expected.get(response.model_version, -1.0), atol=1e-4):
                    mixed.append(response.model_version)
                seen[index].append(response.model_version)
        except BaseException as exc:
            errors.append(exc)
        finally:
            ch.close()

    threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: all(len(s) >= 3 for s in seen) or errors, timeout=30, what="calls on version 1")
        models.publish(redis_client, keys, second)
        wait_for(lambda: running.holder.current().version == 2 or errors, timeout=30, what="swap to version 2")
        marks = [len(s) for s in seen]
        # Every thread keeps calling after the swap, and gets version 2 from then on.
        wait_for(
            lambda: all(len(s) >= m + 3 for s, m in zip(seen, marks, strict=True)) or errors,
            timeout=30,
            what="calls after swap",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    assert not errors, f"{len(errors)} calls failed during the swap, first: {errors[0]!r}"
    assert not mixed, f"{len(mixed)} responses carried another version's answers (versions {sorted(set(mixed))})"
    for versions in seen:
        assert set(versions) <= {1, 2}
        assert versions == sorted(versions), "a thread saw the version go backwards"
        assert versions[0] == 1 and versions[-1] == 2
    assert served_version(stub) == 2
    assert stub.GetModel(query_pb2.GetModelRequest()).version.version == 2


def test_each_predict_answers_from_the_one_version_it_names(served, query_settings, redis_client, keys, monkeypatch):
    """Deterministic where the swap above is a race: the holder hands out version 1 and version 2 in turn, so a
    Predict that asked for the served version twice (scores from one, number from the other) would be caught."""
    running, stub = served
    model_dir = query_settings.common.models_path
    one = running.holder.current()
    second = models.write_shifted(model_dir, 2, shift=3.0)
    models.publish(redis_client, keys, second)
    wait_for(lambda: running.holder.current().version == 2, timeout=30, what="version 2 served")
    two = running.holder.current()
    turns = itertools.cycle([one, two])
    monkeypatch.setattr(running.holder, "current", lambda: next(turns))
    expected = {1: models.answers(model_dir, running.first, TEXTS), 2: models.answers(model_dir, second, TEXTS)}
    versions = set()
    for _ in range(6):
        response = stub.Predict(query_pb2.PredictRequest(texts=TEXTS), timeout=10)
        probabilities = np.array([list(p.probabilities) for p in response.predictions])
        np.testing.assert_allclose(probabilities, expected[response.model_version], atol=1e-4)
        versions.add(response.model_version)
    assert versions == {1, 2}


def test_a_corrupt_artifact_is_refused_and_the_last_good_version_keeps_serving(
    served, query_settings, redis_client, keys
):
    running, stub = served
    model_dir = query_settings.common.models_path
    models.write_and_publish(redis_client, keys, model_dir, 2)
    wait_for(lambda: running.holder.current().version == 2, timeout=30, what="version 2 served")

    # Version 3's model file is truncated after it was written (as a torn copy would leave it), then published.
    # It must be refused by its checksum, at once, not by Keras failing to read it (which the holder retries).
    third = models.write(model_dir, 3)
    model_file = third.path / MODEL_FILE
    model_file.write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 2])
    models.publish(redis_client, keys, third)
    wait_for(lambda: 3 in running.holder.refused(), timeout=30, what="version 3 refused")
    assert "differ from their manifest" in running.holder.refused()[3]
    assert served_version(stub) == 2
    assert stub.GetModel(query_pb2.GetModelRequest()).version.version == 2

    # Version 4's files are intact, but the registry records another digest for them.
    fourth = models.write(model_dir, 4)
    models.publish(redis_client, keys, fourth, sha256="0" * 64)
    wait_for(lambda: 4 in running.holder.refused(), timeout=30, what="version 4 refused")
    assert "digest differs from the registry" in running.holder.refused()[4]
    assert served_version(stub) == 2 and running.holder.current().version == 2

    # A good version after the bad ones is still picked up.
    models.write_and_publish(redis_client, keys, model_dir, 5)
    wait_for(lambda: running.holder.current().version == 5, timeout=30, what="version 5 served")
    assert served_version(stub) == 5


def test_a_version_missing_from_the_model_dir_is_refused(served, query_settings, redis_client, keys, monkeypatch):
    running, stub = served
    attempts: list[int] = []
    real_load = artifacts.load_version

    def counted(model_dir, version, sha256):  # type: ignore[no-untyped-def]
        attempts.append(version)
        return real_load(model_dir, version, sha256)

    monkeypatch.setattr(artifacts, "load_version", counted)
    # Published in the registry, but its files were never written here (another host's model dir, say).
    elsewhere = models.write(query_settings.common.state_dir / "elsewhere", 2)
    models.publish(redis_client, keys, elsewhere)
    time.sleep(4 * query_settings.model_poll_seconds)
    assert served_version(stub) == 1
    # Tried a bounded number of times, then given up; the health service says so, and the tries stop.
    wait_for(lambda: 2 in running.holder.refused(), timeout=30, what="version 2 given up")
    assert f"in {query_settings.model_load_attempts} attempts" in running.holder.refused()[2]
    with channel(running.port) as ch:
        wait_for(lambda: health_status(ch, MODEL_HEALTH) == NOT_SERVING, timeout=10, what="alloop.model NOT_SERVING")
        assert health_status(ch) == SERVING  # the replica itself still answers, on version 1
    tried = attempts.count(2)
    assert tried == query_settings.model_load_attempts
    time.sleep(4 * query_settings.model_poll_seconds)
    assert attempts.count(2) == tried
    with pytest.raises(grpc.RpcError) as err:
        stub.Query(query_pb2.QueryRequest(pool="none", strategy=common_pb2.STRATEGY_MARGIN, k=1))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND  # the service still works on version 1


def test_a_version_that_loads_but_cannot_be_split_for_query_is_refused_once(served, query_settings, redis_client, keys):
    # A model that takes strings and predicts, but was not assembled as vectorizer -> classifier: Query could not
    # score a pool with it, so the replica keeps the last good version and does not retry this one every poll.
    import keras

    running, stub = served
    text = keras.Input(shape=(1,), dtype="string")
    counts = keras.layers.TextVectorization(max_tokens=20, output_mode="count", name="not_the_vectorizer")
    counts.adapt(["good film", "bad film"])
    odd = keras.Model(text, keras.layers.Dense(1, activation="sigmoid")(counts(text)))
    models.publish(redis_client, keys, models.write(query_settings.common.models_path, 2, odd))
    wait_for(lambda: 2 in running.holder._failed, timeout=30, what="version 2 refused")
    assert served_version(stub) == 1 and running.holder.current().version == 1
    assert running.holder.refresh() is False  # marked failed: not loaded again


def test_a_version_is_loaded_from_the_bytes_that_were_verified(query_settings, monkeypatch):
    """Swapping the model file on the shared volume after the check cannot get the swapped file loaded."""
    import keras

    model_dir = query_settings.common.models_path
    written = models.write(model_dir, 1)
    real_load = keras.saving.load_model
    paths: list[Path] = []

    def swap_then_load(path, **kwargs):  # type: ignore[no-untyped-def]
        (written.path / MODEL_FILE).write_bytes(b"not a model: swapped in after the check")
        paths.append(Path(path))
        return real_load(path, **kwargs)

    monkeypatch.setattr(keras.saving, "load_model", swap_then_load)
    model = artifacts.load_version(model_dir, 1, written.metadata["sha256"])
    assert paths and model_dir.resolve() not in paths[0].resolve().parents
    assert not paths[0].exists()  # the private copy is gone once loaded
    assert model.predict(keras.ops.convert_to_tensor([["a fine film"]]), verbose=0).shape[0] == 1
