"""The linear family's Keras layers: counts of 1-2-grams, then sublinear, L2-normalized TF-IDF (scikit-learn's
``TfidfVectorizer(sublinear_tf=True)``), then one Dense layer. This is all a served version holds.

A version whose fit joined the sentence encoder's block (:func:`alloop.models.linear.solve`) has an
:class:`EncodedTextVectorizer` instead: the counts with the frozen encoder's vector of the same text appended, so
the version still takes raw strings; its TF-IDF layer passes the appended columns through unchanged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import tensorflow as tf

from alloop.models.config import ModelConfig
from alloop.models.text_model import CLASSIFIER, VECTORIZER, TextVectorizer, join_vectors, standardize, to_host

TFIDF_LAYER = "tfidf"
_CHUNK = 512  # texts per vectorizer call


@keras.saving.register_keras_serializable(package="alloop")
class SublinearTfIdf(keras.layers.Layer):
    """Token counts -> ``(1 + log count) * idf``, each row scaled to unit length (scikit-learn's sublinear TF-IDF).

    The IDF weights are a non-trainable weight of this layer, so they are saved with the version and a version's
    vocabulary always meets its own IDF.
    """

    def __init__(self, width: int, passthrough: int = 0, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.width = int(width)
        self.passthrough = int(passthrough)  # columns after the vocabulary's (sentence vectors), left as they are

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.idf = self.add_weight(name="idf", shape=(self.width,), initializer="ones", trainable=False)

    def call(self, counts: tf.Tensor | tf.SparseTensor) -> tf.Tensor | tf.SparseTensor:
        if isinstance(counts, tf.SparseTensor):  # the served path: a review has a few hundred of 250,000 tokens
            rows, columns = counts.indices[:, 0], counts.indices[:, 1]
            raw = tf.cast(counts.values, tf.float32)
            values = (1.0 + tf.math.log(tf.maximum(raw, 1.0))) * tf.gather(
                self.idf, tf.minimum(columns, self.width - 1)
            )
            if self.passthrough:
                text = columns < self.width
                values = tf.where(text, values, 0.0)
            squares = tf.math.unsorted_segment_sum(values * values, rows, tf.cast(counts.dense_shape[0], tf.int32))
            values = values / tf.gather(tf.maximum(tf.sqrt(squares), 1e-12), rows)
            if self.passthrough:
                values = tf.where(text, values, raw)
            return tf.SparseTensor(counts.indices, values, counts.dense_shape)
        counts = keras.ops.cast(counts, "float32")
        passed = counts[..., self.width :] if self.passthrough else None
        counts = counts[..., : self.width] if self.passthrough else counts
        weighted = keras.ops.where(counts > 0, 1.0 + keras.ops.log(keras.ops.maximum(counts, 1.0)), 0.0) * self.idf
        norms = keras.ops.sqrt(keras.ops.sum(weighted * weighted, axis=-1, keepdims=True))
        normalized = weighted / keras.ops.maximum(norms, 1e-12)
        return normalized if passed is None else keras.ops.concatenate([normalized, passed], axis=-1)

    def compute_output_spec(self, counts: keras.KerasTensor) -> keras.KerasTensor:
        return keras.KerasTensor(counts.shape, dtype="float32", sparse=bool(getattr(counts, "sparse", False)))

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "width": self.width, "passthrough": self.passthrough}


@keras.saving.register_keras_serializable(package="alloop")
class EncodedTextVectorizer(TextVectorizer):
    """:class:`TextVectorizer`'s counts, then the frozen sentence encoder's vector of the same text (its columns
    after the vocabulary's). The encoder is the process's (:mod:`alloop.models.encoder.shared`), checked against
    the sha256 of the weights the version was fitted with; its weights are not saved in ``model.keras``."""

    def __init__(self, encoder_sha256: str, **kwargs: Any) -> None:
        from alloop.models.encoder import shared

        super().__init__(**kwargs)
        self.encoder_sha256, self.sentence_encoder = shared.encoder(encoder_sha256)
        self.sentence_width = int(self.sentence_encoder.width)  # type: ignore[attr-defined]

    def count(self, inputs: tf.Tensor) -> tf.SparseTensor:
        """The counts alone (what a replica joins with a pool item's stored vector)."""
        return super().call(inputs)

    def call(self, inputs: tf.Tensor) -> tf.SparseTensor:
        return join_vectors(super().call(inputs), self.sentence_encoder(tf.reshape(inputs, [-1])))  # type: ignore[operator]

    def compute_output_shape(self, input_shape: Any) -> Any:
        shape = tuple(super().compute_output_shape(input_shape))
        return (*shape[:-1], shape[-1] + self.sentence_width)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "encoder_sha256": self.encoder_sha256}


def build_vectorizer(
    config: ModelConfig,
    texts: Sequence[str],
    vocabulary: Sequence[str] | None = None,
    encoder_sha256: str | None = None,
) -> keras.layers.TextVectorization:
    """Adapted on ``texts``, or set to a ``vocabulary`` an earlier adaptation produced (``get_vocabulary()``);
    with ``encoder_sha256``, an :class:`EncodedTextVectorizer` (give it a ``vocabulary``)."""
    encoded: dict[str, Any] = {"encoder_sha256": encoder_sha256} if encoder_sha256 is not None else {}
    vectorizer = (EncodedTextVectorizer if encoder_sha256 is not None else TextVectorizer)(
        **encoded,
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
    sentence = int(getattr(vectorizer, "sentence_width", 0))
    return keras.Sequential(
        [
            keras.Input(shape=(width + sentence,), sparse=True),
            SublinearTfIdf(width, passthrough=sentence, name=TFIDF_LAYER),
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
    count = vectorizer.count if isinstance(vectorizer, EncodedTextVectorizer) else vectorizer  # never the encoder
    for start in range(0, len(texts), _CHUNK):
        counts = count(tf.constant(texts[start : start + _CHUNK]))  # sparse: see build_vectorizer
        blocks.append(to_host(counts).astype(np.float32, copy=False))
    return sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, width), dtype=np.float32)
