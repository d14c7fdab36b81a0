"""Settings of the linear fit chosen from the data a round has, never a test split: which blocks join the fit (the
naive-Bayes block, the LSA block), scored on the validation split or by stratified k-fold cross-validation on the
labels (over a grid of regularisation strengths too).

Why: constants that suit one corpus do not suit another (on IMDB's long reviews both blocks pay, on one-sentence
snippets they cost accuracy, on fifteen genres they cost several points), and a user's corpus comes with nothing
but its labels and the validation split the operator gave. The grid is small: choosing costs a few fits a round.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

C_GRID = (2.0, 8.0, 32.0)  # around the IMDB-chosen 32: from strong regularisation to that

Rows = npt.NDArray[np.int64]
Predict = Callable[["Choice", Rows, Rows], Rows]
"""``(choice, training rows, held-out rows) -> the held-out rows' predicted labels``."""


@dataclass(frozen=True)
class Choice:
    """What the fit uses: its inverse L2 strength, the naive-Bayes block's scale (0: none), the LSA block, and the
    sentence encoder's block's scale (0: none)."""

    c: float
    nb_scale: float
    lsa: bool
    cv_accuracy: float = float("nan")  # held-out accuracy (the folds' or the validation split's); NaN: not scored
    encoder: float = 0.0

    def describe(self) -> str:
        described = f"C={self.c:g}, naive-Bayes block {self.nb_scale:g}, LSA {'on' if self.lsa else 'off'}"
        return described + (f", encoder block {self.encoder:g}" if self.encoder else "")


def candidates(
    nb_scale: float, lsa_components: int, cs: tuple[float, ...] = C_GRID, encoder_scale: float = 0.0
) -> list[Choice]:
    """The grid: every C of ``cs``, with and without each block the configuration has (simplest first, for ties);
    ``encoder_scale`` > 0 (sentence vectors are there to join) doubles it, with and without the encoder's block."""
    nbs = (0.0, nb_scale) if nb_scale > 0 else (0.0,)
    lsas = (False, True) if lsa_components > 0 else (False,)
    encoders = (0.0, encoder_scale) if encoder_scale > 0 else (0.0,)
    return [Choice(c, nb, lsa, encoder=e) for e in encoders for lsa in lsas for nb in nbs for c in cs]


def best(grid: list[Choice], score: Callable[[Choice], float]) -> Choice:
    """The grid point with the highest ``score`` (the earlier, simpler one on a tie), carrying its score."""
    chosen, top = grid[0], -math.inf
    for choice in grid:
        value = score(choice)
        if value > top + 1e-12:
            chosen, top = choice, value
    return replace(chosen, cv_accuracy=top)


def folds(
    y: npt.NDArray[np.int64], k: int, max_rows: int, seed: int
) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    """Stratified (train, held-out) index pairs over at most ``max_rows`` labelled rows (a stratified sample when
    there are more); empty when some class has fewer than ``k`` labels, so that no fold lacks a class."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2 or counts.min() < k:
        return []
    take = np.arange(len(y))
    if len(y) > max_rows:  # the same share of every class
        take = np.concatenate(
            [
                rng.choice(np.flatnonzero(y == c), max(k, round(n * max_rows / len(y))), replace=False)
                for c, n in zip(classes, counts, strict=True)
            ]
        )
    assignment = np.empty(len(take), dtype=np.int64)
    for c in classes:
        rows = rng.permutation(np.flatnonzero(y[take] == c))
        assignment[rows] = np.arange(len(rows)) % k
    return [(take[assignment != f], take[assignment == f]) for f in range(k)]


def choose(
    grid: list[Choice],
    splits: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]],
    y: npt.NDArray[np.int64],
    held_out_predictions: Predict,
) -> Choice:
    """The grid point with the best mean held-out accuracy (the earlier, simpler one on a tie); the first grid point,
    unscored, when there are no folds."""
    if not splits:
        return grid[0]

    def accuracy(choice: Choice) -> float:
        correct = sum(int((held_out_predictions(choice, train, held) == y[held]).sum()) for train, held in splits)
        return correct / sum(len(held) for _, held in splits)

    return best(grid, accuracy)


__all__ = ["C_GRID", "Choice", "Predict", "best", "candidates", "choose", "folds"]
