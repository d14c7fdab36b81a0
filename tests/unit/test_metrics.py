"""Unit tests for alloop.metrics (pure evaluation metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alloop.metrics import Evaluation, confusion_matrix, cross_entropy, evaluate


def test_confusion_matrix_hand_example():
    labels = [0, 0, 1, 1, 2, 2, 2]
    predicted = [0, 1, 1, 2, 2, 2, 0]
    expected = [
        [1, 1, 0],  # true 0
        [0, 1, 1],  # true 1
        [1, 0, 2],  # true 2
    ]
    matrix = confusion_matrix(labels, predicted, 3)
    assert matrix.tolist() == expected
    assert matrix.dtype == np.int64


def test_confusion_matrix_unseen_classes_are_zero():
    assert confusion_matrix([0, 0], [0, 0], 3).tolist() == [[2, 0, 0], [0, 0, 0], [0, 0, 0]]


def test_confusion_matrix_shape_mismatch_raises():
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix([0, 1], [0, 1, 1], 2)


@pytest.mark.parametrize("labels,predicted", [([0, -1], [0, 1]), ([0, 2], [0, 1]), ([0, 1], [0, -1])])
def test_confusion_matrix_out_of_range_class_raises(labels, predicted):
    with pytest.raises(ValueError, match="out of range"):
        confusion_matrix(labels, predicted, 2)


# Binary: rows are (p(class 0), p(class 1)); predictions by argmax.
BINARY_LABELS = [0, 0, 0, 0, 1, 1, 1]
BINARY_PROBS = np.array(
    [
        [0.9, 0.1],  # true 0, pred 0
        [0.8, 0.2],  # true 0, pred 0
        [0.3, 0.7],  # true 0, pred 1  -> FP
        [0.4, 0.6],  # true 0, pred 1  -> FP
        [0.2, 0.8],  # true 1, pred 1
        [0.6, 0.4],  # true 1, pred 0  -> FN
        [0.1, 0.9],  # true 1, pred 1
    ]
)


def test_evaluate_binary_counts():
    result = evaluate(BINARY_LABELS, BINARY_PROBS)
    assert isinstance(result, Evaluation)
    assert result.test_size == 7
    assert result.accuracy == pytest.approx(4 / 7)
    assert result.false_positives == 2  # true 0 predicted 1
    assert result.false_negatives == 1  # true 1 predicted 0


def test_evaluate_binary_per_class_relations():
    result = evaluate(BINARY_LABELS, BINARY_PROBS)
    assert result.false_per_class == (1, 2)
    assert result.missed_per_class == (2, 1)
    assert result.false_negatives == result.false_per_class[0] == result.missed_per_class[1]
    assert result.false_positives == result.false_per_class[1] == result.missed_per_class[0]


def test_evaluate_binary_relations_randomised():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 60))
        labels = rng.integers(0, 2, size=n)
        p = rng.uniform(size=n)
        result = evaluate(labels, np.column_stack([1 - p, p]))
        predicted = (p > 0.5).astype(int)
        fp = int(np.sum((labels == 0) & (predicted == 1)))
        fn = int(np.sum((labels == 1) & (predicted == 0)))
        assert (result.false_positives, result.false_negatives) == (fp, fn)
        assert result.false_per_class == (fn, fp)
        assert result.missed_per_class == (fp, fn)
        assert result.accuracy == pytest.approx(np.mean(labels == predicted))


def test_evaluate_binary_loss_is_cross_entropy():
    result = evaluate(BINARY_LABELS, BINARY_PROBS)
    picked = [0.9, 0.8, 0.3, 0.4, 0.8, 0.4, 0.9]
    expected = -sum(math.log(p) for p in picked) / len(picked)
    assert result.loss == pytest.approx(expected)
    assert cross_entropy(BINARY_LABELS, BINARY_PROBS) == pytest.approx(expected)


def test_evaluate_three_class():
    labels = [0, 0, 1, 1, 1, 2, 2, 2]
    probs = np.array(
        [
            [0.7, 0.2, 0.1],  # 0 -> 0
            [0.2, 0.5, 0.3],  # 0 -> 1
            [0.1, 0.8, 0.1],  # 1 -> 1
            [0.1, 0.3, 0.6],  # 1 -> 2
            [0.5, 0.4, 0.1],  # 1 -> 0
            [0.2, 0.2, 0.6],  # 2 -> 2
            [0.1, 0.6, 0.3],  # 2 -> 1
            [0.1, 0.1, 0.8],  # 2 -> 2
        ]
    )
    result = evaluate(labels, probs)
    # confusion: [[1,1,0],[1,1,1],[0,1,2]]
    assert result.test_size == 8
    assert result.accuracy == pytest.approx(4 / 8)
    assert result.false_per_class == (1, 2, 1)  # column sums off the diagonal
    assert result.missed_per_class == (1, 2, 1)  # row sums off the diagonal
    assert sum(result.false_per_class) == sum(result.missed_per_class) == 8 - 4
    # FP / FN are only defined for binary tasks; N-class reports 0.
    assert result.false_positives == 0
    assert result.false_negatives == 0
    picked = [0.7, 0.2, 0.8, 0.3, 0.4, 0.6, 0.3, 0.8]
    assert result.loss == pytest.approx(-np.mean(np.log(picked)))


def test_evaluate_three_class_asymmetric_per_class():
    labels = [0, 0, 0, 1, 2]
    probs = np.array(
        [
            [0.1, 0.1, 0.8],  # 0 -> 2
            [0.1, 0.1, 0.8],  # 0 -> 2
            [0.1, 0.8, 0.1],  # 0 -> 1
            [0.1, 0.8, 0.1],  # 1 -> 1
            [0.1, 0.1, 0.8],  # 2 -> 2
        ]
    )
    result = evaluate(labels, probs)
    assert result.false_per_class == (0, 1, 2)
    assert result.missed_per_class == (3, 0, 0)


def test_evaluate_perfect_predictions():
    labels = [0, 1, 2]
    result = evaluate(labels, np.eye(3))
    assert result.accuracy == 1.0
    assert result.false_per_class == (0, 0, 0)
    assert result.missed_per_class == (0, 0, 0)
    assert result.loss == pytest.approx(0.0, abs=1e-12)


def test_cross_entropy_clips_zero_probabilities():
    loss = cross_entropy([1], [[1.0, 0.0]])
    assert math.isfinite(loss)
    assert loss == pytest.approx(-math.log(1e-7))


def test_evaluate_empty():
    result = evaluate(np.array([], dtype=int), np.zeros((0, 2)))
    assert result.test_size == 0
    assert result.accuracy == 0.0
    assert result.loss == 0.0
    assert result.false_per_class == (0, 0)


def test_evaluate_shape_mismatch_raises():
    with pytest.raises(ValueError):
        evaluate([0, 1, 1], BINARY_PROBS)


def test_to_dict_is_plain():
    data = evaluate(BINARY_LABELS, BINARY_PROBS).to_dict()
    assert data["false_per_class"] == [1, 2]
    assert data["missed_per_class"] == [2, 1]
    assert set(data) == {
        "accuracy",
        "false_positives",
        "false_negatives",
        "loss",
        "test_size",
        "false_per_class",
        "missed_per_class",
    }
