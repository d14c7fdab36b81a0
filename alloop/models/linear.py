"""A linear model on TF-IDF unigrams and bigrams: the family that wins on labels (see FINDINGS and bench/).

Unlabeled text is free, so the vocabulary and the IDF weights are adapted on the pool's texts as well as the
labeled ones. Features are vectorized once per round into a sparse matrix (a dense 10,000 x 100,000 matrix would
not fit in memory), in chunks, because Keras' sparse TF-IDF output mode fails on TF 2.21; the served model
computes the same features densely, one request batch at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from alloop.models.config import ModelConfig
from alloop.models.text_model import CLASSIFIER, VECTORIZER, standardize

FAMILY = "linear"
_CHUNK = 512


def build_vectorizer(config: ModelConfig, texts: Sequence[str]) -> keras.layers.TextVectorization:
    vectorizer = keras.layers.TextVectorization(
        max_tokens=config.linear_max_tokens,
        standardize=standardize,
        ngrams=config.ngrams,
        output_mode="tf_idf",
        name=VECTORIZER,
    )
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(list(texts)).batch(_CHUNK))
    return vectorizer


def build_classifier(config: ModelConfig, vectorizer: keras.layers.TextVectorization) -> keras.Model:
    binary = config.n_classes == 2
    width = vectorizer.vocabulary_size()
    return keras.Sequential(
        [
            keras.Input(shape=(width,), sparse=True),
            keras.layers.Dense(
                1 if binary else config.n_classes,
                activation="sigmoid" if binary else "softmax",
                kernel_regularizer=keras.regularizers.l2(config.linear_l2) if config.linear_l2 else None,
            ),
        ],
        name=CLASSIFIER,
    )


def compile_classifier(classifier: keras.Model, config: ModelConfig) -> None:
    binary = config.n_classes == 2
    classifier.compile(
        optimizer=keras.optimizers.Adam(config.linear_learning_rate),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def vectorize(vectorizer: keras.layers.Layer, texts: Sequence[str]) -> tf.SparseTensor:
    texts = list(texts)
    chunks = [tf.sparse.from_dense(vectorizer(tf.constant(texts[i : i + _CHUNK]))) for i in range(0, len(texts), _CHUNK)]
    return tf.sparse.concat(0, chunks) if len(chunks) > 1 else chunks[0]
