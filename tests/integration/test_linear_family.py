"""The linear family (TF-IDF 1-2-grams -> logistic layer): trains, adapts on unlabeled text, saves a version that
takes raw strings, and runs a round through the real services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import tensorflow as tf

from alloop import artifacts
from alloop.models import linear
from alloop.models.config import ModelConfig
from alloop.models.linear import TFIDF_LAYER, rounds
from alloop.models.linear import corpus as corpus_module
from alloop.models.text_model import Predictor, parts
from alloop.models.training import LabeledData, train_round
from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from query_service.server import create_server as create_query_server
from tests import synthetic
from tests.conftest import TINY_TRAINING
from tests.integration.services import channel, wait_for
from trainer_service.server import create_server as create_trainer_server

pytestmark = pytest.mark.integration

LINEAR = ModelConfig(family="linear", linear_max_tokens=2000, linear_lsa_components=20)


def data(n: int, seed: int, prefix: str) -> LabeledData:
    rows = synthetic.reviews(n, seed, prefix)
    return LabeledData([str(r["text"]) for r in rows], [int(r["label"]) for r in rows])  # type: ignore[call-overload]


def test_linear_round_learns_saves_and_serves_raw_strings(tmp_path):
    # Real reviews hold U+0085 / U+2028 inside words; such tokens once made a saved vocabulary unloadable.
    # Each in two texts, so the test holds with ModelConfig.linear_min_df at 2 as well.
    unlabeled = (
        ["an unseenword in the pool only", "another unseenword"]
        + [f"tell me\x85you {w}" for w in ("now", "then")]
        + [f"one\u2028two {w}" for w in ("lines", "rows")]
        + [f"x\u00a0y {w}" for w in ("a", "b")]
    )
    result = train_round(
        data(200, 1, "tr"),
        data(60, 2, "va"),
        data(100, 3, "te"),
        model_config=LINEAR,
        training=replace(TINY_TRAINING, epochs=15, warm_start=False),
        work_dir=tmp_path / "work",
        unlabeled_texts=unlabeled,
    )
    assert result.test.accuracy >= 0.9, result.test
    vectorizer, classifier = parts(result.model)
    # The round evaluates sparsely from cached counts; that must be exactly what the assembled model serves.
    test = data(100, 3, "te")
    kernel, bias = classifier.layers[-1].get_weights()
    idf = classifier.get_layer(TFIDF_LAYER).idf.numpy()
    sparse = linear.predict_proba(linear.vectorize(vectorizer, test.texts), idf, kernel, bias)
    np.testing.assert_allclose(sparse, Predictor(result.model).predict_proba(test.texts), rtol=1e-4, atol=1e-5)
    assert "unseenword" in vectorizer.get_vocabulary()  # the vocabulary adapts on unlabeled pool text too
    path, digest = artifacts.write_version(tmp_path / "models", 1, result.model, {"version": 1})
    loaded = artifacts.load_version(tmp_path / "models", 1, digest)
    texts = ["a superb wonderful film", "a dull awful mess of a movie"]
    before, after = Predictor(result.model).predict_proba(texts), Predictor(loaded).predict_proba(texts)
    np.testing.assert_allclose(before, after, rtol=1e-5, atol=1e-6)
    assert after[0, 1] > 0.5 > after[1, 1]
    exported = tf.saved_model.load(str(path / artifacts.SAVED_MODEL_DIR))  # keep a reference: it owns the variables
    served = exported.serve(tf.constant([[t] for t in texts]))
    np.testing.assert_allclose(served.numpy()[:, 0], after[:, 1], rtol=1e-4, atol=1e-5)


def test_a_linear_round_pseudo_labels_only_the_pool_text_no_label_covers(tmp_path, monkeypatch):
    """The trainer tells solve() which corpus rows are unlabelled: pool text that is also a training text is not."""
    train, val, test = data(120, 1, "tr"), data(40, 2, "va"), data(40, 3, "te")
    cache = linear.CorpusCache()
    marks: list[np.ndarray] = []
    solve = linear.solve

    def recording_solve(*args: object, **kwargs: object) -> object:
        marks.append(np.asarray(args[6]))
        return solve(*args, **kwargs)

    monkeypatch.setattr(rounds, "solve", recording_solve)  # the name the round calls

    def kernel(weight: float, unlabeled: list[str]) -> np.ndarray:
        result = train_round(
            # configured: the validation split would be free to leave the pseudo-labelled rows out
            train,
            val,
            test,
            model_config=replace(LINEAR, linear_pseudo_weight=weight, linear_select="configured"),
            training=replace(TINY_TRAINING, warm_start=False),
            work_dir=tmp_path / "work",
            unlabeled_texts=unlabeled,
            cache=cache,
        )
        return parts(result.model)[1].layers[-1].get_weights()[0]

    # A pool as the store gives it: items labelled since (in both lists) and items still unlabelled.
    pool = train.texts[:60] + data(200, 4, "po").texts
    assert not np.allclose(kernel(0.3, pool), kernel(0.0, pool))  # unlabelled pool rows joined the fit
    corpus = sorted({*train.texts, *pool})
    assert marks[-1].tolist() == [text not in set(train.texts) for text in corpus]
    assert marks[-1].sum() == 200
    labelled = train.texts[:60]  # every pool item labelled: nothing to pseudo-label, the same fit
    np.testing.assert_array_equal(kernel(0.3, labelled), kernel(0.0, labelled))
    assert not marks[-1].any()


def test_a_round_through_the_services_with_the_linear_family(trainer_settings, query_settings, redis_client, corpus):
    # The pools grow to 320 items (120 initial, 200 submitted): past 150, a round learns from a sample of 150.
    settings = replace(
        trainer_settings,
        model=LINEAR,
        training=replace(TINY_TRAINING, epochs=10, warm_start=False),
        pool_sample_items=150,
    )
    trainer = create_trainer_server(settings, redis_client)
    query = create_query_server(query_settings, redis_client)
    try:
        q = query_pb2_grpc.QueryServiceStub(channel(query.port))
        t = trainer_pb2_grpc.TrainerServiceStub(channel(trainer.port))
        wait_for(query.holder.current_or_none, timeout=120, what="version 1 served")
        first = q.GetModel(query_pb2.GetModelRequest()).version
        assert first.family == "linear" and first.metrics.accuracy >= 0.8
        assert first.adapts_to_pool  # what tells a client that a new pool wants a round (alloop-oracle asks for one)
        rows = [json.loads(line) for line in corpus["pool"].read_text().splitlines()]
        q.SubmitPool(
            iter(
                [
                    query_pb2.SubmitPoolRequest(
                        pool="p", items=[query_pb2.PoolItem(id=r["id"], text=r["text"]) for r in rows]
                    )
                ]
            )
        )
        selected = q.Query(query_pb2.QueryRequest(pool="p", strategy=common_pb2.STRATEGY_MARGIN, k=20)).selected
        truth = {r["id"]: r["label"] for r in rows}
        q.SubmitLabels(
            query_pb2.SubmitLabelsRequest(
                labels=[query_pb2.Label(pool="p", id=s.id, label=truth[s.id]) for s in selected]
            )
        )
        wait_for(lambda: query.holder.current_or_none().version == 2, timeout=120, what="version 2 served")
        assert query.holder.current().metadata["unlabeled_size"] == 150
        assert query.holder.current().metadata["unlabeled_sampled"] is True
        versions = t.ListModelVersions(trainer_pb2.ListModelVersionsRequest()).versions
        assert [v.family for v in versions] == ["linear", "linear"] and versions[1].train_size == 140
        # The pool has not changed since version 2: version 3 keeps its vocabulary and IDF weights (no re-adapting),
        # since the sample is the same and the new labels do not join it.
        more = q.Query(
            query_pb2.QueryRequest(pool="p", strategy=common_pb2.STRATEGY_MARGIN, k=5)
        ).selected  # below the threshold
        q.SubmitLabels(
            query_pb2.SubmitLabelsRequest(labels=[query_pb2.Label(pool="p", id=s.id, label=truth[s.id]) for s in more])
        )
        wait_for(
            lambda: t.GetStatus(trainer_pb2.GetStatusRequest()).status.labels_seen == 145, what="5 more labels consumed"
        )
        third = t.Train(trainer_pb2.TrainRequest(wait=True), timeout=120).version
        assert third.train_size == 145
        models_path = trainer_settings.common.models_path
        idf = [
            parts(artifacts.load_version(models_path, v.version, v.sha256))[1].get_layer(TFIDF_LAYER).idf.numpy()
            for v in (versions[1], third)
        ]
        np.testing.assert_array_equal(idf[0], idf[1])
        # The query service saw the same vocabulary in version 3: it scores the pool from the features it kept for
        # version 2 instead of tokenizing the pool again.
        wait_for(lambda: query.holder.current_or_none().version == 3, timeout=120, what="version 3 served")
        assert query.holder.current().metadata["unlabeled_size"] == 150
        misses = query.app.features.misses
        assert misses > 0
        again = q.Query(query_pb2.QueryRequest(pool="p", strategy=common_pb2.STRATEGY_MARGIN, k=5))
        assert again.model_version == 3 and len(again.selected) == 5
        assert query.app.features.misses == misses
        # The pool's vocabulary and statistics were kept on disk for the next trainer process.
        corpus_dir = settings.corpus_cache_path
        assert len(list(corpus_dir.glob("vocabulary-*.json"))) >= 1 and len(list(corpus_dir.glob("stats-*.npz"))) >= 1
    finally:
        query.stop(0)
        trainer.stop(0)


def test_a_process_that_never_imported_the_family_loads_its_versions(tmp_path):
    # The query service imports no training code; a custom layer must still be found when a version is loaded.
    result = train_round(
        data(80, 1, "tr"),
        data(30, 2, "va"),
        data(30, 3, "te"),
        model_config=LINEAR,
        training=replace(TINY_TRAINING, warm_start=False),
        work_dir=tmp_path / "work",
    )
    _, digest = artifacts.write_version(tmp_path / "models", 1, result.model, {"version": 1}, export_saved_model=False)
    code = (
        "import sys; from pathlib import Path; from alloop import artifacts; "
        "assert 'alloop.models.training' not in sys.modules; "
        f"m = artifacts.load_version(Path({str(tmp_path / 'models')!r}), 1, {digest!r}); print(m.name)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "alloop_text_model" in done.stdout


def test_corpus_cache_on_disk_gives_a_new_process_the_same_vocabulary_and_statistics(tmp_path, caplog):
    corpus = sorted({*data(120, 1, "tr").texts, *data(60, 4, "pool").texts})
    first = linear.CorpusCache(tmp_path / "cache")
    vectorizer = first.vectorizer(LINEAR, corpus)
    stats = first.stats(vectorizer, corpus, LINEAR.linear_lsa_components, 0)
    assert first.computed == 2

    again = linear.CorpusCache(tmp_path / "cache")  # as a restarted trainer would
    rebuilt = again.vectorizer(LINEAR, corpus)
    assert rebuilt.get_vocabulary() == vectorizer.get_vocabulary()
    texts = corpus[:20] + ["an unseenword or two"]
    assert (linear.vectorize(rebuilt, texts) != linear.vectorize(vectorizer, texts)).nnz == 0
    loaded = again.stats(rebuilt, corpus, LINEAR.linear_lsa_components, 0)
    assert again.computed == 0
    np.testing.assert_array_equal(loaded.idf, stats.idf)
    np.testing.assert_array_equal(loaded.basis, stats.basis)
    assert loaded.documents == stats.documents == len(corpus)

    # A damaged file is recomputed (and said so in the log), never trusted or raised.
    for path in (tmp_path / "cache").glob("stats-*.npz"):
        path.write_bytes(b"not a numpy file")
    third = linear.CorpusCache(tmp_path / "cache")
    with caplog.at_level("WARNING"):
        recomputed = third.stats(third.vectorizer(LINEAR, corpus), corpus, LINEAR.linear_lsa_components, 0)
    assert third.computed == 1 and "unreadable" in caplog.text
    np.testing.assert_allclose(recomputed.basis, stats.basis, atol=1e-6)

    # Only the most recently used files of each kind stay: reading the first corpus again keeps it.
    for n in range(3):
        other = corpus + [f"another pool text number {n}"]
        third.stats(third.vectorizer(LINEAR, other), other, LINEAR.linear_lsa_components, 0)
        fresh = linear.CorpusCache(tmp_path / "cache")
        fresh.stats(fresh.vectorizer(LINEAR, corpus), corpus, LINEAR.linear_lsa_components, 0)
        assert fresh.computed == 0, n
    for kind in ("vocabulary", "stats"):
        assert len(list((tmp_path / "cache").glob(f"{kind}-*"))) == linear.CorpusCache.KEEP_ON_DISK
    assert not list((tmp_path / "cache").glob(".tmp-*"))
    # A process killed mid-write leaves a temp file; the next cache on the directory removes it once it is old
    # (a young one may be another replica's write in progress).
    killed, writing = tmp_path / "cache" / ".tmp-killed", tmp_path / "cache" / ".tmp-writing"
    for path in (killed, writing):
        path.write_bytes(b"half a file")
    old = time.time() - linear.CorpusCache.STALE_TEMP_SECONDS - 60
    os.utime(killed, (old, old))
    linear.CorpusCache(tmp_path / "cache")
    assert not killed.exists() and writing.exists()


def test_corpus_cache_keeps_a_few_count_sets_and_its_statistics_reuse_the_corpus_counts(monkeypatch):
    corpus = sorted({*data(120, 1, "tr").texts, *data(60, 4, "pool").texts})
    cache = linear.CorpusCache()
    vectorizer = cache.vectorizer(LINEAR, corpus)
    calls: list[int] = []
    real = linear.vectorize
    monkeypatch.setattr(corpus_module, "vectorize", lambda v, texts: calls.append(len(texts)) or real(v, texts))

    counts = cache.counts(vectorizer, corpus)
    cache.stats(vectorizer, corpus, LINEAR.linear_lsa_components, 0)
    assert calls == [len(corpus)]  # the statistics took the corpus' counts, not a second tokenization
    assert cache.counts(vectorizer, corpus) is counts

    others = [[f"text set {n} review"] for n in range(linear.CorpusCache.KEEP_COUNTS)]
    for texts in others[:-1]:
        cache.counts(vectorizer, texts)
    assert cache.counts(vectorizer, corpus) is counts  # used again: now the newest
    cache.counts(vectorizer, others[-1])  # one set over the bound: the least recently used (others[0]) goes
    assert cache.counts(vectorizer, corpus) is counts
    tokenized = len(calls)
    cache.counts(vectorizer, others[1])
    assert len(calls) == tokenized  # kept
    cache.counts(vectorizer, others[0])
    assert len(calls) == tokenized + 1  # dropped, tokenized again
