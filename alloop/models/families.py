"""The model families, registered once: what each one is, which settings it reads and what it needs.

Free of TensorFlow, so settings, clients and the query service's checks import it fast; a family's code (its
``module``) is imported on first use. The trainer, the round and the version metadata ask a :class:`Family`
these questions; nothing outside a family's module names the family.

A family's module provides ``build_vectorizer(config, texts)``, ``build_classifier(config, vectorizer)``,
``compile_classifier(classifier, config)`` and ``vectorize(vectorizer, texts)``; an ``exact`` family also
``solve_round(...)`` (its whole round: see :func:`alloop.models.training.train_round`) and ``Cache(directory)``,
what it keeps between rounds.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class Family:
    name: str
    module: str
    summary: str
    settings: tuple[str, ...]
    """The ModelConfig fields it reads: runs of one family stay comparable when only another family's change."""
    pool_text: bool
    """It learns its features (vocabulary, IDF, ...) from the pools' unlabeled text too. A version then says so
    (``ModelVersion.adapts_to_pool``): items of a pool stored after it are scored with features that never saw
    them until a round runs, so a client that uploads a new pool asks for one (``Train``)."""
    exact: bool
    """Solved exactly each round (``module.solve_round``): no epochs, no early stopping, no warm start."""
    dropout: bool
    """It has dropout layers, so MC-dropout strategies (``bald``, ``mean_entropy``) sample different models;
    without, every pass is the same and those strategies fall back to their mean prediction's ranking."""
    requires: tuple[tuple[str, str], ...] = ()
    """(importable module, what to install) its training needs beyond the query service's dependencies."""

    @property
    def code(self) -> ModuleType:
        return importlib.import_module(self.module)

    def check_installed(self) -> None:
        """ValueError naming what to install, at start-up rather than in the middle of the first round."""
        for module, install in self.requires:
            try:
                importlib.import_module(module)  # imported, not only found: a broken install fails here too
            except ImportError:
                raise ValueError(
                    f"the {self.name} family needs {module}, which is not installed here: {install}"
                ) from None

    def new_cache(self, directory: Path | None) -> Any:
        """What the family keeps between rounds (None: nothing), on disk under ``directory`` where given."""
        factory = getattr(self.code, "Cache", None)
        return factory(directory) if factory is not None else None


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "bilstm",
            "alloop.models.bilstm",
            "the seed's model: embedding, BiLSTM, dense, trained by epochs with early stopping",
            ("max_tokens", "sequence_length", "embedding_dim", "lstm_units", "dense_units", "dropout", "n_classes"),
            pool_text=False,
            exact=False,
            dropout=True,
        ),
        Family(
            "linear",
            "alloop.models.linear",
            "logistic regression on sublinear TF-IDF 1-2-grams with blocks learned from the pools' text, solved exactly",
            (
                "linear_max_tokens",
                "ngrams",
                "linear_min_df",
                "linear_c",
                "linear_lsa_components",
                "linear_lsa_pivot",
                "linear_nb_scale",
                "linear_nb_unlabeled",
                "linear_pseudo_weight",
                "linear_encoder_scale",
                "linear_select",
                "linear_select_folds",
                "linear_select_rows",
                "linear_class_prior",
                "n_classes",
            ),
            pool_text=True,
            exact=True,
            dropout=False,
            requires=(("sklearn", "pip install 'alloop[trainer]'"),),
        ),
    )
}
FAMILY_NAMES: tuple[str, ...] = tuple(sorted(FAMILIES))


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; choose one of {', '.join(FAMILY_NAMES)}") from None


def register_keras_objects() -> None:
    """Import every family's code, which registers the Keras objects (layers, functions) saved versions name."""
    for family in FAMILIES.values():
        family.code  # noqa: B018 - importing the module is the registration
