"""What every strategy shares: the context it may read, the selection it returns, and ranking by score.

Kept in a module of its own so that strategy modules (:mod:`~alloop.strategies.bayesian`,
:mod:`~alloop.strategies.kcenter`) and the registry in :mod:`~alloop.strategies.selection` can all import it
without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.floating]


@dataclass(frozen=True)
class SelectionContext:
    """What a strategy may know beyond the (mean) probabilities.

    ``false_per_class[c]`` counts evaluation items wrongly predicted as class ``c``; for a binary task that is
    (false negatives, false positives), the counts the seed's ratio sampling is driven by.

    ``mc_samples`` and ``embeddings`` are extra model outputs that cost a forward pass each, so the caller computes
    them only for the strategies that say they need them (``NEEDS_MC_SAMPLES`` / ``NEEDS_EMBEDDINGS``):

    * ``mc_samples``: shape ``(passes, n, classes)``, one probability array per stochastic forward pass with dropout
      active (MC dropout); the ``probs`` a strategy gets is then their mean.
    * ``embeddings``: shape ``(n, d)``, one feature vector per item (the input to the classifier's last layer).
    """

    false_per_class: Sequence[int] = field(default_factory=tuple)
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    mc_samples: np.ndarray | None = None
    embeddings: np.ndarray | None = None


@dataclass(frozen=True)
class Selection:
    indices: IntArray  # positions into the scored array, in selection order
    scores: FloatArray  # the score of every scored item (what ItemScore.uncertainty reports)


Strategy = Callable[[npt.ArrayLike, int, SelectionContext], Selection]


def check_k(k: int, n: int) -> None:
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if k > n:
        raise ValueError(f"k={k} is larger than the {n} candidates")


def top_k(scores: npt.ArrayLike, k: int) -> IntArray:
    """Indices of the k highest scores; ties go to the earlier item, so results are reproducible."""
    values = np.asarray(scores, dtype=np.float64)
    check_k(k, len(values))
    order = np.lexsort((np.arange(len(values)), -values))
    return order[:k].astype(np.int64)
