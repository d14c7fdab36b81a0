"""Picking k items from scores, and the strategies that do it.

A strategy sees only model outputs (probabilities, and for some MC-dropout samples or embeddings) and, for the
class-ratio strategies, the last evaluation's error counts. It never touches Redis or a model, so it can be tested on
hand-made arrays and reused by benchmarks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from alloop.strategies import kcenter, kmeans
from alloop.strategies.base import (
    FloatArray,
    IntArray,
    Selection,
    SelectionContext,
    Strategy,
    check_k,
    top_k,
)
from alloop.strategies.bayesian import bald, mean_entropy
from alloop.strategies.kcenter import candidate_count, diversity
from alloop.strategies.kmeans import kmeans_diversity
from alloop.strategies.uncertainty import MEASURES, check_probabilities, least_confidence
from alloop.validation import quoted


def uncertainty_strategy(measure: Callable[[npt.ArrayLike], FloatArray]) -> Callable[..., Selection]:
    def select(probs: npt.ArrayLike, k: int, context: SelectionContext) -> Selection:
        scores = measure(probs)
        return Selection(top_k(scores, k), scores)

    select.__name__ = measure.__name__
    return select


def random_sampling(probs: npt.ArrayLike, k: int, context: SelectionContext) -> Selection:
    """The baseline every other strategy must beat. Scores are least-confidence, for display only."""
    array = check_probabilities(probs)
    check_k(k, len(array))
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
    check_k(k, n)
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


def class_balanced(probs: npt.ArrayLike, k: int, context: SelectionContext) -> Selection:
    """The seed's FP/FN quotas (:func:`class_quotas`) filled by uncertainty instead of at random.

    Within each predicted class the quota goes to that class's most uncertain (least-confidence) items, so the batch
    keeps the class balance the last evaluation asked for while every item in it is one the model is unsure about.
    A class with too few candidates hands its unused quota to the most uncertain items left, whatever their class,
    so the batch still has k items. The selection is returned most uncertain first; ties go to the earlier item.
    """
    array = check_probabilities(probs)
    n, n_classes = array.shape
    check_k(k, n)
    scores = least_confidence(array)
    ranking = top_k(scores, n)  # every item, most uncertain first
    ranked_class = array.argmax(axis=1)[ranking]
    quotas = class_quotas(k, context.false_per_class, n_classes)
    taken = np.zeros(n, dtype=bool)  # by position in the ranking
    for c in range(n_classes):
        taken[np.flatnonzero(ranked_class == c)[: int(quotas[c])]] = True
    shortfall = k - int(taken.sum())
    if shortfall:
        taken[np.flatnonzero(~taken)[:shortfall]] = True
    return Selection(ranking[taken].astype(np.int64), scores)


STRATEGIES: dict[str, Strategy] = {
    **{name: uncertainty_strategy(measure) for name, measure in MEASURES.items()},
    "random": random_sampling,
    "ratio": ratio_sampling,
    "class_balanced": class_balanced,
    "bald": bald,
    "mean_entropy": mean_entropy,
    "diversity": diversity,
    "kmeans_diversity": kmeans_diversity,
}

# Extra model outputs cost a forward pass each (T of them for MC dropout), so the caller computes them only for the
# strategies named here and puts them in SelectionContext; a listed strategy run without them raises ValueError.
NEEDS_MC_SAMPLES: frozenset[str] = frozenset({"bald", "mean_entropy"})
NEEDS_EMBEDDINGS: frozenset[str] = frozenset({"diversity", "kmeans_diversity"})


def _ranked_candidates(measure: str, factor: Callable[[], int]) -> tuple[str, Callable[[int], int]]:
    return measure, lambda k: candidate_count(sys.maxsize, k, factor())


# Strategies that choose k items among the m most uncertain by one measure, with how many (m, for k): a caller that
# keeps the pool ranked by that measure (the query service's score index) may hand them just those m items, so a
# selection costs what m items cost, not what the pool costs. The factors are read at call time (monkeypatchable).
RANKED_CANDIDATES: dict[str, tuple[str, Callable[[int], int]]] = {
    "diversity": _ranked_candidates("least_confidence", lambda: kcenter.CANDIDATE_FACTOR),
    "kmeans_diversity": _ranked_candidates("margin", lambda: kmeans.CANDIDATE_FACTOR),
}


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {quoted(name)}; choose one of {', '.join(sorted(STRATEGIES))}") from None


def get_measure(name: str) -> Callable[[npt.ArrayLike], FloatArray]:
    """The score ScorePool reports for a strategy name.

    ScorePool has only the mean prediction (no MC passes, no embeddings, no batch to balance), so every strategy
    that is not a plain measure reports least-confidence: sampling, class-balanced, BALD, mean-entropy, diversity.
    """
    if name in MEASURES:
        return MEASURES[name]
    get_strategy(name)  # raise the same error for a name that is not a strategy at all
    return least_confidence
