"""The seed's model, with the tokenizer inside so a saved version takes raw strings.

A version is ``Input(string) -> TextVectorization -> classifier``. Training runs the classifier alone on token ids
vectorized once per round (tokenizing every epoch would cost more than the LSTM on 2 cores); the version that is
saved and served is the end-to-end model, so one version's vocabulary can never meet another's weights.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from alloop.models.config import ModelConfig

VECTORIZER = "vectorizer"
CLASSIFIER = "classifier"
FAMILY = "bilstm"


@keras.saving.register_keras_serializable(package="alloop")
def standardize(text: tf.Tensor) -> tf.Tensor:
    """Lower-case, drop the ``<br />`` tags IMDB reviews are full of, strip punctuation."""
    lowered = tf.strings.lower(text)
    no_html = tf.strings.regex_replace(lowered, "<br />", " ")
    return tf.strings.regex_replace(no_html, f"[{re.escape(string.punctuation)}]", "")


def build_vectorizer(config: ModelConfig, texts: Sequence[str]) -> keras.layers.TextVectorization:
    vectorizer = keras.layers.TextVectorization(
        max_tokens=config.max_tokens,
        standardize=standardize,
        output_sequence_length=config.sequence_length,
        name=VECTORIZER,
    )
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(list(texts)).batch(512))
    return vectorizer


def build_classifier(config: ModelConfig) -> keras.Model:
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


def compile_classifier(classifier: keras.Model, n_classes: int) -> None:
    binary = n_classes == 2
    classifier.compile(
        optimizer="rmsprop",
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def assemble(vectorizer: keras.layers.Layer, classifier: keras.Model) -> keras.Model:
    inputs = keras.Input(shape=(1,), dtype="string", name="text")
    outputs = classifier(vectorizer(inputs))
    return keras.Model(inputs, outputs, name="alloop_text_model")


def parts(model: keras.Model) -> tuple[keras.layers.Layer, keras.Model]:
    """The vectorizer and classifier of an end-to-end model, for warm-starting the next round."""
    return model.get_layer(VECTORIZER), model.get_layer(CLASSIFIER)


def to_probabilities(outputs: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """(n, 1) sigmoid outputs become (n, 2) [P(class 0), P(class 1)]; softmax outputs pass through."""
    array = np.asarray(outputs, dtype=np.float32)
    if array.ndim == 2 and array.shape[1] == 1:
        positive = array[:, 0]
        return np.stack([1.0 - positive, positive], axis=1)
    return array


def text_tensor(texts: Sequence[str]) -> tf.Tensor:
    return tf.constant(list(texts), dtype=tf.string, shape=(len(texts), 1))


class Predictor:
    """A compiled forward pass of one loaded version: thread-safe, traced once, batch by batch."""

    def __init__(self, model: keras.Model, batch_size: int = 512) -> None:
        self.model = model
        self.batch_size = batch_size
        self._forward = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec(shape=(None, 1), dtype=tf.string)],
            reduce_retracing=True,
        )

    def predict_proba(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = text_tensor(texts[start : start + self.batch_size])
            chunks.append(to_probabilities(self._forward(batch).numpy()))
        if not chunks:
            return np.zeros((0, 2), dtype=np.float32)
        return np.concatenate(chunks)
