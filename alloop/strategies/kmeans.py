"""Uncertainty plus diversity by weighted k-means (Zhdanov, "Diverse mini-batch active learning", 2019).

Plain uncertainty sampling can trail random at a few hundred labels: its top-k are near-duplicates from one stretch
of the decision boundary, and a young model's boundary is in the wrong place anyway. Greedy k-center
(:mod:`alloop.strategies.kcenter`) fixes the duplicates but spends its picks on the edges, the points farthest from
everything. Weighted k-means does neither: it keeps the ``m = beta * k`` most uncertain items, clusters them into k
groups with each item weighted by its uncertainty, and labels the item nearest each centre, so the batch covers the
uncertain region densely where it is dense and stays uncertain.

Cost: never an ``m x m`` matrix; assignments are computed a block of rows at a time, ``(block, k)`` floats, so
memory stays bounded for any k. A few Lloyd iterations suffice: the aim is spread, not an exact clustering.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from alloop.strategies.base import IntArray, Selection, SelectionContext, check_k, top_k
from alloop.strategies.kcenter import candidate_count, check_embeddings
from alloop.strategies.uncertainty import check_probabilities, margin

CANDIDATE_FACTOR = 10
"""beta: uncertain candidates per selected item (Zhdanov's default). ``m = min(n, max(beta * k, 2 * k))``."""
ITERATIONS = 10
_BLOCK_ELEMENTS = 2_000_000  # rows per assignment block = this // k: ~8 MB per float32 temporary whatever k is


def _nearest_centres(x: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of each row's nearest centre, squared distance to it), a block of rows at a time."""
    c_norms = np.einsum("ij,ij->i", centres, centres)
    rows = max(1, _BLOCK_ELEMENTS // max(1, len(centres)))
    labels = np.empty(len(x), dtype=np.int64)
    best = np.empty(len(x), dtype=np.float32)
    for start in range(0, len(x), rows):
        block = x[start : start + rows]
        d = c_norms[None, :] - 2.0 * (block @ centres.T)  # |x|^2 is the same for every centre: left out
        labels[start : start + rows] = d.argmin(axis=1)
        best[start : start + rows] = d[np.arange(len(block)), labels[start : start + rows]]
    return labels, best + np.einsum("ij,ij->i", x, x)


def weighted_kmeans_centres(
    points: npt.ArrayLike, weights: npt.ArrayLike, k: int, rng: np.random.Generator
) -> IntArray:
    """k distinct row positions of ``points``: the row nearest each centre of a weighted k-means.

    Centres start at k distinct rows drawn with probability proportional to weight, then move by Lloyd's rule
    (weighted means); a centre that loses all its rows stays where it was. Each centre then takes the closest of
    the rows assigned to it; a centre left with none (all its rows were nearer another centre) takes the untaken
    row nearest to it, so two centres never claim the same row.
    """
    x = np.asarray(points, dtype=np.float32)
    w = np.asarray(weights, dtype=np.float64)
    m = len(x)
    check_k(k, m)
    if w.shape != (m,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"weights must be {m} finite non-negative numbers")
    w = w + 1e-12  # all-zero weights (a model certain of everything) fall back to unweighted k-means
    x = x - x.mean(axis=0)  # distances are unchanged; centred float32 loses less in |x|^2 - 2 x.c + |c|^2
    centres = x[rng.choice(m, size=k, replace=False, p=w / w.sum())].copy()
    for _ in range(ITERATIONS):
        labels, _ = _nearest_centres(x, centres)
        mass = np.bincount(labels, weights=w, minlength=k)
        membership = sp.csr_matrix((w, (labels, np.arange(m))), shape=(k, m))  # one weighted sum per centre
        sums = np.asarray(membership @ x, dtype=np.float64)
        alive = mass > 0
        centres[alive] = (sums[alive] / mass[alive, None]).astype(np.float32)
    labels, distance = _nearest_centres(x, centres)
    chosen = np.full(k, -1, dtype=np.int64)
    taken = np.zeros(m, dtype=bool)
    for row in np.argsort(distance, kind="stable"):  # each row's own centre first, closest rows first
        if chosen[labels[row]] < 0:
            chosen[labels[row]] = row
            taken[row] = True
    for centre in np.flatnonzero(chosen < 0):  # no row has this centre as its nearest: take the nearest spare row
        spare = np.flatnonzero(~taken)
        gaps = np.einsum("ij,ij->i", x[spare] - centres[centre], x[spare] - centres[centre])
        row = int(spare[np.argmin(gaps)])
        chosen[centre] = row
        taken[row] = True
    return chosen


def kmeans_diversity(probs: npt.ArrayLike, k: int, context: SelectionContext) -> Selection:
    """k items from the ``m`` smallest-margin ones, spread by uncertainty-weighted k-means on ``context.embeddings``.

    Scores are margin uncertainty (1 - (p_top1 - p_top2)), which also weights the clustering.
    """
    array = check_probabilities(probs)
    n = len(array)
    check_k(k, n)
    embeddings = check_embeddings(context, n, "kmeans_diversity")
    scores = margin(array)
    candidates = top_k(scores, candidate_count(n, k, CANDIDATE_FACTOR))
    picked = weighted_kmeans_centres(embeddings[candidates], scores[candidates], k, context.rng)
    return Selection(candidates[picked], scores)
