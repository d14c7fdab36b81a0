"""Query strategies: pure functions over model outputs."""

from alloop.strategies.selection import (
    STRATEGIES,
    Selection,
    SelectionContext,
    class_quotas,
    get_measure,
    get_strategy,
    ratio_sampling,
    random_sampling,
    top_k,
)
from alloop.strategies.uncertainty import MEASURES, entropy, least_confidence, margin

__all__ = [
    "MEASURES",
    "STRATEGIES",
    "Selection",
    "SelectionContext",
    "class_quotas",
    "entropy",
    "get_measure",
    "get_strategy",
    "least_confidence",
    "margin",
    "random_sampling",
    "ratio_sampling",
    "top_k",
]
