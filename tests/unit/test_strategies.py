"""Unit tests for the pure query strategies (alloop.strategies)."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from alloop.strategies import (
    MEASURES,
    NEEDS_EMBEDDINGS,
    NEEDS_MC_SAMPLES,
    STRATEGIES,
    Selection,
    SelectionContext,
    bald_scores,
    class_balanced,
    class_quotas,
    entropy,
    get_measure,
    get_strategy,
    k_center_greedy,
    kcenter,
    least_confidence,
    margin,
    mean_entropy_scores,
    random_sampling,
    ratio_sampling,
    top_k,
    weighted_kmeans_centres,
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


def ctx(seed: int = 0, false_per_class=(), probs=None, **extras) -> SelectionContext:
    """A seeded context; given ``probs``, also MC samples and embeddings that fit them, so every strategy runs."""
    if probs is not None:
        extras = {**model_outputs_for(probs, seed), **extras}
    return SelectionContext(false_per_class=false_per_class, rng=np.random.default_rng(seed), **extras)


def model_outputs_for(probs, seed: int = 0, passes: int = 4, dims: int = 6) -> dict[str, np.ndarray]:
    """MC samples (passes, n, classes) scattered around ``probs`` and random (n, dims) embeddings.

    Only the shapes have to fit: the contract tests check what any strategy must do, not what these say. An array
    that is not 2-D gets none (the strategy must refuse the probabilities before it looks for extras).
    """
    array = np.asarray(probs, dtype=np.float64)
    if array.ndim != 2:
        return {}
    n, n_classes = array.shape
    rng = np.random.default_rng(seed + 1000)
    clean = np.nan_to_num(array, nan=0.5, posinf=1.0, neginf=0.0)
    noise = rng.dirichlet(np.ones(n_classes), size=(passes, n))
    return {"mc_samples": 0.7 * clean[None] + 0.3 * noise, "embeddings": rng.normal(size=(n, dims))}


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
    selection = get_strategy(name)(probs, k, ctx(probs=probs))
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
    selection = get_strategy(name)(probs, 5, ctx(probs=probs))
    scores = np.asarray(selection.scores)
    assert scores.shape == (len(probs),)
    assert np.all(np.isfinite(scores))


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_k_equal_to_n_selects_everything(name):
    probs = make_probs(12, 3)
    selection = get_strategy(name)(probs, 12, ctx(probs=probs))
    assert sorted(np.asarray(selection.indices).tolist()) == list(range(12))


@pytest.mark.parametrize("name", STRATEGY_NAMES)
@pytest.mark.parametrize("k", [0, -1, -10])
def test_non_positive_k_raises(name, k):
    probs = make_probs(10, 2)
    with pytest.raises(ValueError, match="k must be positive"):
        get_strategy(name)(probs, k, ctx(probs=probs))


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_k_larger_than_n_raises(name):
    probs = make_probs(10, 2)
    with pytest.raises(ValueError, match=r"k=11 is larger than the 10 candidates"):
        get_strategy(name)(probs, 11, ctx(probs=probs))


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_does_not_mutate_input(name):
    probs = make_probs(30, 3)
    context = ctx(false_per_class=(3, 1, 2), probs=probs)
    before = probs.copy(), context.mc_samples.copy(), context.embeddings.copy()
    get_strategy(name)(probs, 10, context)
    np.testing.assert_array_equal(probs, before[0])
    np.testing.assert_array_equal(context.mc_samples, before[1])
    np.testing.assert_array_equal(context.embeddings, before[2])


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_accepts_nested_lists(name):
    probs = make_probs(8, 2).tolist()
    extras = {key: value.tolist() for key, value in model_outputs_for(probs).items()}
    selection = get_strategy(name)(probs, 3, ctx(**extras))
    assert len(selection.indices) == 3


@pytest.mark.parametrize("name", STRATEGY_NAMES)
@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_deterministic_given_seeded_context(name, n_classes):
    probs = make_probs(50, n_classes, seed=3)
    fpc = tuple(range(1, n_classes + 1))
    first = get_strategy(name)(probs, 13, ctx(0, fpc, probs=probs))
    second = get_strategy(name)(probs, 13, ctx(0, fpc, probs=probs))
    np.testing.assert_array_equal(first.indices, second.indices)
    np.testing.assert_array_equal(first.scores, second.scores)


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_one_dimensional_input_raises(name):
    with pytest.raises(ValueError, match="2-D"):
        get_strategy(name)(np.array([0.1, 0.9, 0.5]), 1, ctx(probs=make_probs(3, 2)))


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_single_class_raises(name):
    probs = np.ones((4, 1))
    with pytest.raises(ValueError, match="at least 2 classes"):
        get_strategy(name)(probs, 1, ctx(probs=probs))


@pytest.mark.parametrize("name", STRATEGY_NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_raises(name, bad):
    probs = make_probs(6, 3)
    probs[2, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        get_strategy(name)(probs, 2, ctx(probs=probs))


def test_strategy_registry_contents():
    assert set(STRATEGIES) == {
        "least_confidence",
        "margin",
        "entropy",
        "random",
        "ratio",
        "class_balanced",
        "bald",
        "mean_entropy",
        "diversity",
        "kmeans_diversity",
    }
    for name in MEASURES:
        assert STRATEGIES[name].__name__ == name
    assert {"bald", "mean_entropy"} == NEEDS_MC_SAMPLES
    assert {"diversity", "kmeans_diversity"} == NEEDS_EMBEDDINGS


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_runs_with_only_the_extras_it_declares(name):
    # The service computes MC samples and embeddings only for the strategies listed as needing them: a strategy
    # that needs one but is not listed would fail in the service, and one listed must say what it is missing.
    probs = make_probs(20, 3)
    full = model_outputs_for(probs)
    declared = {
        "mc_samples": full["mc_samples"] if name in NEEDS_MC_SAMPLES else None,
        "embeddings": full["embeddings"] if name in NEEDS_EMBEDDINGS else None,
    }
    assert len(get_strategy(name)(probs, 5, ctx(**declared)).indices) == 5
    if name in NEEDS_MC_SAMPLES:
        with pytest.raises(ValueError, match=rf"strategy '{name}' needs MC-dropout samples.*predict_mc"):
            get_strategy(name)(probs, 5, ctx(**{**declared, "mc_samples": None}))
    if name in NEEDS_EMBEDDINGS:
        with pytest.raises(ValueError, match=rf"strategy '{name}' needs item embeddings.*embed"):
            get_strategy(name)(probs, 5, ctx(**{**declared, "embeddings": None}))


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
    np.testing.assert_allclose(entropy(probs), [np.log(2), -(0.4 * np.log(0.4) + 0.6 * np.log(0.3)), 0.0], atol=1e-12)


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
        lookup("most_fun")
    message = str(info.value)
    assert "'most_fun'" in message
    for name in STRATEGY_NAMES:
        assert name in message


def test_get_measure_maps_sampling_strategies_to_least_confidence():
    assert get_measure("margin") is margin
    assert get_measure("entropy") is entropy
    assert get_measure("least_confidence") is least_confidence
    assert get_measure("random") is least_confidence
    assert get_measure("ratio") is least_confidence


@pytest.mark.parametrize("name", ["class_balanced", "bald", "mean_entropy", "diversity", "kmeans_diversity"])
def test_get_measure_maps_strategies_needing_more_than_probabilities_to_least_confidence(name):
    # ScorePool has only the mean prediction: it reports least-confidence for these, as for the sampling ones.
    assert get_measure(name) is least_confidence


# --------------------------------------------------------------------------------------------------------------------
# Class-balanced: the seed's quotas, filled by uncertainty
# --------------------------------------------------------------------------------------------------------------------


def most_uncertain_of_class(probs: np.ndarray, c: int, count: int) -> set[int]:
    members = np.flatnonzero(probs.argmax(axis=1) == c)
    order = members[np.lexsort((members, -least_confidence(probs)[members]))]
    return set(order[:count].tolist())


def test_class_balanced_follows_the_quotas_with_the_most_uncertain_of_each_class():
    probs = balanced_binary(100)
    selection = class_balanced(probs, 40, ctx(0, (30, 10)))
    assert class_quotas(40, (30, 10), 2).tolist() == [30, 10]
    assert predicted_counts(probs, selection.indices, 2) == [30, 10]
    chosen = set(selection.indices.tolist())
    assert chosen == most_uncertain_of_class(probs, 0, 30) | most_uncertain_of_class(probs, 1, 10)
    # Plain least-confidence would take whatever class is nearer 0.5: the quotas are what changes the batch.
    np.testing.assert_allclose(selection.scores, least_confidence(probs))


def test_class_balanced_returns_most_uncertain_first_and_ignores_the_rng():
    probs = balanced_binary(50, seed=5)
    first = class_balanced(probs, 30, ctx(0, (2, 1)))
    other_seed = class_balanced(probs, 30, ctx(99, (2, 1)))
    np.testing.assert_array_equal(first.indices, other_seed.indices)
    chosen_scores = least_confidence(probs)[first.indices]
    assert np.all(np.diff(chosen_scores) <= 0)


def test_class_balanced_short_class_hands_quota_to_the_most_uncertain_left():
    rng = np.random.default_rng(1)
    p = np.concatenate([rng.uniform(0.01, 0.49, 90), rng.uniform(0.51, 0.99, 10)])
    probs = binary_probs(p)
    selection = class_balanced(probs, 40, ctx(0, (10, 30)))  # quotas [10, 30]; only 10 positives exist
    assert len(set(selection.indices.tolist())) == 40
    assert predicted_counts(probs, selection.indices, 2) == [30, 10]
    # the 10 negatives of the quota plus the 20 handed over are the 30 most uncertain negatives
    negatives = set(selection.indices.tolist()) - set(np.flatnonzero(p > 0.5).tolist())
    assert negatives == most_uncertain_of_class(probs, 0, 30)


def test_class_balanced_three_class_proportions_and_even_fallback():
    rng = np.random.default_rng(4)
    rows = []
    for c in range(3):
        block = rng.dirichlet([1.0, 1.0, 1.0], size=60)
        block[:, c] += 2.0
        rows.append(block / block.sum(axis=1, keepdims=True))
    probs = np.concatenate(rows)[rng.permutation(180)]
    selection = class_balanced(probs, 60, ctx(0, (10, 20, 30)))
    assert predicted_counts(probs, selection.indices, 3) == [10, 20, 30]
    for c, quota in enumerate((10, 20, 30)):
        in_class = {i for i in selection.indices.tolist() if probs[i].argmax() == c}
        assert in_class == most_uncertain_of_class(probs, c, quota)
    assert predicted_counts(probs, class_balanced(probs, 90, ctx(0, ())).indices, 3) == [30, 30, 30]


def test_class_balanced_total_is_k_randomised():
    rng = np.random.default_rng(98)
    for _ in range(200):
        n_classes = int(rng.integers(2, 6))
        n = int(rng.integers(1, 80))
        k = int(rng.integers(1, n + 1))
        probs = rng.dirichlet(rng.uniform(0.1, 3.0, size=n_classes), size=n)
        errors = rng.integers(0, 20, size=n_classes).tolist()
        selection = class_balanced(probs, k, SelectionContext(false_per_class=errors, rng=rng))
        assert len(selection.indices) == k and len(set(selection.indices.tolist())) == k
        quotas = class_quotas(k, errors, n_classes)
        available = np.bincount(probs.argmax(axis=1), minlength=n_classes)
        counts = np.asarray(predicted_counts(probs, selection.indices, n_classes))
        # every class gets its quota, or all it has; never less than that
        assert np.all(counts >= np.minimum(quotas, available)), (quotas, available, counts)


# --------------------------------------------------------------------------------------------------------------------
# BALD and mean entropy over MC-dropout samples
# --------------------------------------------------------------------------------------------------------------------


def mc(*passes) -> np.ndarray:
    """MC samples from per-pass rows: mc([[row item0], [row item1]], ...) -> (passes, items, classes)."""
    return np.asarray(passes, dtype=np.float64)


def test_bald_prefers_confident_disagreement_to_agreement_on_half():
    # item 0: every pass says 50/50 (ambiguous, but a label teaches the model little)
    # item 1: passes disagree confidently (the model does not know: a label settles it)
    # item 2: passes agree confidently
    samples = mc(
        [[0.5, 0.5], [0.99, 0.01], [0.95, 0.05]],
        [[0.5, 0.5], [0.01, 0.99], [0.97, 0.03]],
    )
    probs = samples.mean(axis=0)
    context = ctx(mc_samples=samples)
    bald = get_strategy("bald")(probs, 3, context)
    assert bald.indices.tolist()[0] == 1
    h99 = -(0.99 * np.log(0.99) + 0.01 * np.log(0.01))
    assert bald.scores[1] == pytest.approx(np.log(2) - h99)
    assert bald.scores[0] == pytest.approx(0.0, abs=1e-12)
    # Mean entropy sees both as maximally uncertain (a tie, so the earlier item comes first).
    total = get_strategy("mean_entropy")(probs, 2, context)
    np.testing.assert_allclose(total.scores[:2], [np.log(2), np.log(2)])
    assert total.indices.tolist() == [0, 1]


def test_bald_and_mean_entropy_by_hand_three_classes():
    samples = mc(
        [[1.0, 0.0, 0.0], [0.6, 0.2, 0.2]],
        [[0.0, 1.0, 0.0], [0.2, 0.6, 0.2]],
        [[0.0, 0.0, 1.0], [0.2, 0.2, 0.6]],
    )
    h_pass = -(0.6 * np.log(0.6) + 0.4 * np.log(0.2))
    np.testing.assert_allclose(mean_entropy_scores(samples), [np.log(3), np.log(3)], atol=1e-12)
    np.testing.assert_allclose(bald_scores(samples), [np.log(3), np.log(3) - h_pass], atol=1e-12)
    selection = get_strategy("bald")(samples.mean(axis=0), 1, ctx(mc_samples=samples))
    assert selection.indices.tolist() == [0]


def test_identical_passes_give_zero_bald_and_plain_entropy():
    # A model without dropout (the linear family) gives identical passes.
    probs = make_probs(30, 4, seed=2)
    samples = np.repeat(probs[None], 5, axis=0)
    scores = bald_scores(samples)
    assert np.all(scores >= 0) and np.allclose(scores, 0.0, atol=1e-12)
    np.testing.assert_allclose(mean_entropy_scores(samples), entropy(probs), atol=1e-12)
    assert get_strategy("bald")(probs, 4, ctx(mc_samples=samples)).indices.tolist() == [0, 1, 2, 3]


def test_bald_is_never_negative_and_at_most_mean_entropy():
    rng = np.random.default_rng(5)
    for n_classes in (2, 3, 7):
        samples = rng.dirichlet(np.full(n_classes, 0.3), size=(10, 200))
        b, h = bald_scores(samples), mean_entropy_scores(samples)
        assert np.all(b >= 0) and np.all(b <= h + 1e-12) and np.all(h <= np.log(n_classes) + 1e-12)


@pytest.mark.parametrize("name", sorted(NEEDS_MC_SAMPLES))
@pytest.mark.parametrize(
    "samples, message",
    [
        (np.full((10, 2), 0.5), "3-D"),
        (np.full((0, 10, 2), 0.5), "no passes"),
        (np.full((3, 9, 2), 0.5), r"shape \(3, 9, 2\).*10 items and 2 classes"),
        (np.full((3, 10, 3), 1 / 3), "10 items and 2 classes"),
        (np.where(np.eye(10, 2)[None] > 0, np.nan, 0.5).repeat(2, axis=0), "mc_samples contain NaN"),
    ],
)
def test_bad_mc_samples_raise(name, samples, message):
    with pytest.raises(ValueError, match=message):
        get_strategy(name)(make_probs(10, 2), 2, ctx(mc_samples=samples))


# --------------------------------------------------------------------------------------------------------------------
# Diversity: uncertain candidates spread by greedy k-center
# --------------------------------------------------------------------------------------------------------------------


def two_clusters(n_per_cluster: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cluster A near (0, 0) holds the most uncertain items; cluster B near (10, 10) is a little less uncertain.

    With k=2 all 16 items are candidates (m = min(n, 10k) = 16), so only the embeddings decide the second pick.
    """
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 0.01, size=(n_per_cluster, 2))
    b = rng.normal(10.0, 0.01, size=(n_per_cluster, 2))
    p_a = 0.5 + 0.001 * np.arange(n_per_cluster)  # least confidence 0.5 .. 0.48
    p_b = 0.6 + 0.001 * np.arange(n_per_cluster)  # least confidence 0.4 .. 0.38
    return binary_probs(np.r_[p_a, p_b]), np.vstack([a, b])


