"""Model families behind one interface: how to build, compile and feed each; the rest of a round is shared."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras

from alloop.models import bilstm, linear
from alloop.models.config import ModelConfig


@dataclass(frozen=True)
class Family:
    name: str
    build_vectorizer: Callable[[ModelConfig, Sequence[str]], keras.layers.Layer]
    build_classifier: Callable[[ModelConfig, keras.layers.Layer], keras.Model]
    compile_classifier: Callable[[keras.Model, ModelConfig], None]
    vectorize: Callable[[keras.layers.Layer, Sequence[str]], Any]
    # Adapt the vocabulary on unlabeled pool text too (free signal for bag-of-words IDF; the seed does not).
    adapt_on_unlabeled: bool
    # Convex families are solved exactly (see alloop.models.linear) instead of fitted by epochs with early stopping.
    convex: bool = False


FAMILIES: dict[str, Family] = {
    bilstm.FAMILY: Family(
        bilstm.FAMILY,
        bilstm.build_vectorizer,
        bilstm.build_classifier,
        bilstm.compile_classifier,
        bilstm.vectorize,
        adapt_on_unlabeled=False,
    ),
    linear.FAMILY: Family(
        linear.FAMILY,
        linear.build_vectorizer,
        linear.build_classifier,
        linear.compile_classifier,
        linear.vectorize,
        adapt_on_unlabeled=True,
        convex=True,
    ),
}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; choose one of {', '.join(sorted(FAMILIES))}") from None
