"""The linear family's encoder block through the real services: the trainer fits on the vectors the query replicas
stored when the items arrived, the published version still takes raw strings (its SavedModel holds the encoder),
and a replica scores the pool from the stored vectors without running the encoder again."""

from __future__ import annotations

import json
from dataclasses import replace

import keras
import numpy as np
import pytest
import tensorflow as tf

from alloop import artifacts
from alloop.errors import IntegrityError
from alloop.models.encoder import shared
from alloop.models.encoder.files import NAME
from alloop.models.text_model import Predictor, parts
from alloop.store.embeddings import EmbeddingStore
from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from query_service.server import create_server as create_query_server
from tests.conftest import TINY_TRAINING
from tests.integration.services import channel, wait_for
from tests.integration.test_linear_family import LINEAR
from trainer_service.server import create_server as create_trainer_server

pytestmark = pytest.mark.integration

# "configured": the block joins whenever vectors are there, so the test does not hang on what validation prefers
WITH_BLOCK = replace(LINEAR, linear_select="configured", linear_encoder_scale=1.0)


def test_a_round_fits_the_stored_vectors_and_the_version_takes_raw_strings(
    trainer_settings, query_settings, redis_client, keys, corpus, encoder_dir, monkeypatch
):
    common = replace(trainer_settings.common, encoder_dir=encoder_dir)
    settings = replace(
        trainer_settings,
        common=common,
        model=WITH_BLOCK,
        training=replace(TINY_TRAINING, epochs=10, warm_start=False),
        pool_sample_items=150,  # past it (the pools reach 320 items) a round's corpus and stop set are samples
    )
    query = create_query_server(replace(query_settings, common=common, score_claim_seconds=1.0), redis_client)
    trainer = create_trainer_server(settings, redis_client)
    try:
        q = query_pb2_grpc.QueryServiceStub(channel(query.port))
        t = trainer_pb2_grpc.TrainerServiceStub(channel(trainer.port))
        wait_for(query.holder.current_or_none, timeout=180, what="version 1 served")
        first = query.holder.current()
        assert first.metadata["sentence_encoder"]["name"] == NAME
        assert first.predictor.sentence_width == 384
        rows = [json.loads(line) for line in corpus["pool"].read_text().splitlines()]
        # The pool's items are embedded once, by the embedding workers: scoring them must never run the encoder,
        # neither through the encoder's own method nor through the version's graph (Predictor.features runs it),
        # not even while the workers have not reached them yet (the score index waits for their vectors).
        _, encoder = shared.encoder()
        calls: list[int] = []
        real_embed, real_features = encoder.embed, Predictor.features
        monkeypatch.setattr(encoder, "embed", lambda texts, **kw: calls.append(len(texts)) or real_embed(texts, **kw))
        monkeypatch.setattr(
            Predictor, "features", lambda self, texts: calls.append(len(texts)) or real_features(self, texts)
        )
        q.SubmitPool(
            iter(
                [
                    query_pb2.SubmitPoolRequest(
                        pool="p", items=[query_pb2.PoolItem(id=r["id"], text=r["text"]) for r in rows]
                    )
                ]
            )
        )
        store = EmbeddingStore(redis_client, keys, NAME)
        wait_for(lambda: store.progress("p").vectors == len(rows), timeout=180, what="the pool embedded")

        scored = q.Query(query_pb2.QueryRequest(pool="p", strategy=common_pb2.STRATEGY_MARGIN, k=20)).selected
        assert len(scored) == 20 and calls == []
        monkeypatch.undo()
        # The stored vectors give the numbers the version gives from the raw text (float16 storage aside).
        texts = {r["id"]: r["text"] for r in rows}
        from_text = first.predictor.predict_proba([texts[s.id] for s in scored])
        predicted = q.Predict(query_pb2.PredictRequest(texts=[texts[s.id] for s in scored])).predictions
        np.testing.assert_allclose(
            [p.probabilities for p in predicted], from_text, atol=1e-5
        )  # Predict on new text runs the encoder in the served graph
        ranked = first.predictor.predict_proba_features(
            first.predictor.features_with_vectors(
                [texts[s.id] for s in scored], np.stack(store.vectors("p", [s.id for s in scored]))
            )
        )
        np.testing.assert_allclose(ranked, from_text, atol=2e-3)

        # Labels: version 2 fits on the stored vectors; the trainer embeds no pool text itself.
        truth = {r["id"]: r["label"] for r in rows}
        q.SubmitLabels(
            query_pb2.SubmitLabelsRequest(
                labels=[query_pb2.Label(pool="p", id=s.id, label=truth[s.id]) for s in scored]
            )
        )
        wait_for(lambda: query.holder.current_or_none().version == 2, timeout=180, what="version 2 served")
        vectors = trainer.trainer._vectors
        assert vectors is not None and vectors.missing_in_store == 0
        assert version_two_corpus_was_sampled(query)
        assert not set(texts.values()) & set(vectors._embedded)  # the splits and the initial set only
        version = t.ListModelVersions(trainer_pb2.ListModelVersionsRequest()).versions[-1]
        assert version.version == 2 and version.metrics.accuracy >= 0.8

        # The SavedModel stands alone: raw strings in, the version's probabilities out, the encoder inside it.
        directory = artifacts.version_dir(settings.common.models_path, 2)
        model = artifacts.load_version(settings.common.models_path, 2, version.sha256)
        assert isinstance(parts(model)[0].encoder_sha256, str)
        saved = tf.saved_model.load(str(directory / artifacts.SAVED_MODEL_DIR))
        sample = [r["text"] for r in rows[:8]]
        served = saved.serve(tf.constant([[s] for s in sample])).numpy()
        np.testing.assert_allclose(served[:, -1], Predictor(model).predict_proba(sample)[:, -1], atol=1e-5)
        weights = sum(f.stat().st_size for f in (directory / artifacts.SAVED_MODEL_DIR).rglob("*") if f.is_file())
        assert weights > 80e6 > (directory / "model.keras").stat().st_size  # the encoder lives in the export only
    finally:
        query.stop(0)
        trainer.stop(0)


