"""When to stop paying labelers: stabilizing predictions (Bloodgood & Vijay-Shanker, 2009).

Each version predicts a fixed sample of unlabeled pool items (the stop set). When consecutive versions agree on it
almost perfectly (Cohen's kappa at or above a threshold, averaged over the last few versions), more labels are
unlikely to change the model much. Pure functions; the trainer keeps the stop set and the last predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DEFAULT_THRESHOLD = 0.99
DEFAULT_WINDOW = 3


def cohen_kappa(a: npt.ArrayLike, b: npt.ArrayLike, n_classes: int) -> float:
    """Agreement between two label vectors beyond chance; 1.0 when identical (also when both are constant)."""
    x = np.asarray(a, dtype=np.int64)
    y = np.asarray(b, dtype=np.int64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"kappa needs two label vectors of one length, got {x.shape} and {y.shape}")
    if len(x) == 0:
        raise ValueError("kappa of empty label vectors is undefined")
    observed = float(np.mean(x == y))
    px = np.bincount(x, minlength=n_classes) / len(x)
    py = np.bincount(y, minlength=n_classes) / len(y)
    expected = float(np.dot(px, py))
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


@dataclass(frozen=True)
class Stability:
    kappa: float | None  # agreement with the previous version on the stop set; None for the first version
    window_mean: float | None
    stop: bool

    def to_dict(self) -> dict[str, object]:
        return {"kappa": self.kappa, "window_mean": self.window_mean, "stop": self.stop}


def stabilizing_predictions(
    kappas: Sequence[float], *, window: int = DEFAULT_WINDOW, threshold: float = DEFAULT_THRESHOLD
) -> Stability:
    """``kappas``: agreement of each version with its predecessor, oldest first (the newest is last)."""
    if window < 1 or not 0.0 < threshold <= 1.0:
        raise ValueError("window must be at least 1 and threshold in (0, 1]")
    if not kappas:
        return Stability(None, None, False)
    recent = list(kappas)[-window:]
    mean = float(np.mean(recent))
    return Stability(float(kappas[-1]), mean, len(recent) == window and mean >= threshold)
