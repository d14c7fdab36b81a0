"""Query strategies: pure functions over model outputs."""

from alloop.strategies.bayesian import bald, bald_scores, mean_entropy, mean_entropy_scores
from alloop.strategies.kcenter import diversity, k_center_greedy
from alloop.strategies.kmeans import kmeans_diversity, weighted_kmeans_centres
from alloop.strategies.selection import (
    NEEDS_EMBEDDINGS,
    NEEDS_MC_SAMPLES,
    RANKED_CANDIDATES,
    STRATEGIES,
    Selection,
    SelectionContext,
    class_balanced,
    class_quotas,
    get_measure,
    get_strategy,
    random_sampling,
    ratio_sampling,
    top_k,
)
from alloop.strategies.uncertainty import MEASURES, entropy, least_confidence, margin

__all__ = [
    "MEASURES",
    "NEEDS_EMBEDDINGS",
    "NEEDS_MC_SAMPLES",
    "RANKED_CANDIDATES",
    "STRATEGIES",
    "Selection",
    "SelectionContext",
    "bald",
    "bald_scores",
    "class_balanced",
    "class_quotas",
    "diversity",
    "entropy",
    "get_measure",
    "get_strategy",
    "k_center_greedy",
    "kmeans_diversity",
    "least_confidence",
    "margin",
    "mean_entropy",
    "mean_entropy_scores",
    "random_sampling",
    "ratio_sampling",
    "top_k",
    "weighted_kmeans_centres",
]