def test_diversity_picks_spread_points_from_two_tight_clusters():
    probs, embeddings = two_clusters()
    plain = get_strategy("least_confidence")(probs, 2, ctx())
    assert plain.indices.tolist() == [0, 1]  # both from cluster A: near-duplicates
    spread = get_strategy("diversity")(probs, 2, ctx(embeddings=embeddings))
    assert spread.indices[0] == 0  # starts from the most uncertain
    assert spread.indices[1] >= 8  # then the other cluster
    np.testing.assert_allclose(spread.scores, least_confidence(probs))


def three_clusters() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cluster of each item, probabilities, embeddings): 30 uncertain items in three tight, far-apart clusters."""
    rng = np.random.default_rng(3)
    centers = np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    cluster = np.repeat(np.arange(3), 10)
    embeddings = centers[cluster] + rng.normal(0, 0.05, size=(30, 3))
    return cluster, binary_probs(rng.uniform(0.3, 0.7, size=30)), embeddings


def test_diversity_covers_three_clusters_before_repeating_one():
    cluster, probs, embeddings = three_clusters()
    chosen = get_strategy("diversity")(probs, 3, ctx(embeddings=embeddings)).indices
    assert sorted(cluster[chosen].tolist()) == [0, 1, 2]


def test_diversity_never_picks_a_confident_outlier_outside_the_candidates():
    # m = min(n, 10k) = 20 candidates; the far outlier is the most confident item, so it is not among them.
    rng = np.random.default_rng(8)
    probs = binary_probs(np.r_[rng.uniform(0.45, 0.55, 99), 0.999])
    embeddings = np.vstack([rng.normal(size=(99, 4)), np.full((1, 4), 1000.0)])
    chosen = get_strategy("diversity")(probs, 2, ctx(embeddings=embeddings)).indices.tolist()
    assert 99 not in chosen
    assert set(chosen) <= set(top_k(least_confidence(probs), 20).tolist())


def test_diversity_candidate_count_follows_the_module_constant(monkeypatch):
    assert kcenter.candidate_count(50_000, 100) == 1000
    assert kcenter.candidate_count(500, 100) == 500
    monkeypatch.setattr(kcenter, "CANDIDATE_FACTOR", 1)
    assert kcenter.candidate_count(50_000, 100) == 200  # the 2k floor keeps some choice
    monkeypatch.setattr(kcenter, "CANDIDATE_FACTOR", 50)
    assert kcenter.candidate_count(50_000, 100) == 5000
    probs, embeddings = two_clusters()
    monkeypatch.setattr(kcenter, "CANDIDATE_FACTOR", 1)  # m = 2k = 4 candidates, all in cluster A
    chosen = get_strategy("diversity")(probs, 2, ctx(embeddings=embeddings)).indices.tolist()
    assert chosen[0] == 0 and set(chosen) <= {0, 1, 2, 3}


def test_diversity_with_identical_embeddings_falls_back_to_uncertainty_order():
    probs = make_probs(40, 3, seed=6)
    embeddings = np.ones((40, 5))
    chosen = get_strategy("diversity")(probs, 7, ctx(embeddings=embeddings))
    assert chosen.indices.tolist() == top_k(least_confidence(probs), 7).tolist()


def test_k_center_greedy_on_a_line():
    points = np.array([[0.0], [1.0], [2.0], [10.0], [9.5]])
    assert k_center_greedy(points, 3).tolist() == [0, 3, 2]
    assert sorted(k_center_greedy(points, 5).tolist()) == [0, 1, 2, 3, 4]


def reference_k_center(points: np.ndarray, k: int) -> list[int]:
    """The textbook form with explicit differences, to check the norm-trick version against."""
    chosen = [0]
    nearest = ((points - points[0]) ** 2).sum(axis=1)
    nearest[0] = -np.inf
    while len(chosen) < k:
        center = int(np.argmax(nearest))
        chosen.append(center)
        nearest = np.minimum(nearest, ((points - points[center]) ** 2).sum(axis=1))
        nearest[chosen] = -np.inf
    return chosen


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_k_center_greedy_matches_the_textbook_form(seed):
    rng = np.random.default_rng(seed)
    points = rng.normal(loc=50.0, size=(500, 8))  # offset from the origin: the centring must keep precision
    assert k_center_greedy(points, 40).tolist() == reference_k_center(points, 40)


def test_k_center_greedy_validates():
    with pytest.raises(ValueError, match="2-D"):
        k_center_greedy(np.zeros(5), 2)
    with pytest.raises(ValueError, match="k=6 is larger than the 5"):
        k_center_greedy(np.zeros((5, 2)), 6)


@pytest.mark.parametrize(
    "embeddings, message",
    [
        (np.zeros(10), "2-D"),
        (np.zeros((10, 0)), "2-D"),
        (np.zeros((9, 3)), "9 rows for 10 items"),
        (np.where(np.eye(10, 3) > 0, np.inf, 0.0), "embeddings contain NaN or infinity"),
        (np.array([["a", "b"]] * 10), "must be numbers"),
    ],
)
def test_bad_embeddings_raise(embeddings, message):
    with pytest.raises(ValueError, match=message):
        get_strategy("diversity")(make_probs(10, 2), 2, ctx(embeddings=embeddings))


def big_pool(n: int = 50_000, d: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return binary_probs(rng.uniform(size=n)), rng.normal(size=(n, d)).astype(np.float32)


def test_diversity_on_a_50k_pool_is_fast():
    probs, embeddings = big_pool()
    context = ctx(embeddings=embeddings)
    started = time.perf_counter()
    selection = get_strategy("diversity")(probs, 100, context)
    elapsed = time.perf_counter() - started
    assert len(set(selection.indices.tolist())) == 100
    assert set(selection.indices.tolist()) <= set(top_k(least_confidence(probs), 1000).tolist())
    assert elapsed < 2.0, f"diversity on 50,000 x 64, k=100 took {elapsed:.2f}s"


def test_diversity_memory_stays_linear_in_the_candidates():
    # k=500 on 50,000 items: m=5,000 candidates. An m x m float64 distance matrix alone would be 200 MB; the
    # (m, d) block is 2.5 MB (about 7 MiB peak in all). The inputs exist before tracing starts, so this measures
    # only what the strategy adds.
    probs, embeddings = big_pool()
    context = ctx(embeddings=embeddings)
    tracemalloc.start()
    try:
        selection = get_strategy("diversity")(probs, 500, context)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(set(selection.indices.tolist())) == 500
    assert peak < 32 * 2**20, f"peak {peak / 2**20:.1f} MiB"


# --------------------------------------------------------------------------------------------------------------------
# Weighted k-means diversity
# --------------------------------------------------------------------------------------------------------------------


def test_kmeans_diversity_takes_one_item_from_each_of_three_clusters():
    cluster, probs, embeddings = three_clusters()
    for seed in range(5):
        chosen = get_strategy("kmeans_diversity")(probs, 3, ctx(seed=seed, embeddings=embeddings)).indices
        assert sorted(cluster[chosen].tolist()) == [0, 1, 2]


def test_kmeans_diversity_picks_from_the_middle_of_dense_regions_where_k_center_picks_edges():
    # 36 uncertain items in one broad group, 4 in a small far one, k=4. Both strategies cover both groups; within
    # the broad group k-center takes its rim (farthest-first), k-means items near its centres of mass.
    rng = np.random.default_rng(1)
    embeddings = np.vstack([rng.normal(size=(36, 4)), 20.0 + rng.normal(0, 0.1, size=(4, 4))])
    probs = binary_probs(np.full(40, 0.5))
    from_centre = np.linalg.norm(embeddings[:36] - embeddings[:36].mean(axis=0), axis=1)
    rim = get_strategy("diversity")(probs, 4, ctx(embeddings=embeddings)).indices
    rim_distance = from_centre[rim[rim < 36]].mean()
    assert rim_distance > np.median(from_centre)
    for seed in range(10):
        chosen = get_strategy("kmeans_diversity")(probs, 4, ctx(seed=seed, embeddings=embeddings)).indices
        assert 1 <= int((chosen >= 36).sum()) <= 2  # the far group is covered, not over-covered
        assert from_centre[chosen[chosen < 36]].mean() < rim_distance


def test_kmeans_diversity_stays_among_the_most_uncertain_candidates():
    rng = np.random.default_rng(8)
    probs = binary_probs(np.r_[rng.uniform(0.45, 0.55, 99), rng.uniform(0.95, 1.0, 100)])
    embeddings = rng.normal(size=(199, 4))
    selection = get_strategy("kmeans_diversity")(probs, 5, ctx(embeddings=embeddings))
    assert len(set(selection.indices.tolist())) == 5
    assert set(selection.indices.tolist()) <= set(top_k(margin(probs), 50).tolist())
    np.testing.assert_allclose(selection.scores, margin(probs))


def test_kmeans_diversity_with_identical_embeddings_still_returns_k_distinct_items():
    probs = make_probs(40, 3, seed=6)
    chosen = get_strategy("kmeans_diversity")(probs, 7, ctx(embeddings=np.ones((40, 5)))).indices
    assert len(set(chosen.tolist())) == 7


def test_weighted_kmeans_centres_validates_weights():
    with pytest.raises(ValueError, match="non-negative"):
        weighted_kmeans_centres(np.zeros((5, 2)), [1, 1, -1, 1, 1], 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="k=6 is larger than the 5"):
        weighted_kmeans_centres(np.zeros((5, 2)), np.ones(5), 6, np.random.default_rng(0))


def test_kmeans_diversity_on_a_50k_pool_is_fast_and_small():
    # k=1,000 from 50,000: m=10,000 candidates; assignments go a block of rows at a time, so memory stays far below
    # an m x k float64 matrix (80 MB) and the whole selection takes a few seconds at most on 2 cores.
    probs, embeddings = big_pool()
    context = ctx(embeddings=embeddings)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        selection = get_strategy("kmeans_diversity")(probs, 1000, context)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    assert len(set(selection.indices.tolist())) == 1000
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert elapsed < 20.0, f"kmeans_diversity on 50,000 x 64, k=1,000 took {elapsed:.2f}s"
