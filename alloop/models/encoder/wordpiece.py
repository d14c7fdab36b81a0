"""BERT's uncased WordPiece tokenizer as TensorFlow graph ops, so a saved model that embeds text takes raw strings.

TensorFlow's own WordPiece ops live in tensorflow-text, whose wheels require the ``tensorflow`` distribution (alloop
runs on ``tensorflow-cpu``); this is the same algorithm in core ops. It follows Hugging Face's ``BertNormalizer``
(clean text, space around CJK ideographs, strip accents, lowercase), ``BertPreTokenizer`` (split on whitespace and
on every punctuation character) and ``WordPiece`` (greedy longest match first, ``##`` continuations, a word longer
than 100 characters or with no complete match becomes ``[UNK]``).

Known differences: unassigned code points are kept (Hugging Face drops them), and accents are stripped by a table built from Python's ``unicodedata`` (each character whose NFD
form, less its combining marks, is one other character), so a character that decomposes into several characters
that are not marks (Hangul syllables, a few ligatures) is kept whole, where NFD would split it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import tensorflow as tf

MAX_CHARS_PER_WORD = 100
SUFFIX = "##"
UNKNOWN = "[UNK]"
_DELETE = -1

# Hugging Face's punctuation: ASCII symbols and every Unicode P* character.
_PUNCTUATION = r"([!-/:-@\[-`{-~]|\p{P})"
_CJK = (
    r"([\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}\x{2B740}-\x{2B81F}"
    r"\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}])"
)


def accent_table(limit: int = 0x30000) -> tuple[list[int], list[int]]:
    """(code points, replacements): a combining mark maps to ``_DELETE``, a character whose NFD form less its marks
    is one other character maps to that character. Code points past ``limit`` are left alone."""
    keys: list[int] = []
    values: list[int] = []
    for cp in range(limit):
        char = chr(cp)
        if unicodedata.category(char) == "Mn":
            keys.append(cp)
            values.append(_DELETE)
            continue
        stripped = "".join(c for c in unicodedata.normalize("NFD", char) if unicodedata.category(c) != "Mn")
        if stripped != char and len(stripped) == 1:
            keys.append(cp)
            values.append(ord(stripped))
    return keys, values


class WordPiece(tf.Module):
    """Strings to WordPiece ids (no ``[CLS]``/``[SEP]``), one ragged row per string; usable inside a tf.function,
    and its lookup tables are saved with a SavedModel that holds it."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        super().__init__(name="wordpiece")
        self.vocabulary = list(vocabulary)
        self.unknown_id = self.vocabulary.index(UNKNOWN)
        self._ids = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.vocabulary), tf.range(len(self.vocabulary), dtype=tf.int32)
            ),
            default_value=-1,
        )
        # No vocabulary entry is longer than this many characters, so no longer match can exist.
        self._longest = max(len(token.removeprefix(SUFFIX)) for token in self.vocabulary)
        keys, values = accent_table()
        self._accents = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.int32), tf.constant(values, tf.int32)),
            default_value=-2,
        )

    def normalize(self, texts: tf.Tensor) -> tf.Tensor:
        text = tf.strings.regex_replace(texts, r"[\t\n\r]", " ")
        text = tf.strings.regex_replace(text, r"[\x{0}\x{FFFD}\p{Cc}\p{Cf}\p{Co}]", "")
        text = tf.strings.regex_replace(text, r"[\s\p{Z}]", " ")  # Unicode spaces too: no-break, ideographic
        text = tf.strings.regex_replace(text, _CJK, r" \1 ")
        chars = tf.strings.unicode_decode(text, "UTF-8", errors="replace")
        mapped = self._accents.lookup(chars)
        chars = tf.where(mapped == -2, chars, mapped)
        chars = tf.ragged.boolean_mask(chars, chars != _DELETE)
        return tf.strings.lower(tf.strings.unicode_encode(chars, "UTF-8"), encoding="utf-8")

    def words(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Each text's words after normalizing: whitespace-separated, every punctuation character on its own."""
        spaced = tf.strings.regex_replace(self.normalize(texts), _PUNCTUATION, r" \1 ")
        return tf.strings.split(spaced)

    def __call__(self, texts: tf.Tensor) -> tf.RaggedTensor:
        words = self.words(tf.convert_to_tensor(texts, tf.string))
        pieces = self._pieces(words.flat_values)  # (words, pieces) ragged
        return tf.RaggedTensor.from_row_splits(pieces.flat_values, tf.gather(pieces.row_splits, words.row_splits))

    def _pieces(self, words: tf.Tensor) -> tf.RaggedTensor:
        """Greedy longest-match-first over every word at once: each step takes, for each unfinished word, the
        longest vocabulary entry that starts where the word's previous piece ended."""
        n = tf.shape(words)[0]
        lengths = tf.strings.length(words, unit="UTF8_CHAR")
        whole = self._ids.lookup(words)
        too_long = lengths > MAX_CHARS_PER_WORD
        done = (whole >= 0) | too_long | (lengths == 0)
        position = tf.where(done, lengths, tf.zeros_like(lengths))
        failed = too_long
        spans = tf.range(1, self._longest + 1, dtype=tf.int32)
        # Row 0 holds no pieces: the stack is never empty, even when every word was found whole.
        steps = tf.TensorArray(tf.int32, size=0, dynamic_size=True).write(0, tf.fill([n], -1))

        def step(i, position, done, failed, steps):
            starts = tf.repeat(position[:, None], self._longest, axis=1)
            sizes = tf.repeat(spans[None, :], n, axis=0)
            candidates = tf.strings.substr(tf.repeat(words[:, None], self._longest, axis=1), starts, sizes, "UTF8_CHAR")
            candidates = tf.where(starts > 0, SUFFIX + candidates, candidates)
            ids = self._ids.lookup(candidates)
            fits = (ids >= 0) & (sizes <= (lengths - position)[:, None])
            best = tf.reduce_max(tf.where(fits, sizes, 0), axis=1)  # 0: nothing matches here
            best_id = tf.gather(ids, tf.maximum(best - 1, 0), batch_dims=1)
            active = ~done
            failed = failed | (active & (best == 0))
            piece = tf.where(active & (best > 0), best_id, -1)
            position = tf.where(active, position + best, position)
            done = done | failed | (position >= lengths)
            return i + 1, position, done, failed, steps.write(i, piece)

        _, _, _, failed, steps = tf.while_loop(
            lambda i, position, done, failed, steps: tf.reduce_any(~done),
            step,
            (tf.constant(1), position, done, failed, steps),
        )
        stacked = tf.transpose(steps.stack())  # (words, steps), -1 where a word had no piece in that step
        stacked = tf.reshape(stacked, [n, -1])
        first = tf.where(failed, self.unknown_id, tf.where(whole >= 0, whole, -1))
        table = tf.concat([first[:, None], tf.where(failed[:, None], -1, stacked)], axis=1)
        return tf.ragged.boolean_mask(table, table >= 0)
