"""Evaluation metrics from labels and probabilities (pure).

The trainer reports false positives / negatives because the seed's ratio sampling is driven by them; for N classes
the same idea is kept per class (``false_per_class``: wrongly predicted *as* c, ``missed_per_class``: items of c
predicted as something else). For a binary task FN = false_per_class[0] = missed_per_class[1] and
FP = false_per_class[1] = missed_per_class[0].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    false_positives: int
    false_negatives: int
    loss: float
    test_size: int
    false_per_class: tuple[int, ...]
    missed_per_class: tuple[int, ...]

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["false_per_class"] = list(self.false_per_class)
        data["missed_per_class"] = list(self.missed_per_class)
        return data


def confusion_matrix(labels: npt.ArrayLike, predicted: npt.ArrayLike, n_classes: int) -> npt.NDArray[np.int64]:
    """Rows are true classes, columns predicted classes."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(predicted, dtype=np.int64)
    if y.shape != p.shape:
        raise ValueError(f"labels and predictions differ in shape: {y.shape} vs {p.shape}")
    for name, values in (("labels", y), ("predictions", p)):
        # np.add.at would wrap a negative class around silently (-1 counted as the last class).
        if values.size and (values.min() < 0 or values.max() >= n_classes):
            raise ValueError(f"{name} out of range for {n_classes} classes: {values.min()}..{values.max()}")
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y, p), 1)
    return matrix


def cross_entropy(labels: npt.ArrayLike, probs: npt.ArrayLike) -> float:
    y = np.asarray(labels, dtype=np.int64)
    array = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1.0)
    if len(y) == 0:
        return 0.0
    return float(-np.log(array[np.arange(len(y)), y]).mean())


def evaluate(labels: npt.ArrayLike, probs: npt.ArrayLike) -> Evaluation:
    array = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    n_classes = array.shape[1]
    matrix = confusion_matrix(y, array.argmax(axis=1), n_classes)
    correct = np.trace(matrix)
    off_diagonal = matrix - np.diag(np.diag(matrix))
    false_per_class = tuple(int(v) for v in off_diagonal.sum(axis=0))
    missed_per_class = tuple(int(v) for v in off_diagonal.sum(axis=1))
    binary = n_classes == 2
    return Evaluation(
        accuracy=float(correct / len(y)) if len(y) else 0.0,
        false_positives=int(matrix[0, 1]) if binary else 0,
        false_negatives=int(matrix[1, 0]) if binary else 0,
        loss=cross_entropy(y, array),
        test_size=len(y),
        false_per_class=false_per_class,
        missed_per_class=missed_per_class,
    )
