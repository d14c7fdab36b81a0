"""The two value types every other part of the data layer passes around.

A record's label is an index into the task's class names rather than the name itself, so models, strategies and the
store can work with plain integers while the names live once, in :class:`Splits` and the prepared manifest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SPLIT_NAMES: tuple[str, ...] = ("initial", "val", "test", "pool")
"""The splits in the order they are carved out and written; also the file stems of a prepared directory."""

IMDB_CLASSES: tuple[str, ...] = ("negative", "positive")
"""Label 0 is a negative review and 1 a positive one, as in every IMDB distribution this package reads."""


@dataclass(frozen=True, slots=True)
class Record:
    """One text to classify; ``label`` is None while it is unlabelled (an item of the pool seen by a learner)."""

    id: str
    text: str
    label: int | None = None

    @property
    def known_label(self) -> int:
        """The label of a record read with ``require_label``; ValueError naming the record when it has none."""
        if self.label is None:
            raise ValueError(f"record {self.id!r} has no label")
        return self.label


@dataclass(frozen=True, slots=True)
class Splits:
    """A corpus carved for active learning.

    ``initial`` trains the first model, ``val`` drives early stopping, ``test`` is only for reporting and ``pool``
    is what the learner queries. Pool records keep their true labels because a simulated oracle answers from them.
    """

    initial: list[Record]
    val: list[Record]
    test: list[Record]
    pool: list[Record]
    classes: tuple[str, ...]

    def split(self, name: str) -> list[Record]:
        """A split by its name, so code driven by :data:`SPLIT_NAMES` needs no if-chains."""
        if name not in SPLIT_NAMES:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        return {name: len(self.split(name)) for name in SPLIT_NAMES}

    def class_counts(self) -> dict[str, list[int]]:
        """Per-split label histograms, to show at a glance that a split is balanced."""
        return {name: count_labels(self.split(name), len(self.classes)) for name in SPLIT_NAMES}


def count_labels(records: Iterable[Record], n_classes: int) -> list[int]:
    """How many records carry each label; unlabelled records are ignored, out-of-range labels are an error."""
    counts = [0] * n_classes
    for record in records:
        if record.label is None:
            continue
        if not 0 <= record.label < n_classes:
            raise ValueError(f"record {record.id!r} has label {record.label}, outside 0..{n_classes - 1}")
        counts[record.label] += 1
    return counts


def texts_digest(texts: Sequence[str]) -> str:
    """Identifies a text set by content: what the trainer and the linear family's caches key on."""
    return hashlib.sha256("\x00".join(texts).encode("utf-8", "surrogatepass")).hexdigest()
