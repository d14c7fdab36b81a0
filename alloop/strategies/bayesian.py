"""Strategies over MC-dropout samples: BALD and the entropy of the mean prediction.

Leaving dropout on at prediction time makes every forward pass a draw from an approximate posterior over models
(Gal & Ghahramani, 2016), so T passes give T probability arrays per item. Two things can be read from them:

* the *total* uncertainty, the entropy of the mean prediction (``mean_entropy``), which is high both for items the
  models agree are ambiguous and for items they disagree about;
* the *epistemic* part, BALD (Houlsby et al., 2011): entropy of the mean minus the mean of the entropies, the mutual
  information between the label and the model. It is high only where confident passes disagree, i.e. where a label
  would teach the model something, and near zero for items that every pass finds ambiguous (noise a label won't fix).

A model without dropout (the linear family) gives identical passes: BALD is then 0 everywhere (its ranking falls to
the earlier item) and ``mean_entropy`` equals plain ``entropy``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alloop.strategies.base import FloatArray, Selection, SelectionContext, check_k, top_k
from alloop.strategies.uncertainty import check_probabilities, entropy


def check_mc_samples(context: SelectionContext, probs: FloatArray, strategy: str) -> FloatArray:
    """The context's MC samples as a clean float array of shape (passes, n, classes) matching ``probs``.

    A missing array is the caller's mistake (it did not look at ``NEEDS_MC_SAMPLES``), so the message says what to
    compute rather than failing later on ``None``.
    """
    if context.mc_samples is None:
        raise ValueError(
            f"strategy {strategy!r} needs MC-dropout samples (context.mc_samples, shape (passes, items, classes)) "
            "and got none: sample the model with dropout active (Predictor.predict_mc)"
        )
    samples = np.asarray(context.mc_samples, dtype=np.float64)
    n, n_classes = probs.shape
    if samples.ndim != 3:
        raise ValueError(f"mc_samples must be 3-D (passes, items, classes), got shape {samples.shape}")
    if samples.shape[0] < 1:
        raise ValueError("mc_samples holds no passes")
    if samples.shape[1:] != (n, n_classes):
        raise ValueError(
            f"mc_samples has shape {samples.shape}, which does not match the {n} items and {n_classes} classes "
            "of the probabilities"
        )
    if not np.all(np.isfinite(samples)):
        raise ValueError("mc_samples contain NaN or infinity")
    return samples


def _entropy_per_pass(samples: FloatArray) -> FloatArray:
    """Entropy of every (pass, item) row, with the same clipping as :func:`uncertainty.entropy`."""
    passes, n, n_classes = samples.shape
    return entropy(samples.reshape(passes * n, n_classes)).reshape(passes, n)


def mean_entropy_scores(samples: npt.ArrayLike) -> FloatArray:
    """Entropy of the mean prediction over passes: total predictive uncertainty."""
    array = np.asarray(samples, dtype=np.float64)
    return entropy(array.mean(axis=0))


def bald_scores(samples: npt.ArrayLike) -> FloatArray:
    """Entropy of the mean minus mean of the entropies: the label's mutual information with the model.

    Mathematically never negative (entropy is concave); rounding can make it -1e-17, which is clipped to 0 so a
    score reads as what it is.
    """
    array = np.asarray(samples, dtype=np.float64)
    return np.maximum(entropy(array.mean(axis=0)) - _entropy_per_pass(array).mean(axis=0), 0.0)


def bald(probs: npt.ArrayLike, k: int, context: SelectionContext) -> Selection:
    """The k items with the highest BALD score over ``context.mc_samples``; ties go to the earlier item."""
    array = check_probabilities(probs)
    check_k(k, len(array))
    scores = bald_scores(check_mc_samples(context, array, "bald"))
    return Selection(top_k(scores, k), scores)


def mean_entropy(probs: npt.ArrayLike, k: int, context: SelectionContext) -> Selection:
    """The k items whose mean prediction over ``context.mc_samples`` has the highest entropy."""
    array = check_probabilities(probs)
    check_k(k, len(array))
    scores = mean_entropy_scores(check_mc_samples(context, array, "mean_entropy"))
    return Selection(top_k(scores, k), scores)
