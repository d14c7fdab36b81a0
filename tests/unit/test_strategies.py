"""Unit tests for the pure query strategies (alloop.strategies)."""

from __future__ import annotations

import numpy as np
import pytest

from alloop.strategies import (
    MEASURES,
    STRATEGIES,
    Selection,
    SelectionContext,
    class_quotas,
    entropy,
    get_measure,
    get_strategy,
    least_confidence,
    margin,
    random_sampling,
    ratio_sampling,
    top_k,
)

STRATEGY_NAMES = sorted(STRATEGIES)


def make_probs(n: int, n_classes: int, seed: int = 0) -> np.ndarray:
    """Random rows that sum to 1, plus a few edge rows (one-hot, uniform, a zero entry)."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(n_classes), size=n)
    one_hot = np.eye(n_classes)[0]
    uniform = np.full(n_classes, 1.0 / n_classes)
    with_zero = np.r_[0.0, np.full(n_classes - 1, 1.0 / (n_classes - 1))]
    probs[:3] = [one_hot, uniform, with_zero]
    return probs


def ctx(seed: int = 0, false_per_class=()) -> SelectionContext:
    return SelectionContext(false_per_class=false_per_class, rng=np.random.default_rng(seed))


def binary_probs(p_positive) -> np.ndarray:
    p = np.asarray(p_positive, dtype=np.float64)
    return np.column_stack([1.0 - p, p])


# --------------------------------------------------------------------------------------------------------------------
# Shared contract, run for every registered strategy
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STRATEGY_NAMES)
@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("k", [1, 7, 40])
def test_returns_k_distinct_indices_in_range(name, n_classes, k):
    probs = make_probs(40, n_classes)
    selection = get_strategy(name)(probs, k, ctx())
    assert isinstance(selection, Selection)
    indices = np.asarray(selection.indices)
    assert indices.shape == (k,)
    assert np.issubdtype(indices.dtype, np.integer)
    assert len(set(indices.tolist())) == k
    assert indices.min() >= 0
    assert indices.max() < len(probs)


@pytest.mark.parametrize("name", STRATEGY_NAMES)
@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_scores_one_finite_value_per_item(name, n_classes):
    probs = make_probs(25, n_classes)
    selection = get_strategy(name)(probs, 5, ctx())
    scores = np.asarray(selection.scores)
    assert scores.shape == (len(probs),)
    assert np.all(np.isfinite(scores))


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_k_equal_to_n_selects_everything(name):
    probs = make_probs(12, 3)
    selection = get_strategy(name)(probs, 12, ctx())
    assert sorted(np.asarray(selection.indices).tolist()) == list(range(12))


@pytest.mark.parametrize("name", STRATEGY_NAMES)
@pytest.mark.parametrize("k", [0, -1, -10])
def test_non_positive_k_raises(name, k):
    with pytest.raises(ValueError, match="k must be positive"):
        get_strategy(name)(make_probs(10, 2), k, ctx())


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_k_larger_than_n_raises(name):
    with pytest.raises(ValueError, match=r"k=11 is larger than the 10 candidates"):
        get_strategy(name)(make_probs(10, 2), 11, ctx())


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_does_not_mutate_input(name):
    probs = make_probs(30, 3)
    before = probs.copy()
    get_strategy(name)(probs, 10, ctx(false_per_class=(3, 1, 2)))
    np.testing.assert_array_equal(probs, before)


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_accepts_nested_lists(name):
    probs = make_probs(8, 2).tolist()
    selection = get_strategy(name)(probs, 3, ctx())
    assert len(selection.indices) == 3


@pytest.mark.parametrize("name", STRATEGY_NAMES)
@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_deterministic_given_seeded_context(name, n_classes):
    probs = make_probs(50, n_classes, seed=3)
    fpc = tuple(range(1, n_classes + 1))
    first = get_strategy(name)(probs, 13, ctx(0, fpc))
    second = get_strategy(name)(probs, 13, ctx(0, fpc))
    np.testing.assert_array_equal(first.indices, second.indices)
    np.testing.assert_array_equal(first.scores, second.scores)


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_one_dimensional_input_raises(name):
    with pytest.raises(ValueError, match="2-D"):
        get_strategy(name)(np.array([0.1, 0.9, 0.5]), 1, ctx())


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_single_class_raises(name):
    with pytest.raises(ValueError, match="at least 2 classes"):
        get_strategy(name)(np.ones((4, 1)), 1, ctx())


@pytest.mark.parametrize("name", STRATEGY_NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_raises(name, bad):
    probs = make_probs(6, 3)
    probs[2, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        get_strategy(name)(probs, 2, ctx())


def test_strategy_registry_contents():
    assert set(STRATEGIES) == {"least_confidence", "margin", "entropy", "random", "ratio"}
    for name in MEASURES:
        assert STRATEGIES[name].__name__ == name


# --------------------------------------------------------------------------------------------------------------------
# Hand-made arrays with known answers
# --------------------------------------------------------------------------------------------------------------------


def test_least_confidence_picks_rows_closest_to_half_binary():
    probs = binary_probs([0.9, 0.55, 0.1, 0.48, 0.7, 0.02])
    selection = get_strategy("least_confidence")(probs, 3, ctx())
    assert selection.indices.tolist() == [3, 1, 4]
    np.testing.assert_allclose(selection.scores, [0.1, 0.45, 0.1, 0.48, 0.3, 0.02])


def test_measure_values_by_hand():
    probs = np.array([[0.5, 0.5, 0.0], [0.4, 0.3, 0.3], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(least_confidence(probs), [0.5, 0.6, 0.0])
    np.testing.assert_allclose(margin(probs), [1.0, 0.9, 0.0])
    np.testing.assert_allclose(
        entropy(probs), [np.log(2), -(0.4 * np.log(0.4) + 0.6 * np.log(0.3)), 0.0], atol=1e-12
    )


@pytest.mark.parametrize("other", ["margin", "entropy"])
def test_binary_measures_rank_identically(other):
    rng = np.random.default_rng(7)
    probs = binary_probs(rng.uniform(size=200))
    for k in (1, 10, 50, 200):
        lc = get_strategy("least_confidence")(probs, k, ctx())
        alt = get_strategy(other)(probs, k, ctx())
        assert lc.indices.tolist() == alt.indices.tolist()


def test_margin_on_binary_is_twice_least_confidence():
    probs = binary_probs(np.linspace(0, 1, 21))
    np.testing.assert_allclose(margin(probs), 2 * least_confidence(probs), atol=1e-12)


def test_three_class_least_confidence_and_margin_disagree():
    # Row 0: a tie between the top two classes (margin says "most uncertain").
    # Row 1: the lowest top probability (least confidence says "most uncertain").
    probs = np.array([[0.5, 0.5, 0.0], [0.4, 0.3, 0.3], [0.9, 0.05, 0.05]])
    assert get_strategy("least_confidence")(probs, 1, ctx()).indices.tolist() == [1]
    assert get_strategy("margin")(probs, 1, ctx()).indices.tolist() == [0]
    assert get_strategy("entropy")(probs, 1, ctx()).indices.tolist() == [1]


def test_entropy_picks_the_uniform_row():
    probs = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.5, 0.5, 0.0],
            [1 / 3, 1 / 3, 1 / 3],
            [0.6, 0.2, 0.2],
            [0.45, 0.45, 0.1],
        ]
    )
    assert get_strategy("entropy")(probs, 1, ctx()).indices.tolist() == [2]
    np.testing.assert_allclose(entropy(probs)[2], np.log(3))


def test_top_k_ties_resolve_to_earlier_index():
    assert top_k([0.5, 0.9, 0.9, 0.1, 0.9], 2).tolist() == [1, 2]
    assert top_k([0.5, 0.9, 0.9, 0.1, 0.9], 4).tolist() == [1, 2, 4, 0]
    assert top_k([1.0, 1.0, 1.0], 3).tolist() == [0, 1, 2]
    assert top_k([0.2, 0.3], 2).dtype == np.int64


def test_top_k_validates_k():
    with pytest.raises(ValueError, match="positive"):
        top_k([0.1, 0.2], 0)
    with pytest.raises(ValueError, match="larger"):
        top_k([0.1, 0.2], 3)


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_uncertainty_strategy_ties_resolve_to_earlier_row(name):
    row = [0.3, 0.7]
    probs = np.array([[0.99, 0.01], row, [0.95, 0.05], row, row])
    assert get_strategy(name)(probs, 2, ctx()).indices.tolist() == [1, 3]


# --------------------------------------------------------------------------------------------------------------------
# Ratio sampling
# --------------------------------------------------------------------------------------------------------------------


def predicted_counts(probs: np.ndarray, indices, n_classes: int) -> list[int]:
    return np.bincount(probs[np.asarray(indices)].argmax(axis=1), minlength=n_classes).tolist()


def balanced_binary(n_per_class: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    negatives = rng.uniform(0.01, 0.49, size=n_per_class)
    positives = rng.uniform(0.51, 0.99, size=n_per_class)
    p = np.concatenate([negatives, positives])
    return binary_probs(rng.permutation(p))


def test_class_quotas_seed_rule_binary():
    # false_per_class = (FN, FP): negatives get FN/(FN+FP), positives FP/(FN+FP).
    assert class_quotas(100, (30, 10), 2).tolist() == [75, 25]
    assert class_quotas(100, (10, 30), 2).tolist() == [25, 75]


def test_ratio_sampling_seed_rule_binary():
    probs = balanced_binary(100)
    selection = ratio_sampling(probs, 100, ctx(0, (30, 10)))
    assert len(set(selection.indices.tolist())) == 100
    assert predicted_counts(probs, selection.indices, 2) == [75, 25]


@pytest.mark.parametrize("errors", [(0, 0), (0, 7), (7, 0), (), (1, 2, 3)])
def test_ratio_sampling_falls_back_to_even_split(errors):
    # No errors, one zero count, no evaluation yet, or a vector of the wrong length: 50/50.
    assert class_quotas(100, errors, 2).tolist() == [50, 50]
    probs = balanced_binary(100)
    selection = ratio_sampling(probs, 100, ctx(0, errors))
    assert predicted_counts(probs, selection.indices, 2) == [50, 50]


def test_class_quotas_odd_remainder_goes_to_earlier_class_on_tie():
    assert class_quotas(5, (0, 0), 2).tolist() == [3, 2]
    assert class_quotas(7, (), 3).tolist() == [3, 2, 2]


def test_class_quotas_largest_fraction_gets_remainder():
    # 10 * (1/6, 2/6, 3/6) = (1.67, 3.33, 5.0) -> floor (1, 3, 5), one left for class 0 (largest fraction).
    assert class_quotas(10, (1, 2, 3), 3).tolist() == [2, 3, 5]


def test_class_quotas_always_sum_to_k_randomised():
    rng = np.random.default_rng(12345)
    for _ in range(2000):
        n_classes = int(rng.integers(2, 8))
        k = int(rng.integers(1, 1000))
        errors = rng.integers(0, 60, size=n_classes)
        if rng.uniform() < 0.2:
            errors[rng.integers(0, n_classes, size=n_classes - 1)] = 0  # force degenerate vectors sometimes
        quotas = class_quotas(k, errors.tolist(), n_classes)
        assert quotas.shape == (n_classes,)
        assert int(quotas.sum()) == k, (k, errors)
        assert np.all(quotas >= 0)
        if np.count_nonzero(errors) >= 2:
            expected = k * errors / errors.sum()
        else:
            expected = np.full(n_classes, k / n_classes)
        assert np.all(np.abs(quotas - expected) < 1), (k, errors, quotas)


def test_ratio_sampling_total_is_k_randomised():
    rng = np.random.default_rng(99)
    for _ in range(200):
        n_classes = int(rng.integers(2, 6))
        n = int(rng.integers(1, 80))
        k = int(rng.integers(1, n + 1))
        # skewed predictions so some classes are short of candidates
        probs = rng.dirichlet(rng.uniform(0.1, 3.0, size=n_classes), size=n)
        errors = rng.integers(0, 20, size=n_classes).tolist()
        selection = ratio_sampling(probs, k, SelectionContext(false_per_class=errors, rng=rng))
        assert len(selection.indices) == k
        assert len(set(selection.indices.tolist())) == k
        assert selection.indices.min() >= 0 and selection.indices.max() < n


def test_ratio_sampling_short_class_hands_quota_to_others():
    rng = np.random.default_rng(1)
    # 90 predicted negative, only 10 predicted positive.
    p = np.concatenate([rng.uniform(0.01, 0.49, 90), rng.uniform(0.51, 0.99, 10)])
    probs = binary_probs(p)
    assert class_quotas(40, (10, 30), 2).tolist() == [10, 30]
    selection = ratio_sampling(probs, 40, ctx(0, (10, 30)))
    assert len(selection.indices) == 40
    assert len(set(selection.indices.tolist())) == 40
    # every positive is taken, the 20 the positives could not supply come from the negatives
    assert predicted_counts(probs, selection.indices, 2) == [30, 10]


def test_ratio_sampling_class_with_no_candidates():
    probs = binary_probs(np.full(20, 0.2))  # everything predicted negative
    selection = ratio_sampling(probs, 20, ctx(0, (1, 100)))
    assert sorted(selection.indices.tolist()) == list(range(20))


def test_ratio_sampling_three_class_proportions():
    rng = np.random.default_rng(4)
    n_per_class = 60
    rows = []
    for c in range(3):
        block = rng.dirichlet([1.0, 1.0, 1.0], size=n_per_class)
        block[:, c] += 2.0  # make c the clear argmax
        rows.append(block / block.sum(axis=1, keepdims=True))
    probs = np.concatenate(rows)[rng.permutation(3 * n_per_class)]
    assert np.bincount(probs.argmax(axis=1)).tolist() == [60, 60, 60]
    assert class_quotas(60, (10, 20, 30), 3).tolist() == [10, 20, 30]
    selection = ratio_sampling(probs, 60, ctx(0, (10, 20, 30)))
    assert predicted_counts(probs, selection.indices, 3) == [10, 20, 30]
    selection = ratio_sampling(probs, 90, ctx(0, (5, 0, 0)))  # one nonzero count -> even split
    assert predicted_counts(probs, selection.indices, 3) == [30, 30, 30]


def test_ratio_sampling_scores_are_least_confidence():
    probs = make_probs(20, 3)
    selection = ratio_sampling(probs, 5, ctx())
    np.testing.assert_allclose(selection.scores, least_confidence(probs))


# --------------------------------------------------------------------------------------------------------------------
# Random sampling
# --------------------------------------------------------------------------------------------------------------------


def test_random_sampling_different_seeds_differ():
    probs = make_probs(100, 2)
    selections = {tuple(random_sampling(probs, 10, ctx(seed)).indices.tolist()) for seed in range(5)}
    assert len(selections) == 5


def test_random_sampling_roughly_uniform():
    n, k, draws = 20, 5, 2000
    probs = make_probs(n, 2)
    context = ctx(2024)  # one generator, advanced by every draw
    counts = np.zeros(n, dtype=np.int64)
    for _ in range(draws):
        counts[random_sampling(probs, k, context).indices] += 1
    expected = draws * k / n  # 500; std ~ 19
    assert counts.sum() == draws * k
    assert np.all(np.abs(counts - expected) < 0.2 * expected), counts


def test_random_sampling_scores_are_least_confidence():
    probs = make_probs(20, 3)
    np.testing.assert_allclose(random_sampling(probs, 4, ctx()).scores, least_confidence(probs))


# --------------------------------------------------------------------------------------------------------------------
# Lookup by name
# --------------------------------------------------------------------------------------------------------------------


def test_get_strategy_known_names():
    for name in STRATEGY_NAMES:
        assert get_strategy(name) is STRATEGIES[name]


@pytest.mark.parametrize("lookup", [get_strategy, get_measure])
def test_unknown_name_raises_listing_valid_names(lookup):
    with pytest.raises(ValueError) as info:
        lookup("bald")
    message = str(info.value)
    assert "'bald'" in message
    for name in STRATEGY_NAMES:
        assert name in message


def test_get_measure_maps_sampling_strategies_to_least_confidence():
    assert get_measure("margin") is margin
    assert get_measure("entropy") is entropy
    assert get_measure("least_confidence") is least_confidence
    assert get_measure("random") is least_confidence
    assert get_measure("ratio") is least_confidence
