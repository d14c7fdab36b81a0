"""The strategies that need more than probabilities (MC-dropout samples, embeddings, class quotas) through the real
query service, and the Predictor outputs they are computed from, on a tiny real BiLSTM (and a tiny linear model).

The service must compute the extra outputs a strategy declares (``NEEDS_MC_SAMPLES`` / ``NEEDS_EMBEDDINGS``); if it
did not, the strategy would raise and the Query would fail, so a successful Query over gRPC is the wiring test.
"""

from __future__ import annotations

import math
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf

from alloop import artifacts
from alloop.config import QuerySettings
from alloop.models.config import ModelConfig
from alloop.models.linear import TFIDF_LAYER
from alloop.models.text_model import Predictor, _vocabulary_bytes, embedding_projection, parts
from alloop.models.training import LabeledData, train_round
from alloop.rpc.messages import strategy_value
from alloop.store.keys import item_member
from alloop.store.labeling import QueuedTask
from alloop.strategies import NEEDS_EMBEDDINGS, NEEDS_MC_SAMPLES, SelectionContext, get_strategy
from alloop.v1 import query_pb2, query_pb2_grpc

MC_PASSES = QuerySettings().mc_passes
from query_service.server import RunningQueryService
from query_service.server import create_server as create_query_server
from tests import synthetic
from tests.conftest import TINY_MODEL, TINY_TRAINING
from tests.integration import models
from tests.integration.services import channel, wait_for

pytestmark = pytest.mark.integration

POOL = "reviews"
POOL_SIZE = 60
K = 8
NEW_STRATEGIES = ["bald", "mean_entropy", "class_balanced", "diversity"]


def pool_items(n: int = POOL_SIZE, prefix: str = "p") -> list[tuple[str, str]]:
    return [(str(row["id"]), str(row["text"])) for row in synthetic.reviews(n, 11, prefix)]


def texts(n: int = 40) -> list[str]:
    return [text for _, text in pool_items(n, "t")]


class Service:
    def __init__(self, running: RunningQueryService) -> None:
        self.running = running
        self.channel = channel(running.port)
        self.stub = query_pb2_grpc.QueryServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.running.stop(0)


