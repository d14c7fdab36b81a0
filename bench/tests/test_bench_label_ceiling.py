"""The ceiling study's oracle: it must hand the fit the truth, at the weights it claims, for exactly the rows asked."""

from __future__ import annotations

import numpy as np
import pytest

from alloop.models import linear
from bench.label_ceiling import truth_for

PREDICTED = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
CLASSES = np.array([0, 1])


def test_the_oracle_returns_true_labels_at_the_real_pseudo_label_weights():
    truth = np.array([1, 1, 0])
    labels, weights = truth_for(truth, None)(PREDICTED, CLASSES, 0.3)
    _, real_weights = linear.pseudo_labels(PREDICTED, CLASSES, 0.3)
    assert labels.tolist() == [1, 1, 0]  # the first row is predicted 0: the oracle overrides it
    np.testing.assert_allclose(weights, real_weights)
    np.testing.assert_allclose(weights, [0.24, 0.18, 0.0])


def test_a_fixed_weight_applies_to_every_row_even_a_coin_flip():
    labels, weights = truth_for(np.array([0, 1, 1]), 1.0)(PREDICTED, CLASSES, 0.3)
    assert labels.tolist() == [0, 1, 1]
    assert weights.tolist() == [1.0, 1.0, 1.0]


def test_an_oracle_for_other_rows_stops_the_study():
    with pytest.raises(RuntimeError, match="knows 2 unlabelled rows, the fit asks about 3"):
        truth_for(np.array([0, 1]), None)(PREDICTED, CLASSES, 0.3)
