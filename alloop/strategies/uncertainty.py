"""Uncertainty measures: pure functions of a probability array, higher = more worth a label.

Each takes ``probs`` of shape ``(n, n_classes)`` (rows sum to 1) and returns a float array of shape ``(n,)``.
They are kept apart from selection so a client that only wants scores (ScorePool) gets the same numbers a Query
would rank by.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating]


def check_probabilities(probs: npt.ArrayLike) -> FloatArray:
    """Validate once at the edge, so every measure can assume a clean (n, c>=2) array."""
    array = np.asarray(probs, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"probabilities must be 2-D (items, classes), got shape {array.shape}")
    if array.shape[1] < 2:
        raise ValueError(f"probabilities need at least 2 classes, got {array.shape[1]}")
    if not np.all(np.isfinite(array)):
        raise ValueError("probabilities contain NaN or infinity")
    return array


def least_confidence(probs: npt.ArrayLike) -> FloatArray:
    array = check_probabilities(probs)
    return 1.0 - array.max(axis=1)


def margin(probs: npt.ArrayLike) -> FloatArray:
    """1 minus the gap between the two most likely classes, so that higher means closer to the boundary."""
    array = check_probabilities(probs)
    top2 = np.partition(array, -2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(probs: npt.ArrayLike) -> FloatArray:
    array = check_probabilities(probs)
    clipped = np.clip(array, 1e-12, 1.0)
    return -(array * np.log(clipped)).sum(axis=1)


MEASURES = {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
}
