"""What every model family shares: the text standardization, the end-to-end assembly, and the predictor.

A version is ``Input(string) -> vectorizer -> classifier``. Training runs the classifier alone on features
vectorized once per round; the version that is saved and served is the end-to-end model, so one version's
vocabulary can never meet another's weights.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import keras
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
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


@keras.saving.register_keras_serializable(package="alloop")
class TextVectorizer(keras.layers.TextVectorization):
    """Keras' ``TextVectorization``, whose saved vocabulary is read once when a version loads.

    Keras' own ``load_assets`` loads its nested lookup layer's vocabulary, and the loader then visits that nested
    layer and loads it again: two ``set_vocabulary`` calls over the whole vocabulary (0.4 s each for 250,000
    tokens), on the path of every model swap. The nested layer's own load is the one kept.
    """

    def load_assets(self, dir_path: str) -> None:
        return  # the nested lookup layer loads the vocabulary (see the class docstring)


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


Features: TypeAlias = npt.NDArray[Any] | sp.csr_matrix
"""A block of classifier inputs on the host, one row per text: CSR for bag-of-words counts, dense otherwise."""


def to_host(x: tf.Tensor | tf.SparseTensor) -> Features:
    if isinstance(x, tf.SparseTensor):
        index = x.indices.numpy()
        rows, width = (int(d) for d in x.dense_shape.numpy()[[0, -1]])
        return sp.csr_matrix((x.values.numpy(), (index[:, 0], index[:, -1])), shape=(rows, width))
    return x.numpy()


def to_tensor(block: Features) -> tf.Tensor | tf.SparseTensor:
    if sp.issparse(block):
        coo = sp.csr_matrix(block, copy=False)
        coo.sort_indices()  # a SparseTensor must be in row-major order
        coo = coo.tocoo()
        return tf.SparseTensor(np.stack([coo.row, coo.col], axis=1).astype(np.int64), coo.data, coo.shape)
    return tf.constant(block)


@functools.lru_cache(maxsize=1)
def embedding_projection(width: int, dim: int, seed: int) -> tf.Tensor:
    """The fixed Gaussian random projection :meth:`Predictor.embed` applies to inputs wider than ``dim``.

    Kept per process (the last width asked for: 256 MB at 250,000): consecutive versions of one vocabulary size
    share it, and drawing 250,000 x 256 normals takes seconds a replica would otherwise pay on the first diversity
    Query of every version.
    """
    matrix = np.random.default_rng(seed).standard_normal((width, dim), dtype=np.float32)
    matrix /= np.float32(np.sqrt(dim))
    return tf.constant(matrix)


def join_vectors(counts: tf.SparseTensor, vectors: tf.Tensor) -> tf.SparseTensor:
    """Count rows with their sentence vectors appended: ``(batch, vocabulary + width)``, sparse, row-major."""
    counts = tf.SparseTensor(counts.indices, tf.cast(counts.values, tf.float32), counts.dense_shape)
    dense = tf.sparse.from_dense(tf.cast(vectors, tf.float32))
    return tf.sparse.reorder(tf.sparse.concat(axis=1, sp_inputs=[counts, dense]))


def _batches(texts: Sequence[str], size: int) -> list[Sequence[str]]:
    return [texts[start : start + size] for start in range(0, len(texts), size)]


def _row_batches(features: Features, size: int) -> list[Features]:
    return [features[start : start + size] for start in range(0, features.shape[0], size)]


def _check_passes(passes: object) -> int:
    if isinstance(passes, bool) or not isinstance(passes, (int, np.integer)) or passes < 1:
        raise ValueError(f"passes must be a positive number of forward passes, got {passes!r}")
    return int(passes)


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

    # Built on first use by _features_graph/_feature_graph, under this version's own lock: building one can take
    # seconds (the probe, the embedding projection), and must not hold up the calls of another version.
    _features_forward: Callable[[tf.Tensor], Any] | None = None
    _fingerprint: str | None = None
    _embedding_width = 0

    def __init__(self, model: keras.Model, batch_size: int = 512) -> None:
        self.model = model
        self.batch_size = batch_size
        self._graphs: dict[str, Callable[..., Any]] = {}
        self._graph_lock = threading.Lock()

    def predict_proba(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """The served model's probabilities, through the same two graphs as :meth:`features` and
        :meth:`predict_proba_features` (the features stay on the device between them): a version traces two
        graphs, not three, and scores a text with exactly the numbers a Query's cached features give."""
        features, proba = self._features_graph(), self._feature_graph("proba")
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = text_tensor(texts[start : start + self.batch_size])
            chunks.append(to_probabilities(proba(features(batch)).numpy()))
        if not chunks:
            width = max(2, int(self.model.output_shape[-1]))
            return np.zeros((0, width), dtype=np.float32)
        return np.concatenate(chunks)

    def vocabulary_size(self) -> int:
        return int(parts(self.model)[0].vocabulary_size())

    # --- features: what the classifier sees, computed once per text and reusable across versions ------------
    @property
    def fingerprint(self) -> str:
        """Identifies the vectorizer: two versions with the same fingerprint turn a text into the same features.

        Warm-started BiLSTM versions keep their vocabulary, and linear versions keep theirs while the pools' text is
        unchanged, so a replica can keep a pool's features (:class:`query_service.features.FeatureCache`) from one
        version to the next instead of re-tokenizing the pool on every Query. Stable within one process only (the
        config's repr names the standardize function's address), which is all a replica's cache needs.
        """
        if self._fingerprint is None:
            vectorizer, _ = parts(self.model)
            config = {
                k: v for k, v in vectorizer.get_config().items() if k not in ("name", "vocabulary", "idf_weights")
            }
            digest = hashlib.sha256(repr(sorted(config.items())).encode())
            digest.update(_vocabulary_bytes(vectorizer))
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def features(self, texts: Sequence[str]) -> Features:
        """The classifier's input for each text, as host arrays: a CSR matrix for bag-of-words vectorizers (a
        review has a few hundred of 250,000 columns), a dense array otherwise. Row i belongs to ``texts[i]``."""
        forward = self._features_graph()
        blocks = [to_host(forward(text_tensor(batch))) for batch in _batches(texts, self.batch_size)]
        if not blocks:
            return to_host(forward(text_tensor(["empty"])))[:0]
        return sp.vstack(blocks, format="csr") if sp.issparse(blocks[0]) else np.concatenate(blocks)

    def _features_graph(self) -> Callable[[tf.Tensor], Any]:
        with self._graph_lock:
            return self._features_graph_unlocked()

    def _features_graph_unlocked(self) -> Callable[[tf.Tensor], Any]:
        if self._features_forward is None:
            features, _ = self._features_and_classifier(self.model)
            self._features_forward = tf.function(
                features, input_signature=[tf.TensorSpec(shape=(None, 1), dtype=tf.string)]
            )
        return self._features_forward

    # --- stored sentence vectors -------------------------------------------------------------------------------
    @property
    def sentence_width(self) -> int:
        """The width of the sentence vectors this version's input joins to the text's counts (0: none; the
        linear family's encoder block, :class:`alloop.models.linear.layer.EncodedTextVectorizer`)."""
        return int(getattr(parts(self.model)[0], "sentence_width", 0))

    def features_with_vectors(self, texts: Sequence[str], vectors: npt.NDArray[Any]) -> Features:
        """:meth:`features` for texts whose sentence vectors are known (a pool item's, stored when it arrived):
        the same rows, without running the encoder. Only for a version with :attr:`sentence_width`."""
        if not self.sentence_width:
            raise ValueError("this version joins no sentence vectors to its input")
        if len(vectors) != len(texts):
            raise ValueError(f"{len(vectors)} sentence vectors for {len(texts)} texts")
        with self._graph_lock:
            if "with_vectors" not in self._graphs:
                vectorizer, _ = parts(self.model)

                def joined(text: tf.Tensor, vector: tf.Tensor) -> tf.SparseTensor:
                    return join_vectors(vectorizer.count(text), vector)

                self._graphs["with_vectors"] = tf.function(
                    joined,
                    input_signature=[
                        tf.TensorSpec(shape=(None, 1), dtype=tf.string),
                        tf.TensorSpec(shape=(None, self.sentence_width), dtype=tf.float32),
                    ],
                )
            forward = self._graphs["with_vectors"]
        rows = np.asarray(vectors, dtype=np.float32)
        blocks = [
            to_host(forward(text_tensor(texts[start : start + self.batch_size]), rows[start : start + self.batch_size]))
            for start in range(0, len(texts), self.batch_size)
        ]
        if not blocks:
            return self.features([])
        return sp.vstack(blocks, format="csr")

    def predict_proba_features(self, features: Features) -> npt.NDArray[np.float32]:
        """:meth:`predict_proba` from :meth:`features` rows (the same numbers, without tokenizing again)."""
        _, classifier = parts(self.model)
        forward = self._feature_graph("proba")
        chunks = [
            to_probabilities(forward(to_tensor(block)).numpy()) for block in _row_batches(features, self.batch_size)
        ]
        if not chunks:
            return np.zeros((0, max(2, int(classifier.output_shape[-1]))), dtype=np.float32)
        return np.concatenate(chunks)

    # --- MC dropout --------------------------------------------------------------------------------------------
    def predict_mc(self, texts: Sequence[str], passes: int) -> npt.NDArray[np.float32]:
        """``passes`` stochastic forward passes with dropout active: shape ``(passes, len(texts), classes)``.

        A family without dropout (linear) gives ``passes`` identical arrays: BALD is then 0 for every item and
        mean-entropy equals entropy. That is the right answer for such a model, not an error. Dropout masks come
        from the layers' own seed generators, so passes are not reproducible from a request's seed.
        """
        passes = _check_passes(passes)
        per_call = max(1, self.batch_size // passes)
        chunks = [self.predict_mc_features(self.features(batch), passes) for batch in _batches(texts, per_call)]
        if not chunks:
            return self.predict_mc_features(self.features([]), passes)
        return np.concatenate(chunks, axis=1)

    def predict_mc_features(self, features: Features, passes: int) -> npt.NDArray[np.float32]:
        """:meth:`predict_mc` from :meth:`features` rows.

        Each row's features are repeated ``passes`` times along the batch axis and the classifier runs once over
        all copies with ``training=True``, so every copy draws its own dropout mask in one graph call instead of
        ``passes`` calls. Rows are taken ``batch_size // passes`` at a time, so a call holds as many rows as a
        :meth:`predict_proba` batch.
        """
        passes = _check_passes(passes)
        forward = self._feature_graph("mc")
        chunks = []
        for block in _row_batches(features, max(1, self.batch_size // passes)):
            probs = to_probabilities(forward(to_tensor(block), tf.constant(passes, dtype=tf.int32)).numpy())
            chunks.append(probs.reshape(passes, block.shape[0], probs.shape[-1]))  # rows are pass-major
        if not chunks:
            _, classifier = parts(self.model)
            return np.zeros((passes, 0, max(2, int(classifier.output_shape[-1]))), dtype=np.float32)
        return np.concatenate(chunks, axis=1)

    # --- embeddings --------------------------------------------------------------------------------------------
    def predict_and_embed(self, texts: Sequence[str]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """:meth:`predict_proba` and :meth:`embed` from one vectorization of each batch.

        Vectorizing is most of a bag-of-words model's cost, so a strategy that needs both pays for it once.
        """
        pairs = [self.predict_and_embed_features(self.features(batch)) for batch in _batches(texts, self.batch_size)]
        if not pairs:
            return self.predict_and_embed_features(self.features([]))
        return np.concatenate([p for p, _ in pairs]), np.concatenate([e for _, e in pairs])

    def predict_and_embed_features(self, features: Features) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        forward = self._feature_graph("proba_and_embed")
        probs, embeddings = [], []
        for block in _row_batches(features, self.batch_size):
            out, emb = forward(to_tensor(block))
            probs.append(to_probabilities(out.numpy()))
            embeddings.append(emb.numpy().astype(np.float32, copy=False))
        if not probs:
            return self.predict_proba_features(features), np.zeros((0, self._embedding_width), dtype=np.float32)
        return np.concatenate(probs), np.concatenate(embeddings)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One vector per text: the input to the classifier's last (Dense) layer, in inference mode.

        For the BiLSTM family that is the penultimate activations after Dropout (identity at inference), the space
        the output layer separates classes in. For the linear family it is the TF-IDF vector, as wide as the
        vocabulary, so anything wider than :attr:`EMBEDDING_DIM` is projected down by a fixed-seed Gaussian random
        projection (Johnson-Lindenstrauss: pairwise distances are kept up to a small factor, which is all distance
        based selection needs). Shape ``(len(texts), min(width, EMBEDDING_DIM))``.
        """
        return self.predict_and_embed(texts)[1]

    def _feature_graph(self, name: str) -> Callable[..., Any]:
        """One classifier-side graph (``proba``, ``mc`` or ``proba_and_embed``), built on first use and traced once:
        its signature is what the features graph gives for any text, with the batch (and a sparse block's row
        count) left open. Each is built only when asked for: the embedding projection alone is a 250,000 x 256
        matrix, a few seconds to draw, which a version that only scores never pays."""
        with self._graph_lock:
            if name in self._graphs:
                return self._graphs[name]
            _, classifier = parts(self.model)
            hidden = classifier.layers[:-1]
            last = classifier.layers[-1]

            def proba(x: Any) -> tf.Tensor:
                return classifier(x, training=False)

            stochastic = any(isinstance(layer, keras.layers.Dropout) for layer in classifier.layers)

            def mc(x: Any, passes: tf.Tensor) -> tf.Tensor:
                if not stochastic:
                    # Every pass would be the same: run once and repeat the outputs. Tiling the input instead
                    # would make the linear family's sparse counts a dense (passes * batch, 250,000) block.
                    return tf.tile(classifier(x, training=False), tf.stack([passes, 1]))
                multiples = tf.concat([tf.reshape(passes, [1]), tf.ones([len(x.shape) - 1], tf.int32)], axis=0)
                return classifier(tf.tile(x, multiples), training=True)  # row j*n + i is pass j of text i

            def proba_and_embed(x: Any) -> tuple[tf.Tensor, tf.Tensor]:
                for layer in hidden:
                    x = layer(x, training=False)
                if projection is None:
                    return last(x, training=False), (tf.sparse.to_dense(x) if isinstance(x, tf.SparseTensor) else x)
                # TF-IDF rows hold a few hundred non-zeros out of 250,000: multiply only those.
                sparse = x if isinstance(x, tf.SparseTensor) else tf.sparse.from_dense(x)
                return last(x, training=False), tf.sparse.sparse_dense_matmul(sparse, projection)

            projection = None
            if name == "proba_and_embed":
                if not isinstance(last, keras.layers.Dense):
                    raise ValueError(f"embed needs a classifier that ends in a Dense layer, got {type(last).__name__}")
                width = int(last.kernel.shape[0])
                if width > self.EMBEDDING_DIM:
                    projection = embedding_projection(width, self.EMBEDDING_DIM, self.EMBEDDING_SEED)
                self._embedding_width = min(width, self.EMBEDDING_DIM)
            probe = self._features_graph_unlocked()(text_tensor(["signature"]))
            if isinstance(probe, tf.SparseTensor):
                spec: tf.TypeSpec = tf.SparseTensorSpec(shape=[None, *probe.shape[1:]], dtype=probe.dtype)
            else:
                spec = tf.TensorSpec(shape=[None, *probe.shape[1:]], dtype=probe.dtype)
            signature = {
                "proba": [spec],
                "mc": [spec, tf.TensorSpec(shape=(), dtype=tf.int32)],
                "proba_and_embed": [spec],
            }
            fn = {"proba": proba, "mc": mc, "proba_and_embed": proba_and_embed}[name]
            self._graphs[name] = tf.function(fn, input_signature=signature[name])
            return self._graphs[name]

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


def _vocabulary_bytes(vectorizer: Any) -> bytes:
    """The vectorizer's tokens in index order, each ended by NUL, as one byte string.

    Read from the lookup table's tensors (a few milliseconds for 250,000 tokens) rather than through
    ``get_vocabulary()``, whose per-token Python loop took 0.7 s of every swap; the vectorizer's public method is the
    fallback for a layer without that table.
    """
    table = getattr(getattr(vectorizer, "_lookup_layer", None), "lookup_table", None)
    if table is not None:
        tokens, indices = (tensor.numpy() for tensor in table.export())
        ordered = tokens[np.argsort(indices, kind="stable")].tolist()
        return b"\x00".join(ordered) + b"\x00" if ordered else b""
    vocabulary = vectorizer.get_vocabulary()
    return ("\x00".join(vocabulary) + "\x00" if vocabulary else "").encode("utf-8", "surrogatepass")
