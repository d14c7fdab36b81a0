"""What every model family shares: the text standardization, the end-to-end assembly, and the predictor.

A version is ``Input(string) -> vectorizer -> classifier``. Training runs the classifier alone on features
vectorized once per round; the version that is saved and served is the end-to-end model, so one version's
vocabulary can never meet another's weights.
"""

from __future__ import annotations

import re
import string
import threading
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

VECTORIZER = "vectorizer"
CLASSIFIER = "classifier"


@keras.saving.register_keras_serializable(package="alloop")
def standardize(text: tf.Tensor) -> tf.Tensor:
    """Lower-case, drop the ``<br />`` tags IMDB reviews are full of, strip punctuation, and turn every Unicode
    separator or control character into a plain space.

    The last step matters for saving: a vocabulary is stored one token per line and read back with Python's
    ``splitlines``, which also splits on U+0085, U+2028 and friends that whitespace tokenization leaves inside a
    token; such a token came back as two, and the saved version could not be loaded ("repeated terms").
    """
    lowered = tf.strings.lower(text)
    no_html = tf.strings.regex_replace(lowered, "<br />", " ")
    spaced = tf.strings.regex_replace(no_html, r"[\p{Z}\p{Cc}]+", " ")
    return tf.strings.regex_replace(spaced, f"[{re.escape(string.punctuation)}]", "")


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
    """A compiled forward pass of one loaded version: thread-safe, traced once, batch by batch.

    Besides the probabilities, two outputs the query strategies may ask for (``NEEDS_MC_SAMPLES`` /
    ``NEEDS_EMBEDDINGS`` in :mod:`alloop.strategies`): :meth:`predict_mc`, T stochastic passes with dropout active,
    and :meth:`embed`, the input to the classifier's last layer. Their graphs are built on first use (a served
    version that is never asked for them pays nothing) and traced once each, from fixed input signatures.
    """

    EMBEDDING_DIM = 256
    """Widest embedding :meth:`embed` returns: a wider input to the last layer (the linear family's TF-IDF vector,
    250,000 wide by default) is randomly projected down to this, so a pool's embeddings stay small."""
    EMBEDDING_SEED = 0
    """Seed of that projection: fixed, so one version embeds a text the same way in every call and every replica."""

    # Built on first use by _mc_graph/_embed_graph; the class-wide lock only guards building them (microseconds,
    # not the tracing, which tf.function serialises itself), so sharing it across versions costs nothing.
    _graph_lock = threading.Lock()
    _mc_forward: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None
    _embed_forward: Callable[[tf.Tensor], tf.Tensor] | None = None
    _embed_and_predict: Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]] | None = None
    _embedding_width = 0

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

    # --- MC dropout --------------------------------------------------------------------------------------------
    def predict_mc(self, texts: Sequence[str], passes: int) -> npt.NDArray[np.float32]:
        """``passes`` stochastic forward passes with dropout active: shape ``(passes, len(texts), classes)``.

        Each text is vectorized once; its features are repeated ``passes`` times along the batch axis and the
        classifier runs once over all copies with ``training=True``, so every copy draws its own dropout mask in one
        graph call instead of ``passes`` calls. Texts are taken ``batch_size // passes`` at a time, so a call holds
        as many rows as a :meth:`predict_proba` batch.

        A family without dropout (linear) gives ``passes`` identical arrays: BALD is then 0 for every item and
        mean-entropy equals entropy. That is the right answer for such a model, not an error. Dropout masks come
        from the layers' own seed generators, so passes are not reproducible from a request's seed.
        """
        if isinstance(passes, bool) or not isinstance(passes, (int, np.integer)) or passes < 1:
            raise ValueError(f"passes must be a positive number of forward passes, got {passes!r}")
        passes = int(passes)
        forward = self._mc_graph()
        per_call = max(1, self.batch_size // passes)
        chunks = []
        for start in range(0, len(texts), per_call):
            batch = texts[start : start + per_call]
            outputs = forward(text_tensor(batch), tf.constant(passes, dtype=tf.int32)).numpy()
            probs = to_probabilities(outputs)  # (passes * len(batch), classes), pass-major
            chunks.append(probs.reshape(passes, len(batch), probs.shape[-1]))
        if not chunks:
            return np.zeros((passes, 0, max(2, int(self.model.output_shape[-1]))), dtype=np.float32)
        return np.concatenate(chunks, axis=1)

    def _mc_graph(self) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
        with self._graph_lock:
            if self._mc_forward is None:
                features, classifier = self._features_and_classifier(self.model)
                stochastic = any(isinstance(layer, keras.layers.Dropout) for layer in classifier.layers)

                def mc_forward(texts: tf.Tensor, passes: tf.Tensor) -> tf.Tensor:
                    x = features(texts)
                    if not stochastic:
                        # Every pass would be the same: run once and repeat the outputs. Tiling the input instead
                        # would make the linear family's sparse counts a dense (passes * batch, 250,000) block.
                        return tf.tile(classifier(x, training=False), tf.stack([passes, 1]))
                    multiples = tf.concat([tf.reshape(passes, [1]), tf.ones([len(x.shape) - 1], tf.int32)], axis=0)
                    return classifier(tf.tile(x, multiples), training=True)  # row j*n + i is pass j of text i

                self._mc_forward = tf.function(
                    mc_forward,
                    input_signature=[
                        tf.TensorSpec(shape=(None, 1), dtype=tf.string),
                        tf.TensorSpec(shape=(), dtype=tf.int32),
                    ],
                )
            return self._mc_forward

    # --- embeddings --------------------------------------------------------------------------------------------
    def predict_and_embed(self, texts: Sequence[str]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """:meth:`predict_proba` and :meth:`embed` from one vectorization of each batch.

        Vectorizing is most of a bag-of-words model's cost, so a strategy that needs both pays for it once.
        """
        forward = self._embed_graph(with_outputs=True)
        probs, embeddings = [], []
        for start in range(0, len(texts), self.batch_size):
            out, emb = forward(text_tensor(texts[start : start + self.batch_size]))
            probs.append(to_probabilities(out.numpy()))
            embeddings.append(emb.numpy().astype(np.float32, copy=False))
        if not probs:
            return self.predict_proba([]), np.zeros((0, self._embedding_width), dtype=np.float32)
        return np.concatenate(probs), np.concatenate(embeddings)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One vector per text: the input to the classifier's last (Dense) layer, in inference mode.

        For the BiLSTM family that is the penultimate activations after Dropout (identity at inference), the space
        the output layer separates classes in. For the linear family it is the TF-IDF vector, as wide as the
        vocabulary, so anything wider than :attr:`EMBEDDING_DIM` is projected down by a fixed-seed Gaussian random
        projection (Johnson-Lindenstrauss: pairwise distances are kept up to a small factor, which is all distance
        based selection needs). Shape ``(len(texts), min(width, EMBEDDING_DIM))``.
        """
        forward = self._embed_graph()
        chunks = [
            forward(text_tensor(texts[start : start + self.batch_size])).numpy()
            for start in range(0, len(texts), self.batch_size)
        ]
        if not chunks:
            return np.zeros((0, self._embedding_width), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def _embed_graph(self, with_outputs: bool = False) -> Callable[[tf.Tensor], Any]:
        with self._graph_lock:
            if with_outputs and self._embed_and_predict is not None:
                return self._embed_and_predict
            if not with_outputs and self._embed_forward is not None:
                return self._embed_forward
            # Both graphs are built together: they share everything up to the classifier's last layer.
            features, classifier = self._features_and_classifier(self.model)
            hidden = classifier.layers[:-1]
            last = classifier.layers[-1]
            if not isinstance(last, keras.layers.Dense):
                raise ValueError(f"embed needs a classifier that ends in a Dense layer, got {type(last).__name__}")
            width = int(last.kernel.shape[0])
            projection = None
            if width > self.EMBEDDING_DIM:
                matrix = np.random.default_rng(self.EMBEDDING_SEED).standard_normal((width, self.EMBEDDING_DIM))
                projection = tf.constant(matrix / np.sqrt(self.EMBEDDING_DIM), dtype=last.kernel.dtype)

            def hidden_forward(texts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
                x = features(texts)
                for layer in hidden:
                    x = layer(x, training=False)
                if projection is None:
                    return x, (tf.sparse.to_dense(x) if isinstance(x, tf.SparseTensor) else x)
                # TF-IDF rows hold a few hundred non-zeros out of 250,000: multiply only those.
                sparse = x if isinstance(x, tf.SparseTensor) else tf.sparse.from_dense(x)
                return x, tf.sparse.sparse_dense_matmul(sparse, projection)

            def embed_forward(texts: tf.Tensor) -> tf.Tensor:
                return hidden_forward(texts)[1]

            def embed_and_predict(texts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
                x, embedding = hidden_forward(texts)
                return last(x, training=False), embedding

            spec = [tf.TensorSpec(shape=(None, 1), dtype=tf.string)]
            self._embed_forward = tf.function(embed_forward, input_signature=spec)
            self._embed_and_predict = tf.function(embed_and_predict, input_signature=spec)
            self._embedding_width = min(width, self.EMBEDDING_DIM)
            return self._embed_and_predict if with_outputs else self._embed_forward

    @staticmethod
    def _features_and_classifier(model: keras.Model) -> tuple[Callable[[tf.Tensor], tf.Tensor], keras.Model]:
        """Split an assembled model at its classifier: (texts -> classifier input, classifier).

        The features are the model's own layers between the text input and the classifier (the vectorizer and,
        for bag-of-words families, the reshape :func:`assemble` adds), so they compute exactly what the served
        model feeds its classifier. Only the straight chain :func:`assemble` builds is supported.
        """
        _, classifier = parts(model)
        if not isinstance(classifier, keras.Sequential):
            raise ValueError(f"the classifier must be a Sequential model, got {type(classifier).__name__}")
        layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        if not layers or layers[-1] is not classifier:
            raise ValueError("expected a model assembled as text -> vectorizer -> classifier (see assemble)")
        head = layers[:-1]

        def features(texts: tf.Tensor) -> tf.Tensor:
            x = texts
            for layer in head:
                x = layer(x)
            return x

        return features, classifier
