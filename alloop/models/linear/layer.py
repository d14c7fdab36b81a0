"""The linear family's Keras layers: counts of 1-2-grams, then sublinear, L2-normalized TF-IDF (scikit-learn's
``TfidfVectorizer(sublinear_tf=True)``), then one Dense layer. This is all a served version holds."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import tensorflow as tf

from alloop.models.config import ModelConfig
from alloop.models.text_model import CLASSIFIER, VECTORIZER, TextVectorizer, standardize, to_host

TFIDF_LAYER = "tfidf"
_CHUNK = 512  # texts per vectorizer call


@keras.saving.register_keras_serializable(package="alloop")
class SublinearTfIdf(keras.layers.Layer):
    """Token counts -> ``(1 + log count) * idf``, each row scaled to unit length (scikit-learn's sublinear TF-IDF).

    The IDF weights are a non-trainable weight of this layer, so they are saved with the version and a version's
    vocabulary always meets its own IDF.
    """

    def __init__(self, width: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.width = int(width)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.idf = self.add_weight(name="idf", shape=(self.width,), initializer="ones", trainable=False)

    def call(self, counts: tf.Tensor | tf.SparseTensor) -> tf.Tensor | tf.SparseTensor:
        if isinstance(counts, tf.SparseTensor):  # the served path: a review has a few hundred of 250,000 tokens
            rows = counts.indices[:, 0]
            values = (1.0 + tf.math.log(tf.maximum(tf.cast(counts.values, tf.float32), 1.0))) * tf.gather(
                self.idf, counts.indices[:, 1]
            )
            squares = tf.math.unsorted_segment_sum(values * values, rows, tf.cast(counts.dense_shape[0], tf.int32))
            values = values / tf.gather(tf.maximum(tf.sqrt(squares), 1e-12), rows)
            return tf.SparseTensor(counts.indices, values, counts.dense_shape)
        counts = keras.ops.cast(counts, "float32")
        weighted = keras.ops.where(counts > 0, 1.0 + keras.ops.log(keras.ops.maximum(counts, 1.0)), 0.0) * self.idf
        norms = keras.ops.sqrt(keras.ops.sum(weighted * weighted, axis=-1, keepdims=True))
        return weighted / keras.ops.maximum(norms, 1e-12)

    def compute_output_spec(self, counts: keras.KerasTensor) -> keras.KerasTensor:
        return keras.KerasTensor(counts.shape, dtype="float32", sparse=bool(getattr(counts, "sparse", False)))

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "width": self.width}


def build_vectorizer(
    config: ModelConfig, texts: Sequence[str], vocabulary: Sequence[str] | None = None
) -> keras.layers.TextVectorization:
    """Adapted on ``texts``, or set to a ``vocabulary`` an earlier adaptation produced (``get_vocabulary()``)."""
    vectorizer = TextVectorizer(
        max_tokens=config.linear_max_tokens,
        standardize=standardize,
        ngrams=config.ngrams,
        output_mode="count",
        sparse=True,  # dense counts are 250,000 floats a review: 3x slower to serve than the tokenizing itself
        name=VECTORIZER,
    )
    if vocabulary is not None:
        vectorizer.set_vocabulary(list(vocabulary))
    else:
        vectorizer.adapt(tf.data.Dataset.from_tensor_slices(list(texts)).batch(_CHUNK))
        if config.linear_min_df > 1:
            keep = frequent_columns(vectorize(vectorizer, texts), config.linear_min_df)
            if len(keep) < vectorizer.vocabulary_size():  # a called layer keeps its width: build a new one
                words = vectorizer.get_vocabulary()
                return build_vectorizer(config, (), [words[i] for i in keep])
    return vectorizer


def frequent_columns(counts: sp.csr_matrix, min_df: int) -> npt.NDArray[np.int64]:
    """The columns (in order) that occur in at least ``min_df`` texts, and column 0, the out-of-vocabulary count.

    Why: on short texts most bigrams occur once; each still takes a share of its row's L2 norm and a weight of its
    own, so the words that generalise count for less. It pays on some corpora and costs on others
    (``python -m bench.linear_study``), hence ModelConfig.linear_min_df's default of 1 (no cut)."""
    documents = np.bincount(counts.indices, minlength=counts.shape[1])  # CSR without duplicates: one per text
    documents[0] = max(documents[0], min_df)
    return np.flatnonzero(documents >= min_df)


def build_classifier(config: ModelConfig, vectorizer: keras.layers.TextVectorization) -> keras.Model:
    binary = config.n_classes == 2
    width = vectorizer.vocabulary_size()
    return keras.Sequential(
        [
            keras.Input(shape=(width,), sparse=True),
            SublinearTfIdf(width, name=TFIDF_LAYER),
            keras.layers.Dense(1 if binary else config.n_classes, activation="sigmoid" if binary else "softmax"),
        ],
        name=CLASSIFIER,
    )


def compile_classifier(classifier: keras.Model, config: ModelConfig) -> None:
    """Compiled only so Keras can report a loss; the weights come from :func:`solve`, not from ``fit``."""
    binary = config.n_classes == 2
    classifier.compile(loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy")


def vectorize(vectorizer: keras.layers.Layer, texts: Sequence[str]) -> sp.csr_matrix:
    """Token counts as a CSR matrix, a chunk of texts per vectorizer call."""
    texts = list(texts)
    width = vectorizer.vocabulary_size()
    blocks = []
    for start in range(0, len(texts), _CHUNK):
        counts = vectorizer(tf.constant(texts[start : start + _CHUNK]))  # sparse: see build_vectorizer
        blocks.append(to_host(counts).astype(np.float32, copy=False))
    return sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, width), dtype=np.float32)