def version_two_corpus_was_sampled(query) -> bool:  # type: ignore[no-untyped-def]
    metadata = query.holder.current().metadata
    return bool(metadata["unlabeled_sampled"]) and metadata["unlabeled_size"] == 150


def test_a_process_without_the_encoder_cannot_load_such_a_version_and_says_why(encoder_dir, tmp_path):
    from alloop.models.config import ModelConfig
    from alloop.models.linear.layer import build_classifier, build_vectorizer
    from alloop.models.text_model import assemble

    shared.configure(encoder_dir)
    sha256, _ = shared.encoder()
    config = ModelConfig(family="linear")
    vectorizer = build_vectorizer(config, (), ["a", "b"], encoder_sha256=sha256)
    path = tmp_path / "model.keras"
    assemble(vectorizer, build_classifier(config, vectorizer)).save(path)

    def refusal() -> str:
        with pytest.raises(Exception) as caught:
            keras.saving.load_model(path, compile=False)
        chain, error = [], caught.value
        while error is not None:
            chain.append(str(error))
            error = error.__cause__ or error.__context__
        return " | ".join(chain)

    try:
        shared.configure(None)
        assert "set ALLOOP_ENCODER_DIR" in refusal()
        shared.configure(tmp_path / "elsewhere")  # a directory without the encoder's files
        assert "elsewhere" in refusal()
        shared.configure(encoder_dir)
        assert parts(keras.saving.load_model(path, compile=False))[0].encoder_sha256 == sha256
        with pytest.raises(IntegrityError, match=f"fitted with {NAME} weights of sha256 0000"):
            shared.encoder("0" * 64)  # a version fitted with other weights than these
    finally:
        shared.configure(None)
