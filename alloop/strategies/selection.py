"""Picking k items from scores, and the strategies that do it.

A strategy sees only model outputs (probabilities) and, for ratio sampling, the last evaluation's error counts. It
never touches Redis or a model, so it can be tested on hand-made arrays and reused by benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from alloop.strategies.uncertainty import MEASURES, check_probabilities, least_confidence

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.floating]


@dataclass(frozen=True)
class SelectionContext:
    """What a strategy may know beyond the probabilities.

    ``false_per_class[c]`` counts evaluation items wrongly predicted as class ``c``; for a binary task that is
    (false negatives, false positives), the counts the seed's ratio sampling is driven by.
    """

    false_per_class: Sequence[int] = field(default_factory=tuple)
    rng: np.random.Generator = field(default_factory=np.random.default_rng)


@dataclass(frozen=True)
class Selection:
    indices: IntArray  # positions into the scored array, in selection order
    scores: FloatArray  # the score of every scored item (what ItemScore.uncertainty reports)


def top_k(scores: npt.ArrayLike, k: int) -> IntArray:
    """Indices of the k highest scores; ties go to the earlier item, so results are reproducible."""
    values = np.asarray(scores, dtype=np.float64)
    _check_k(k, len(values))
    order = np.lexsort((np.arange(len(values)), -values))
    return order[:k].astype(np.int64)


def _check_k(k: int, n: int) -> None:
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if k > n:
        raise ValueError(f"k={k} is larger than the {n} candidates")


def uncertainty_strategy(measure: Callable[[npt.ArrayLike], FloatArray]) -> Callable[..., Selection]:
    def select(probs: npt.ArrayLike, k: int, context: SelectionContext) -> Selection:
        scores = measure(probs)
        return Selection(top_k(scores, k), scores)

    select.__name__ = measure.__name__
    return select


def random_sampling(probs: npt.ArrayLike, k: int, context: SelectionContext) -> Selection:
    """The baseline every other strategy must beat. Scores are least-confidence, for display only."""
    array = check_probabilities(probs)
    _check_k(k, len(array))
    chosen = context.rng.choice(len(array), size=k, replace=False).astype(np.int64)
    return Selection(chosen, least_confidence(array))


def class_quotas(k: int, false_per_class: Sequence[int], n_classes: int) -> IntArray:
    """Split k over predicted classes in proportion to the evaluation errors made *as* each class.

    This is the seed's rule (positives get FP/(FP+FN) of the batch, negatives FN/(FP+FN)), generalised to N
    classes; with no errors, or no evaluation yet, every class gets an equal share. Remainders go by the largest
    fractional part, so the quotas always sum to k.
    """
    errors = np.asarray(false_per_class, dtype=np.float64)
    if len(errors) != n_classes or errors.sum() <= 0 or np.count_nonzero(errors) < 2:
        # The seed falls back to 50/50 when either count is zero; keep that for N classes too.
        shares = np.full(n_classes, 1.0 / n_classes)
    else:
        shares = errors / errors.sum()
    raw = shares * k
    quotas = np.floor(raw).astype(np.int64)
    order = np.lexsort((np.arange(n_classes), -(raw - quotas)))
    quotas[order[: k - int(quotas.sum())]] += 1
    return quotas


def ratio_sampling(probs: npt.ArrayLike, k: int, context: SelectionContext) -> Selection:
    """The seed's class-ratio sampling, on *predicted* classes (true labels of the pool are unknown here).

    Within each predicted class items are drawn at random, as the seed does; a class with too few candidates hands
    its unused quota to the others so the batch still has k items.
    """
    array = check_probabilities(probs)
    n, n_classes = array.shape
    _check_k(k, n)
    predicted = array.argmax(axis=1)
    quotas = class_quotas(k, context.false_per_class, n_classes)
    chosen: list[np.ndarray] = []
    leftovers: list[np.ndarray] = []
    shortfall = 0
    for c in range(n_classes):
        members = context.rng.permutation(np.flatnonzero(predicted == c))
        take = min(int(quotas[c]), len(members))
        shortfall += int(quotas[c]) - take
        chosen.append(members[:take])
        leftovers.append(members[take:])
    if shortfall:
        rest = context.rng.permutation(np.concatenate(leftovers))
        chosen.append(rest[:shortfall])
    return Selection(np.concatenate(chosen).astype(np.int64), least_confidence(array))


Strategy = Callable[[npt.ArrayLike, int, SelectionContext], Selection]

STRATEGIES: dict[str, Strategy] = {
    **{name: uncertainty_strategy(measure) for name, measure in MEASURES.items()},
    "random": random_sampling,
    "ratio": ratio_sampling,
}


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(sorted(STRATEGIES))}") from None


def get_measure(name: str) -> Callable[[npt.ArrayLike], FloatArray]:
    """The score ScorePool reports for a strategy name; sampling strategies report least-confidence."""
    if name in MEASURES:
        return MEASURES[name]
    get_strategy(name)  # raise the same error for a name that is not a strategy at all
    return least_confidence
