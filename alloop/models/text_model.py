"""What every model family shares: the text standardization, the end-to-end assembly, and the predictor.

A version is ``Input(string) -> vectorizer -> classifier``. Training runs the classifier alone on features
vectorized once per round; the version that is saved and served is the end-to-end model, so one version's
vocabulary can never meet another's weights.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

VECTORIZER = "vectorizer"
CLASSIFIER = "classifier"


@keras.saving.register_keras_serializable(package="alloop")
def standardize(text: tf.Tensor) -> tf.Tensor:
    """Lower-case, drop the ``<br />`` tags IMDB reviews are full of, strip punctuation."""
    lowered = tf.strings.lower(text)
    no_html = tf.strings.regex_replace(lowered, "<br />", " ")
    return tf.strings.regex_replace(no_html, f"[{re.escape(string.punctuation)}]", "")


def assemble(vectorizer: keras.layers.Layer, classifier: keras.Model) -> keras.Model:
    inputs = keras.Input(shape=(1,), dtype="string", name="text")
    features = vectorizer(inputs)
    if len(features.shape) == 3:  # bag-of-words modes keep the input's length-1 axis: (batch, 1, vocabulary)
        features = keras.layers.Reshape((features.shape[-1],), name="flatten_text")(features)
    return keras.Model(inputs, classifier(features), name="alloop_text_model")


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
            width = max(2, int(self.model.output_shape[-1]))
            return np.zeros((0, width), dtype=np.float32)
        return np.concatenate(chunks)
