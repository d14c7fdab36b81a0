"""Model and training settings, kept free of TensorFlow so clients and config parsing import fast."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from alloop.models.families import FAMILIES, FAMILY_NAMES

CLASS_PRIORS = ("labels", "validation")
LINEAR_SELECTIONS = ("validation", "folds", "configured")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes default to the seed's; tests shrink them."""

    max_tokens: int = 3000
    sequence_length: int = 150
    embedding_dim: int = 128
    lstm_units: int = 32
    dense_units: int = 20
    dropout: float = 0.5
    n_classes: int = 2
    family: str = "linear"  # the family that needs fewest labels (docs/benchmarks.md); bilstm: the seed's model
    # linear family
    linear_max_tokens: int = 250_000
    ngrams: int = 2
    # A token (or n-gram) in fewer texts of the corpus stays out of the vocabulary. A cut helps some corpora and
    # costs others (linear.frequent_columns), so none by default.
    linear_min_df: int = 1
    linear_c: float = 32.0  # inverse L2 strength of the logistic fit
    linear_lsa_components: int = 300
    linear_lsa_pivot: int = 1000  # the LSA block's weight is min(1, sqrt(pivot / labels))
    linear_nb_scale: float = 2.0  # weight of the naive-Bayes-scaled TF-IDF block (linear.nb_importance); 0: none
    linear_nb_unlabeled: float = 1.0  # weight of the pools' predicted class mass in that importance; 0: labels only
    linear_pseudo_weight: float = (
        0.3  # weight of the pools' unlabelled rows as pseudo-labelled rows (linear.solve); 0: none
    )
    # Weight of the sentence encoder's block (a frozen encoder's vector per text, joined with the TF-IDF vector)
    # when the round has vectors and the selection lets it join; 0: never.
    linear_encoder_scale: float = 1.0
    # How each round settles which blocks join the fit (alloop.models.linear_selection): "validation", the blocks
    # and pseudo-labels that score best on the validation split at linear_c; "folds", C and the blocks by
    # linear_select_folds-fold cross-validation on (at most linear_select_rows of) the labels; "configured", the
    # settings above as they are.
    linear_select: str = "validation"
    linear_select_folds: int = 4
    linear_select_rows: int = 2000
    # The class shares the model's odds assume: "validation", the validation split's (the operator's sample of what
    # the model will meet; alloop.models.linear.prior_shift); "labels", the labelled set's, skewed by what active
    # learning asked for.
    linear_class_prior: str = "validation"

    def __post_init__(self) -> None:
        for name in ("max_tokens", "sequence_length", "embedding_dim", "lstm_units", "dense_units"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if (
            self.linear_max_tokens <= 0
            or self.ngrams <= 0
            or self.linear_c <= 0
            or self.linear_lsa_pivot <= 0
            or self.linear_min_df <= 0
        ):
            raise ValueError("linear_max_tokens, ngrams, linear_min_df, linear_c and linear_lsa_pivot must be positive")
        if not (self.linear_nb_scale >= 0 and math.isfinite(self.linear_nb_scale)):
            raise ValueError(f"linear_nb_scale must be 0 (no naive-Bayes block) or more, got {self.linear_nb_scale}")
        if not (self.linear_nb_unlabeled >= 0 and math.isfinite(self.linear_nb_unlabeled)):
            raise ValueError(f"linear_nb_unlabeled must be 0 (labels only) or more, got {self.linear_nb_unlabeled}")
        if not (self.linear_encoder_scale >= 0 and math.isfinite(self.linear_encoder_scale)):
            raise ValueError(
                f"linear_encoder_scale must be 0 (no encoder block) or more, got {self.linear_encoder_scale}"
            )
        if not (self.linear_pseudo_weight >= 0 and math.isfinite(self.linear_pseudo_weight)):
            raise ValueError(
                f"linear_pseudo_weight must be 0 (no pseudo-labels) or more, got {self.linear_pseudo_weight}"
            )
        if self.linear_select not in LINEAR_SELECTIONS:
            raise ValueError(f"linear_select must be one of {', '.join(LINEAR_SELECTIONS)}, got {self.linear_select!r}")
        if self.linear_select_folds < 2 or self.linear_select_rows < 2:
            raise ValueError(
                f"linear_select_folds must be at least 2, got {self.linear_select_folds}, "
                f"and linear_select_rows at least 2, got {self.linear_select_rows}"
            )
        if self.linear_lsa_components < 0:
            raise ValueError(f"linear_lsa_components must be 0 (no LSA) or more, got {self.linear_lsa_components}")
        if self.linear_class_prior not in CLASS_PRIORS:
            raise ValueError(
                f"linear_class_prior must be one of {', '.join(CLASS_PRIORS)}, got {self.linear_class_prior!r}"
            )
        if self.family not in FAMILY_NAMES:
            raise ValueError(f"unknown model family {self.family!r}; choose one of {', '.join(FAMILY_NAMES)}")
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be at least 2, got {self.n_classes}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def family_settings(self, family: str) -> dict[str, object]:
        """The settings ``family`` reads: runs of one family stay comparable when only another family's change."""
        return {name: getattr(self, name) for name in FAMILIES[family].settings}


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 20
    batch_size: int = 256
    patience: int = 4
    warm_start: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size <= 0 or self.patience < 0:
            raise ValueError("epochs and batch_size must be positive and patience non-negative")
