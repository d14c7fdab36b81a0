"""A frozen sentence encoder: raw strings in, one unit-length vector per string out, all in TensorFlow ops.

all-MiniLM-L6-v2 (sentence-transformers; Apache-2.0): BERT's uncased WordPiece (:mod:`.wordpiece`), a 6-layer,
384-wide encoder (:mod:`.minilm`), the mean of the token vectors, scaled to unit length. A text of up to 254
word pieces gives what sentence-transformers gives; a longer one is cut into windows of 254 pieces (each framed by
``[CLS]``/``[SEP]``, at most ``max_windows`` of them) and its vector is the mean over every window's tokens, where
sentence-transformers would drop all but the first window. The weights come from a registry package
(:mod:`.files`); nothing is downloaded at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from alloop.models.encoder.minilm import Bert
from alloop.models.encoder.wordpiece import WordPiece

WINDOW = 256  # tokens per window, [CLS] and [SEP] included: the model's trained max_seq_length
MAX_WINDOWS = 8
BATCH = 64


class SentenceEncoder(tf.Module):
    def __init__(self, model_dir: Path, max_windows: int = MAX_WINDOWS) -> None:
        super().__init__(name="sentence_encoder")
        if max_windows < 1:
            raise ValueError(f"max_windows must be at least 1, got {max_windows}")
        vocabulary = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
        self.tokenizer = WordPiece(vocabulary)
        self.bert = Bert(model_dir)
        self.width = self.bert.width
        self.max_windows = max_windows
        self._cls = vocabulary.index("[CLS]")
        self._sep = vocabulary.index("[SEP]")

    def embed(self, texts: Sequence[str], batch: int = BATCH) -> np.ndarray:
        """``(len(texts), width)`` float32, as :meth:`__call__` gives, in batches of texts of similar length (a
        batch is padded to its longest window, and the encoder's cost is its padded tokens)."""
        out = np.zeros((len(texts), self.width), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            out[rows] = self(tf.constant([texts[i] for i in rows])).numpy()
        return out

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts: tf.Tensor) -> tf.Tensor:
        """``(len(texts), width)`` float32 unit vectors; a text with no word pieces is ``[CLS] [SEP]``'s vector, as
        in sentence-transformers."""
        span = WINDOW - 2
        tokens = self.tokenizer(texts)[:, : span * self.max_windows]
        lengths = tokens.row_lengths()
        windows_per_text = tf.maximum(tf.cast(1, tf.int64), (lengths + span - 1) // span)
        first_window = tf.cumsum(windows_per_text, exclusive=True)
        # Each token's window: its text's first window plus its position // span.
        positions = tf.ragged.range(lengths).flat_values
        window_of_token = tf.repeat(first_window, lengths) + positions // span
        total = tf.reduce_sum(windows_per_text)
        windows = tf.RaggedTensor.from_value_rowids(tokens.flat_values, window_of_token, nrows=total)
        framed = tf.concat(
            [
                tf.fill([total, 1], tf.constant(self._cls, tf.int32)),
                windows,
                tf.fill([total, 1], tf.constant(self._sep, tf.int32)),
            ],
            axis=1,
        )
        ids = framed.to_tensor(0)
        mask = tf.sequence_mask(framed.row_lengths(), tf.shape(ids)[1], dtype=tf.float32)
        vectors = self.bert(ids, mask)
        sums = tf.reduce_sum(vectors * mask[:, :, None], axis=1)
        text_of_window = tf.repeat(tf.range(tf.size(lengths), dtype=tf.int64), windows_per_text)
        total_sums = tf.math.unsorted_segment_sum(sums, text_of_window, tf.size(lengths))
        counts = tf.math.unsorted_segment_sum(tf.reduce_sum(mask, axis=1), text_of_window, tf.size(lengths))
        means = total_sums / tf.maximum(counts, 1.0)[:, None]
        return tf.math.l2_normalize(means, axis=1, epsilon=1e-12)
