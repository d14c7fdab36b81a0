"""A saved version's vocabulary is read once when it loads, and versions saved with Keras' own layer still load."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from keras.src.layers.preprocessing.index_lookup import IndexLookup

from alloop.models.config import ModelConfig
from alloop.models.linear import build_classifier, build_vectorizer
from alloop.models.text_model import Predictor, TextVectorizer, assemble, standardize

CONFIG = ModelConfig(family="linear", linear_max_tokens=500)
TEXTS = ["a good film", "a bad film", "good acting and a good story", "bad acting, bad story"]


def saved(tmp_path: Path, vectorizer: keras.layers.Layer) -> Path:
    model = assemble(vectorizer, build_classifier(CONFIG, vectorizer))
    path = tmp_path / "model.keras"
    model.save(path)
    return path


def test_the_vocabulary_is_set_once_and_scores_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vectorizer = build_vectorizer(CONFIG, TEXTS)
    assert isinstance(vectorizer, TextVectorizer)
    original = assemble(vectorizer, build_classifier(CONFIG, vectorizer))
    path = tmp_path / "model.keras"
    original.save(path)
    calls: list[int] = []
    real = IndexLookup.set_vocabulary

    def counting(self: IndexLookup, vocabulary: object, idf_weights: object = None) -> None:
        calls.append(1)
        real(self, vocabulary, idf_weights)

    monkeypatch.setattr(IndexLookup, "set_vocabulary", counting)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    assert len(calls) == 1  # Keras' own layer sets it twice
    assert loaded.get_layer("vectorizer").get_vocabulary() == vectorizer.get_vocabulary()
    np.testing.assert_allclose(Predictor(loaded).predict_proba(TEXTS), Predictor(original).predict_proba(TEXTS))


def test_a_version_saved_with_keras_text_vectorization_still_loads(tmp_path: Path) -> None:
    plain = keras.layers.TextVectorization(
        max_tokens=500, standardize=standardize, ngrams=2, output_mode="count", sparse=True, name="vectorizer"
    )
    plain.adapt(TEXTS)
    loaded = keras.saving.load_model(saved(tmp_path, plain), compile=False, safe_mode=True)
    assert type(loaded.get_layer("vectorizer")) is keras.layers.TextVectorization
    assert loaded.get_layer("vectorizer").get_vocabulary() == plain.get_vocabulary()