@pytest.fixture
def service(query_settings, redis_client, keys) -> Iterator[Service]:
    models.write_and_publish(redis_client, keys, query_settings.common.models_path, 1)
    svc = Service(create_query_server(query_settings, redis_client))
    wait_for(svc.running.holder.current_or_none, timeout=30, what="version 1 served")
    items = pool_items()
    response = svc.stub.SubmitPool(
        iter([query_pb2.SubmitPoolRequest(pool=POOL, items=[query_pb2.PoolItem(id=i, text=t) for i, t in items])])
    )
    assert response.accepted == POOL_SIZE
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def loaded_bilstm(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    """The tiny BiLSTM as a replica serves it: written, verified and loaded from disk."""
    model_dir = tmp_path_factory.mktemp("models")
    written = models.write(model_dir, 1)
    return Predictor(artifacts.load_version(model_dir, 1, written.metadata["sha256"]), batch_size=16)


# --- Query over gRPC ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", NEW_STRATEGIES)
def test_query_with_each_new_strategy_selects_and_queues_k_items(service, redis_client, keys, strategy):
    response = service.stub.Query(query_pb2.QueryRequest(pool=POOL, strategy=strategy_value(strategy), k=K, seed=3))
    ids = [s.id for s in response.selected]
    assert len(ids) == K and len(set(ids)) == K
    assert set(ids) <= {item_id for item_id, _ in pool_items()}
    assert (
        response.model_version == 1
        and response.candidates == POOL_SIZE
        and response.strategy == strategy_value(strategy)
    )
    for scored in response.selected:
        assert scored.model_version == 1 and scored.pool == POOL
        assert len(scored.probabilities) == 2
        assert sum(scored.probabilities) == pytest.approx(1.0, abs=1e-5)
        assert scored.predicted_label == int(np.argmax(scored.probabilities))
        assert math.isfinite(scored.uncertainty) and scored.uncertainty >= 0.0
        if strategy in NEEDS_MC_SAMPLES:
            assert scored.uncertainty <= math.log(2) + 1e-6  # BALD and mean entropy are bounded by log(classes)
        else:
            assert scored.uncertainty <= 0.5 + 1e-6  # least confidence, binary

    # Queued: exactly these items, each with the strategy and version that chose it.
    queued = redis_client.hgetall(keys.queued)
    assert set(queued) == {item_member(POOL, i) for i in ids}
    for scored in response.selected:
        task = QueuedTask.from_json(queued[item_member(POOL, scored.id)])
        assert (task.strategy, task.model_version) == (strategy, 1)
        assert task.score == pytest.approx(scored.uncertainty, rel=1e-5, abs=1e-6)
    assert redis_client.zcard(keys.queue(POOL)) == K

    # The next Query sees only what is left, and never selects a queued item again.
    again = service.stub.Query(query_pb2.QueryRequest(pool=POOL, strategy=strategy_value(strategy), k=POOL_SIZE - K))
    assert again.candidates == POOL_SIZE - K
    assert {s.id for s in again.selected}.isdisjoint(ids)
    assert len({s.id for s in again.selected}) == POOL_SIZE - K
    with pytest.raises(grpc.RpcError) as err:
        service.stub.Query(query_pb2.QueryRequest(pool=POOL, strategy=strategy_value(strategy), k=1))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize("strategy", ["class_balanced", "diversity"])
def test_deterministic_strategies_select_what_the_pure_function_selects(service, strategy):
    # The service must hand the strategy the version's error counts and, for diversity, the served model's
    # embeddings of the pool: the same call made here on the served predictor gives the same batch.
    served = service.running.holder.current()
    ids, pool_texts = service.running.app.pools.candidates(POOL)
    context = SelectionContext(
        false_per_class=tuple(served.metadata["metrics"]["false_per_class"]),
        embeddings=served.predictor.embed(pool_texts) if strategy in NEEDS_EMBEDDINGS else None,
    )
    expected = get_strategy(strategy)(served.predictor.predict_proba(pool_texts), K, context)
    response = service.stub.Query(query_pb2.QueryRequest(pool=POOL, strategy=strategy_value(strategy), k=K))
    assert [s.id for s in response.selected] == [ids[i] for i in expected.indices]


def test_score_pool_reports_least_confidence_for_the_new_strategies(service):
    items = [query_pb2.PoolItem(id=i, text=t) for i, t in pool_items(5, "s")]
    for strategy in NEW_STRATEGIES:
        response = next(
            service.stub.ScorePool(iter([query_pb2.ScorePoolRequest(items=items, strategy=strategy_value(strategy))]))
        )
        for scored in response.scores:
            assert scored.uncertainty == pytest.approx(1.0 - max(scored.probabilities), abs=1e-6)


# --- Predictor.predict_mc and Predictor.embed on the tiny BiLSTM ----------------------------------------------------


def test_predict_mc_on_the_bilstm_samples_with_dropout_active(loaded_bilstm):
    predictor, batch = loaded_bilstm, texts(40)  # batch_size 16 and 5 passes: 3 texts per call, 14 calls
    samples = predictor.predict_mc(batch, 5)
    assert samples.shape == (5, 40, 2) and samples.dtype == np.float32
    np.testing.assert_allclose(samples.sum(axis=2), 1.0, atol=1e-6)
    assert np.all((samples >= 0) & (samples <= 1))
    # Dropout is active: passes differ from each other, and so does a second call.
    for i in range(5):
        for j in range(i + 1, 5):
            assert not np.allclose(samples[i], samples[j]), (i, j)
    assert not np.allclose(samples, predictor.predict_mc(batch, 5))
    # Dropout is off in predict_proba: deterministic, and repeatable.
    np.testing.assert_array_equal(predictor.predict_proba(batch), predictor.predict_proba(batch))
    # One pass, one text, and no text at all.
    assert predictor.predict_mc(batch[:1], 1).shape == (1, 1, 2)
    assert predictor.predict_mc([], 3).shape == (3, 0, 2)
    assert predictor.predict_mc(batch, MC_PASSES).shape == (MC_PASSES, 40, 2)


def test_predict_mc_rows_belong_to_their_texts(loaded_bilstm):
    # Pass j of text i must really be text i: averaged over many passes, the MC prediction follows the plain one
    # from text to text. A pass/text mix-up in the reshape would average every text alike (correlation near 0).
    # (The linear-family test below checks the same ordering exactly, its passes being deterministic.)
    batch = texts(40)
    mean = loaded_bilstm.predict_mc(batch, 400)[:, :, 1].mean(axis=0)
    plain = loaded_bilstm.predict_proba(batch)[:, 1]
    assert np.corrcoef(mean, plain)[0, 1] > 0.8


@pytest.mark.parametrize("passes", [0, -2, 1.5, True, "3"])
def test_predict_mc_refuses_bad_passes(loaded_bilstm, passes):
    with pytest.raises(ValueError, match="passes must be a positive number"):
        loaded_bilstm.predict_mc(texts(2), passes)


def test_embed_on_the_bilstm_is_the_input_of_the_last_layer(loaded_bilstm):
    predictor, batch = loaded_bilstm, texts(40)
    embeddings = predictor.embed(batch)
    assert embeddings.shape == (40, TINY_MODEL.dense_units) and embeddings.dtype == np.float32
    np.testing.assert_array_equal(embeddings, predictor.embed(batch))  # Dropout is off: deterministic
    _, classifier = parts(predictor.model)
    # The last layer applied to the embeddings gives the served probabilities back.
    positive = classifier.layers[-1](tf.constant(embeddings)).numpy()[:, 0]
    np.testing.assert_allclose(positive, predictor.predict_proba(batch)[:, 1], rtol=1e-5, atol=1e-6)
    assert predictor.embed([]).shape == (0, TINY_MODEL.dense_units)
    probs, together = predictor.predict_and_embed(batch)
    np.testing.assert_allclose(together, embeddings, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs, predictor.predict_proba(batch), rtol=1e-5, atol=1e-6)
    assert predictor.predict_and_embed([])[1].shape == (0, TINY_MODEL.dense_units)


def test_predict_mc_and_embed_are_thread_safe_and_traced_once(loaded_bilstm):
    predictor, batch = loaded_bilstm, texts(20)
    results: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for passes in (2, 3, 4):
                results.append((predictor.predict_mc(batch, passes).shape, predictor.embed(batch).shape))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(results) == 12
    assert all(mc[1:] == (20, 2) and emb == (20, TINY_MODEL.dense_units) for mc, emb in results)
    # Any number of passes and texts runs the one graph traced from the input signature.
    assert predictor._feature_graph("mc").experimental_get_tracing_count() == 1
    assert predictor._feature_graph("proba_and_embed").experimental_get_tracing_count() == 1


# --- the linear family: no dropout, TF-IDF embeddings projected -------------------------------------------------------


def test_linear_family_gives_identical_passes_and_projected_embeddings(tmp_path: Path):
    def data(n: int, seed: int, prefix: str) -> LabeledData:
        rows = synthetic.reviews(n, seed, prefix)
        return LabeledData([str(r["text"]) for r in rows], [int(r["label"]) for r in rows])  # type: ignore[call-overload]

    result = train_round(
        data(100, 1, "tr"),
        data(30, 2, "va"),
        data(30, 3, "te"),
        model_config=ModelConfig(family="linear", linear_max_tokens=2000, linear_lsa_components=20),
        training=replace(TINY_TRAINING, epochs=2, warm_start=False),
        work_dir=tmp_path / "work",
    )
    _, digest = artifacts.write_version(tmp_path / "models", 1, result.model, {"version": 1})
    predictor = Predictor(artifacts.load_version(tmp_path / "models", 1, digest))
    batch = texts(30)

    samples = predictor.predict_mc(batch, 4)
    assert samples.shape == (4, 30, 2)
    for i in range(1, 4):  # no dropout: every pass is the plain prediction, so BALD scores 0
        np.testing.assert_allclose(samples[i], predictor.predict_proba(batch), rtol=1e-5, atol=1e-6)

    embeddings = predictor.embed(batch)
    assert embeddings.shape == (30, Predictor.EMBEDDING_DIM)
    np.testing.assert_array_equal(embeddings, predictor.embed(batch))
    # It is the TF-IDF vector (the last layer's input) times the fixed-seed Gaussian projection.
    vectorizer, classifier = parts(predictor.model)
    counts = tf.sparse.reshape(vectorizer(tf.constant([[t] for t in batch])), (len(batch), -1))
    tfidf = tf.sparse.to_dense(classifier.get_layer(TFIDF_LAYER)(counts)).numpy().astype(np.float64)
    width = int(classifier.layers[-1].kernel.shape[0])
    assert tfidf.shape[1] == width > Predictor.EMBEDDING_DIM
    projection = embedding_projection(width, Predictor.EMBEDDING_DIM, Predictor.EMBEDDING_SEED).numpy()
    assert projection.shape == (width, Predictor.EMBEDDING_DIM)
    assert abs(float(projection.std()) * np.sqrt(Predictor.EMBEDDING_DIM) - 1.0) < 0.05  # N(0, 1/dim) entries
    np.testing.assert_allclose(embeddings, tfidf @ projection, rtol=1e-4, atol=1e-4)
    assert predictor.embed([]).shape == (0, Predictor.EMBEDDING_DIM)
    # One vectorization for both, the same numbers as two separate calls.
    probs, together = predictor.predict_and_embed(batch)
    np.testing.assert_allclose(together, embeddings, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs, predictor.predict_proba(batch), rtol=1e-5, atol=1e-6)

    # Features are sparse counts on the host; scoring them gives what the end-to-end model gives for the texts.
    features = predictor.features(batch)
    assert sp.issparse(features) and features.shape == (30, width)
    np.testing.assert_allclose(
        predictor.predict_proba_features(features), predictor.predict_proba(batch), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        predictor.predict_and_embed_features(features[::-1])[1], embeddings[::-1], rtol=1e-5, atol=1e-6
    )
    # The fingerprint names the vectorizer: the in-memory model and the version loaded from disk share it.
    assert predictor.fingerprint == Predictor(result.model).fingerprint


def test_bilstm_features_are_token_ids_and_score_like_the_texts(loaded_bilstm):
    predictor, batch = loaded_bilstm, texts(40)
    features = predictor.features(batch)
    assert isinstance(features, np.ndarray) and features.shape == (40, TINY_MODEL.sequence_length)
    np.testing.assert_allclose(
        predictor.predict_proba_features(features), predictor.predict_proba(batch), rtol=1e-5, atol=1e-6
    )
    assert predictor.predict_proba_features(features[:0]).shape == (0, 2)
    assert predictor.predict_mc_features(features[:7], 3).shape == (3, 7, 2)
    # Another vocabulary, another fingerprint: a replica never scores one version's token ids with another's.
    other = train_round(
        LabeledData(texts(30), [i % 2 for i in range(30)]),
        LabeledData(texts(10), [0, 1] * 5),
        LabeledData([], []),
        model_config=replace(TINY_MODEL, max_tokens=50),
        training=TINY_TRAINING,
        work_dir=Path(tempfile.mkdtemp()),
    )
    assert Predictor(other.model).fingerprint != predictor.fingerprint


def test_the_fingerprint_reads_every_token_in_index_order(loaded_bilstm):
    # Read from the lookup table's tensors, not get_vocabulary(): the same tokens in the same order must come out,
    # or two vectorizers that number tokens differently could share a fingerprint.
    vectorizer, _ = parts(loaded_bilstm.model)
    tokens = [t.decode() for t in _vocabulary_bytes(vectorizer).split(b"\x00")[:-1]]
    vocabulary = vectorizer.get_vocabulary()
    assert len(tokens) > 10 and tokens == vocabulary[len(vocabulary) - len(tokens) :]
