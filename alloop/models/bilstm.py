"""The seed's model: TextVectorization (3,000 tokens, length 150) -> Embedding 128 -> BiLSTM 32 -> global max
pool -> Dense 20 relu -> Dropout 0.5 -> sigmoid, trained with rmsprop. Data-hungry, kept for reproduction."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from alloop.models.config import ModelConfig
from alloop.models.text_model import CLASSIFIER, VECTORIZER, TextVectorizer, standardize

FAMILY = "bilstm"


def build_vectorizer(config: ModelConfig, texts: Sequence[str]) -> keras.layers.TextVectorization:
    vectorizer = TextVectorizer(
        max_tokens=config.max_tokens,
        standardize=standardize,
        output_sequence_length=config.sequence_length,
        name=VECTORIZER,
    )
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(list(texts)).batch(512))
    return vectorizer


def build_classifier(config: ModelConfig, vectorizer: keras.layers.TextVectorization) -> keras.Model:
    binary = config.n_classes == 2
    return keras.Sequential(
        [
            keras.Input(shape=(config.sequence_length,), dtype="int64"),
            keras.layers.Embedding(config.max_tokens, config.embedding_dim),
            keras.layers.Bidirectional(keras.layers.LSTM(config.lstm_units, return_sequences=True)),
            keras.layers.GlobalMaxPool1D(),
            keras.layers.Dense(config.dense_units, activation="relu"),
            keras.layers.Dropout(config.dropout),
            keras.layers.Dense(1 if binary else config.n_classes, activation="sigmoid" if binary else "softmax"),
        ],
        name=CLASSIFIER,
    )


def compile_classifier(classifier: keras.Model, config: ModelConfig) -> None:
    binary = config.n_classes == 2
    classifier.compile(
        optimizer="rmsprop",
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def vectorize(vectorizer: keras.layers.Layer, texts: Sequence[str]) -> tf.Tensor:
    return vectorizer(tf.constant(list(texts)))
