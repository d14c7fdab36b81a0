"""Uncertainty plus diversity: the most uncertain candidates, spread out by greedy k-center.

Top-k uncertainty tends to pick near-duplicates (ten rewordings of one ambiguous review all sit at the boundary),
and a batch of near-duplicates teaches little more than one of them. This strategy first keeps the ``m`` most
uncertain items, then picks k of them by farthest-first traversal (the greedy 2-approximation of k-center, Gonzalez
1985; the core-set view of active learning, Sener & Savarese 2018) in the model's embedding space, starting from the
single most uncertain item.

Cost: one ``(m, d)`` block and two length-``m`` vectors; each of the k steps is one matrix-vector product. No
``m x m`` or ``n x n`` distance matrix is ever built, so a 50,000-item pool is a few milliseconds of work.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alloop.strategies.base import IntArray, Selection, SelectionContext, check_k, top_k
from alloop.strategies.uncertainty import check_probabilities, least_confidence

CANDIDATE_FACTOR = 10
"""How many uncertain candidates per selected item k-center chooses from: ``m = min(n, max(k * factor, 2 * k))``.

Larger trades uncertainty for spread (at ``m = n`` it is pure k-center); the ``2 * k`` floor keeps some choice even
if this is set below 2. Read at call time, so it can be changed (or monkeypatched in tests) without re-importing.
"""


def candidate_count(n: int, k: int, factor: int | None = None) -> int:
    """How many of the most uncertain items a diversity strategy chooses k from (``factor`` defaults to this
    module's :data:`CANDIDATE_FACTOR`)."""
    return min(n, max(k * (CANDIDATE_FACTOR if factor is None else factor), 2 * k))


def check_embeddings(context: SelectionContext, n: int, strategy: str) -> np.ndarray:
    """The context's embeddings as a finite numeric (n, d) array, not copied (a pool's block can be large)."""
    if context.embeddings is None:
        raise ValueError(
            f"strategy {strategy!r} needs item embeddings (context.embeddings, shape (items, dimensions)) and got "
            "none: compute them with the model (Predictor.embed)"
        )
    embeddings = np.asarray(context.embeddings)
    if embeddings.dtype.kind not in "iuf":
        raise ValueError(f"embeddings must be numbers, got dtype {embeddings.dtype}")
    if embeddings.ndim != 2 or embeddings.shape[1] < 1:
        raise ValueError(f"embeddings must be 2-D (items, dimensions), got shape {embeddings.shape}")
    if embeddings.shape[0] != n:
        raise ValueError(f"embeddings has {embeddings.shape[0]} rows for {n} items")
    if not np.all(np.isfinite(embeddings)):
        raise ValueError("embeddings contain NaN or infinity")
    return embeddings


def k_center_greedy(points: npt.ArrayLike, k: int) -> IntArray:
    """k row positions of ``points`` chosen by farthest-first traversal, starting at row 0, in the order chosen.

    Each step takes the point farthest (Euclidean) from everything chosen so far; ties go to the earlier row, so
    when the caller orders rows by uncertainty, ties (including all-identical points) fall back to that order.
    Squared distances come from ``|x|^2 - 2 x.c + |c|^2`` on centred float64 points: one matrix-vector product per
    step and no per-step ``(m, d)`` temporary.
    """
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"points must be 2-D (items, dimensions), got shape {x.shape}")
    m = len(x)
    check_k(k, m)
    x = x - x.mean(axis=0)  # a copy; centring keeps the norms small, so the subtraction below loses no precision
    sq_norms = np.einsum("ij,ij->i", x, x)

    def sq_distances(center: int) -> np.ndarray:
        return np.maximum(sq_norms - 2.0 * (x @ x[center]) + sq_norms[center], 0.0)

    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = 0
    nearest = sq_distances(0)  # squared distance from each point to its nearest chosen point
    nearest[0] = -np.inf  # chosen points are never chosen again, even when every distance is 0
    for step in range(1, k):
        center = int(np.argmax(nearest))
        chosen[step] = center
        np.minimum(nearest, sq_distances(center), out=nearest)
        nearest[center] = -np.inf
    return chosen


def diversity(probs: npt.ArrayLike, k: int, context: SelectionContext) -> Selection:
    """k of the ``m`` most uncertain (least-confidence) items, spread by greedy k-center on ``context.embeddings``.

    Scores are least-confidence, the ranking the candidates were drawn from.
    """
    array = check_probabilities(probs)
    n = len(array)
    check_k(k, n)
    embeddings = check_embeddings(context, n, "diversity")
    scores = least_confidence(array)
    candidates = top_k(scores, candidate_count(n, k))  # most uncertain first: k-center starts from candidates[0]
    picked = k_center_greedy(embeddings[candidates], k)
    return Selection(candidates[picked], scores)
