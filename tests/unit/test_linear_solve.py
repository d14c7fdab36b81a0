"""The linear family's maths: sublinear TF-IDF as scikit-learn computes it, the LSA schedule, and the fold of the
LSA and naive-Bayes blocks into one Dense kernel (the served model must score exactly what the fit optimized)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfTransformer

from alloop.models.config import ModelConfig
from alloop.models.linear import (
    SublinearTfIdf,
    class_shares,
    corpus_stats,
    lsa_weight,
    nb_importance,
    prior_shift,
    pseudo_labels,
    solve,
    tfidf,
    uses_corpus,
)


def counts_matrix(rows: int = 60, width: int = 40, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = rng.poisson(0.4, size=(rows, width)).astype(np.float32)
    dense[:, 0] += 1  # every row has a token
    return sp.csr_matrix(dense)


def binary_reference():
    """solve()'s binary solver at the tests' C, fitted independently of it."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=4.0, solver="liblinear", dual=True, max_iter=2000, random_state=0)


def separable(rows: int = 80, seed: int = 0, classes: int = 2) -> tuple[sp.csr_matrix, np.ndarray]:
    counts = counts_matrix(rows, 40, seed).tolil()
    y = np.arange(rows) % classes
    for i in range(rows):
        counts[i, 1 + y[i]] += 3  # token 1 means class 0, token 2 class 1, ...
    return counts.tocsr(), y


def test_tfidf_matches_scikit_learns_sublinear_smooth_form():
    counts = counts_matrix()
    stats = corpus_stats(counts, components=5, seed=0)
    ours = tfidf(counts, stats.idf).toarray()
    theirs = TfidfTransformer(sublinear_tf=True).fit_transform(counts).toarray()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_the_keras_layer_computes_the_same_tfidf():
    counts = counts_matrix()
    stats = corpus_stats(counts, components=5, seed=0)
    layer = SublinearTfIdf(counts.shape[1])
    layer.build((None, counts.shape[1]))
    layer.idf.assign(stats.idf)
    np.testing.assert_allclose(
        np.asarray(layer(counts.toarray())), tfidf(counts, stats.idf).toarray(), rtol=1e-5, atol=1e-6
    )


def test_the_keras_layer_on_sparse_counts_is_the_served_path_and_agrees():
    import tensorflow as tf

    counts = counts_matrix().tocoo()
    stats = corpus_stats(counts.tocsr(), components=5, seed=0)
    layer = SublinearTfIdf(counts.shape[1])
    layer.build((None, counts.shape[1]))
    layer.idf.assign(stats.idf)
    sparse = tf.SparseTensor(np.stack([counts.row, counts.col], axis=1).astype(np.int64), counts.data, counts.shape)
    out = layer(tf.sparse.reorder(sparse))
    assert isinstance(out, tf.SparseTensor)
    np.testing.assert_allclose(
        tf.sparse.to_dense(out).numpy(), tfidf(counts.tocsr(), stats.idf).toarray(), rtol=1e-5, atol=1e-6
    )


def test_lsa_basis_gives_corpus_rows_of_mean_norm_one():
    counts = counts_matrix(rows=100)
    stats = corpus_stats(counts, components=8, seed=0)
    assert stats.basis.shape == (40, 8)
    projected = stats.project(tfidf(counts, stats.idf))
    assert np.mean(np.linalg.norm(projected, axis=1)) == pytest.approx(1.0, rel=1e-4)


def test_lsa_weight_fades_with_labels():
    assert lsa_weight(200, 1000) == 1.0
    assert lsa_weight(1000, 1000) == 1.0
    assert lsa_weight(4000, 1000) == pytest.approx(0.5)
    assert lsa_weight(0, 1000) == 1.0


def augment(x: sp.csr_matrix, y: np.ndarray, stats, nb_scale: float, w: float) -> sp.csr_matrix:
    """The fit's design matrix, written out independently of solve()."""
    blocks = [x] + ([x @ sp.diags(nb_scale * nb_importance(x, y))] if nb_scale else [])
    return sp.hstack([*blocks, sp.csr_matrix(stats.project(x) * w)], format="csr")


# LSA weight 1 and 0.5, with and without the naive-Bayes block: the fold must hold for any weights
@pytest.mark.parametrize(("labels", "nb_scale"), [(100, 0.0), (4000, 0.0), (100, 2.0), (4000, 3.0)])
def test_folded_kernel_scores_exactly_what_the_fit_optimized(labels, nb_scale):
    counts, y = separable(labels)
    stats = corpus_stats(counts, components=6, seed=0)
    config = ModelConfig(family="linear", linear_c=4.0, linear_lsa_pivot=1000, linear_nb_scale=nb_scale)
    kernel, bias, loss = solve(counts, y, stats, config, seed=0)
    x = tfidf(counts, stats.idf)
    w = lsa_weight(len(y), 1000)
    augmented = augment(x, y, stats, nb_scale, w)
    reference = binary_reference().fit(augmented, y)
    np.testing.assert_allclose(
        np.asarray(x @ kernel).ravel() + bias[0], reference.decision_function(augmented), rtol=1e-4, atol=1e-4
    )
    assert kernel.shape == (40, 1) and 0 < loss < 0.7
    assert (((np.asarray(x @ kernel).ravel() + bias[0]) > 0) == y).mean() > 0.95


def test_one_class_only_is_refused_with_a_reason():
    counts, _ = separable()
    stats = corpus_stats(counts, components=4, seed=0)
    with pytest.raises(ValueError, match="one class only.*at least two classes"):
        solve(counts, np.zeros(counts.shape[0], dtype=int), stats, ModelConfig(family="linear"), seed=0)


def test_multiclass_columns_follow_class_indices_and_absent_classes_stay_improbable():
    counts, y = separable(90)
    y = np.where(np.arange(90) % 3 == 0, 3, y)  # classes 0, 1 and 3 of 4; class 2 has no label yet
    stats = corpus_stats(counts, components=4, seed=0)
    kernel, bias, _ = solve(counts, y, stats, ModelConfig(family="linear", n_classes=4, linear_c=4.0), seed=0)
    assert kernel.shape == (40, 4)
    x = tfidf(counts, stats.idf)
    logits = np.asarray(x @ kernel) + bias
    assert not np.any(logits.argmax(axis=1) == 2)
    assert np.all(kernel[:, 2] == 0)
    # Columns 0, 1, 3 are exactly the multinomial fit's logits for classes 0, 1, 3.
    from sklearn.linear_model import LogisticRegression

    w = lsa_weight(len(y), 1000)
    augmented = augment(x, y, stats, ModelConfig().linear_nb_scale, w)
    reference = LogisticRegression(C=4.0, solver="lbfgs", max_iter=2000, random_state=0).fit(augmented, y)
    np.testing.assert_allclose(logits[:, [0, 1, 3]], reference.decision_function(augmented), rtol=1e-3, atol=1e-3)


def test_labels_outside_the_classes_are_refused_with_a_reason():
    counts, y = separable(40)
    stats = corpus_stats(counts, components=4, seed=0)
    with pytest.raises(ValueError, match=r"labels \[5\] are outside the 3 configured classes"):
        solve(counts, np.where(y == 1, 5, 0), stats, ModelConfig(family="linear", n_classes=3), seed=0)


def test_multiclass_with_two_classes_seen_so_far():
    counts, y = separable(60)
    y = np.where(y == 1, 2, 0)  # classes 0 and 2 of 3
    stats = corpus_stats(counts, components=4, seed=0)
    kernel, bias, _ = solve(counts, y, stats, ModelConfig(family="linear", n_classes=3), seed=0)
    predicted = (np.asarray(tfidf(counts, stats.idf) @ kernel) + bias).argmax(axis=1)
    assert set(predicted.tolist()) <= {0, 2}
    assert (predicted == y).mean() > 0.95


def test_the_lsa_basis_spans_only_the_most_frequent_columns(monkeypatch):
    from alloop.models.linear import corpus

    monkeypatch.setattr(corpus, "LSA_COLUMNS", 10)
    counts, y = separable(80)
    stats = corpus_stats(counts, components=4, seed=0)
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    assert len(stats.columns) == 10 and set(stats.columns.tolist()) == set(np.argsort(-df, kind="stable")[:10].tolist())
    kernel, bias, _ = solve(counts, y, stats, ModelConfig(family="linear"), seed=0)
    assert kernel.shape == (40, 1)  # the fold still covers the whole vocabulary
    logits = np.asarray(tfidf(counts, stats.idf) @ kernel).ravel() + bias[0]
    assert ((logits > 0) == y).mean() > 0.95


def test_nb_importance_on_two_classes_is_the_nbsvm_log_count_ratio():
    counts, y = separable(80)
    x = tfidf(counts, corpus_stats(counts, components=4, seed=0).idf)
    x64 = x.astype(np.float64)  # the class mass is summed in float64
    p = 1.0 + np.asarray(x64[y == 1].sum(axis=0)).ravel()
    q = 1.0 + np.asarray(x64[y == 0].sum(axis=0)).ravel()
    np.testing.assert_allclose(nb_importance(x, y), np.abs(np.log(p / p.sum()) - np.log(q / q.sum())), rtol=1e-10)
    # The planted tokens (1: class 0, 2: class 1) are the most discriminative columns.
    assert set(np.argsort(-nb_importance(x, y))[:2].tolist()) == {1, 2}


def test_nb_importance_on_more_classes_takes_each_columns_strongest_one_vs_rest_ratio():
    x = sp.csr_matrix(np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]]))
    y = np.array([0, 1, 2])
    importance = nb_importance(x, y)
    # Column 0 is all class 0's: its one-vs-rest ratio for class 0 is log((2 / 4.5) / (1 / 5.5)) (add-one, once).
    assert importance[0] == pytest.approx(np.log((2 / 4.5) / (1 / 5.5)))
    assert importance[0] == pytest.approx(importance[1])  # column 1 is class 1's alone, by symmetry
    assert importance[2] < importance[0]  # spread over every class: the least discriminative
    assert np.all(importance >= 0)


def test_the_fold_holds_with_the_naive_bayes_block_and_no_lsa():
    counts, y = separable(120)
    stats = corpus_stats(counts, components=0, seed=0)
    assert stats.basis.shape[1] == 0
    kernel, bias, _ = solve(counts, y, stats, ModelConfig(family="linear", linear_c=4.0, linear_nb_scale=2.0), seed=0)
    x = tfidf(counts, stats.idf)
    augmented = sp.hstack([x, x @ sp.diags(2.0 * nb_importance(x, y))], format="csr")
    reference = binary_reference().fit(augmented, y)
    np.testing.assert_allclose(
        np.asarray(x @ kernel).ravel() + bias[0], reference.decision_function(augmented), rtol=1e-4, atol=1e-4
    )


def test_the_environment_sets_the_nb_scale_and_refuses_a_negative_one():
    from alloop.config import trainer_from_env

    assert trainer_from_env({}).model.linear_nb_scale == 2.0
    assert trainer_from_env({"ALLOOP_NB_SCALE": "0"}).model.linear_nb_scale == 0.0
    with pytest.raises(ValueError, match="^ALLOOP_NB_SCALE must be at least 0, got -0.5$"):
        trainer_from_env({"ALLOOP_NB_SCALE": "-0.5"})


def test_nb_scale_must_be_a_non_negative_number():
    with pytest.raises(ValueError, match="linear_nb_scale must be 0"):
        ModelConfig(family="linear", linear_nb_scale=-1.0)
    with pytest.raises(ValueError, match="linear_nb_scale must be 0"):
        ModelConfig(family="linear", linear_nb_scale=float("nan"))


def test_nb_importance_adds_the_unlabeled_rows_predicted_class_mass():
    x = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0]]))
    y = np.array([0, 1])
    unlabeled = sp.csr_matrix(np.array([[2.0, 0.0], [0.0, 4.0]]))
    predicted = np.array([[0.75, 0.25], [0.5, 0.5]])
    # Class 0's mass: [1 + 1.5, 2] + 1; class 1's: [0.5, 1 + 2] + 1 (add-one on each).
    zero, one = np.array([3.5, 3.0]), np.array([1.5, 4.0])
    expected = np.abs(np.log(zero / zero.sum()) - np.log(one / one.sum()))
    np.testing.assert_allclose(nb_importance(x, y, unlabeled, predicted), expected, rtol=1e-12)
    # No predictions: the labels alone.
    np.testing.assert_allclose(nb_importance(x, y, unlabeled, None), nb_importance(x, y), rtol=1e-12)


def test_with_a_corpus_solve_refits_on_the_importance_its_first_fit_predicts():
    """Written out independently: fit on the labels, predict the corpus, importance with its mass, fit again."""
    counts, y = separable(60, seed=1)
    corpus, _ = separable(200, seed=2)
    stats = corpus_stats(corpus, components=5, seed=0)
    config = ModelConfig(family="linear", linear_c=4.0, linear_nb_scale=2.0, linear_nb_unlabeled=0.5)
    kernel, bias, _ = solve(counts, y, stats, config, seed=0, corpus=corpus)

    x, pool = tfidf(counts, stats.idf), tfidf(corpus, stats.idf)
    w = lsa_weight(len(y), config.linear_lsa_pivot)
    first_kernel, first_bias, _ = solve(counts, y, stats, config, seed=0)  # no corpus: labels only
    positive = 1.0 / (1.0 + np.exp(-(np.asarray(pool @ first_kernel).ravel() + first_bias[0])))
    importance = nb_importance(x, y, pool, 0.5 * np.stack([1.0 - positive, positive], axis=1))
    augmented = sp.hstack([x, x @ sp.diags(2.0 * importance), sp.csr_matrix(stats.project(x) * w)], format="csr")
    reference = binary_reference().fit(augmented, y)
    np.testing.assert_allclose(
        np.asarray(x @ kernel).ravel() + bias[0], reference.decision_function(augmented), rtol=1e-4, atol=1e-4
    )
    assert not np.allclose(kernel, first_kernel)  # the corpus changed the fit


def test_the_corpus_is_ignored_with_a_zero_weight_or_without_the_nb_block():
    counts, y = separable(60, seed=1)
    corpus, _ = separable(200, seed=2)
    stats = corpus_stats(corpus, components=5, seed=0)
    unlabeled = np.ones(corpus.shape[0], dtype=bool)
    for config in (
        ModelConfig(family="linear", linear_nb_unlabeled=0.0, linear_pseudo_weight=0.0),
        ModelConfig(family="linear", linear_nb_scale=0.0, linear_pseudo_weight=0.0),
    ):
        assert not uses_corpus(config)
        with_corpus, without = solve(counts, y, stats, config, 0, corpus, unlabeled), solve(counts, y, stats, config, 0)
        np.testing.assert_array_equal(with_corpus[0], without[0])
    assert uses_corpus(ModelConfig(family="linear"))
    assert uses_corpus(ModelConfig(family="linear", linear_nb_scale=0.0))  # the pseudo-labels still read it


def test_a_corpus_works_for_n_way_problems_and_classes_without_labels():
    counts, y = separable(90, seed=3, classes=3)
    stats = corpus_stats(counts, components=4, seed=0)
    kernel, bias, _ = solve(counts, y, stats, ModelConfig(family="linear", n_classes=4), seed=0, corpus=counts)
    predicted = (np.asarray(tfidf(counts, stats.idf) @ kernel) + bias).argmax(axis=1)
    assert (predicted == y).mean() > 0.95 and bias[3] < -20  # class 3 has no label: never predicted
    two = y < 2  # two of four classes so far: one logit, the corpus' mass over those two
    kernel, bias, _ = solve(
        counts[two], y[two], stats, ModelConfig(family="linear", n_classes=4), seed=0, corpus=counts
    )
    assert ((np.asarray(tfidf(counts[two], stats.idf) @ kernel) + bias).argmax(axis=1) == y[two]).mean() > 0.95


@pytest.mark.parametrize(
    ("field", "variable", "default"),
    [("linear_nb_unlabeled", "ALLOOP_NB_UNLABELED", 1.0), ("linear_pseudo_weight", "ALLOOP_PSEUDO_WEIGHT", 0.3)],
)
def test_pool_weights_come_from_the_environment_and_must_be_non_negative_numbers(field, variable, default):
    from alloop.config import trainer_from_env

    assert getattr(trainer_from_env({}).model, field) == default
    assert getattr(trainer_from_env({variable: "0"}).model, field) == 0.0
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=f"{field} must be 0"):
            ModelConfig(family="linear", **{field: bad})


def test_pseudo_labels_weigh_each_row_by_how_far_its_top_class_stands_above_a_guess():
    two = np.array([[0.9, 0.1], [0.4, 0.6], [0.5, 0.5]])
    labels, weights = pseudo_labels(two, np.array([3, 7]), 0.5)
    assert labels.tolist() == [3, 7, 3]  # class indices, not columns
    np.testing.assert_allclose(weights, [0.5 * 0.8, 0.5 * 0.2, 0.0])
    three = np.array([[1 / 3, 1 / 3, 1 / 3], [0.1, 0.1, 0.8], [0.0, 1.0, 0.0]])
    labels, weights = pseudo_labels(three, np.arange(3), 1.0)
    assert labels.tolist()[1:] == [2, 1]
    np.testing.assert_allclose(weights, [0.0, (3 * 0.8 - 1) / 2, 1.0], atol=1e-12)


def test_pseudo_labelled_rows_join_the_last_fit_with_their_weights():
    """Written out independently (no NB block): fit the labels, predict the unlabelled rows, refit with them."""
    counts, y = separable(40, seed=1)
    corpus, _ = separable(120, seed=2)
    unlabeled = np.arange(120) % 3 != 0  # a third of the corpus is labelled elsewhere
    stats = corpus_stats(corpus, components=5, seed=0)
    config = ModelConfig(family="linear", linear_c=4.0, linear_nb_scale=0.0, linear_pseudo_weight=0.5)
    kernel, bias, loss = solve(counts, y, stats, config, seed=0, corpus=corpus, unlabeled=unlabeled)

    first_kernel, first_bias, first_loss = solve(counts, y, stats, config, seed=0)  # no corpus: no pseudo-labels
    x, rest = tfidf(counts, stats.idf), tfidf(corpus[unlabeled], stats.idf)
    positive = 1.0 / (1.0 + np.exp(-(np.asarray(rest @ first_kernel).ravel() + first_bias[0])))
    guessed = (positive > 0.5).astype(int)
    weights = 0.5 * np.abs(2.0 * positive - 1.0)
    w = lsa_weight(len(y), config.linear_lsa_pivot)  # the labels' count, not the rows'
    rows = sp.vstack([x, rest], format="csr")
    design = sp.hstack([rows, sp.csr_matrix(stats.project(rows) * w)], format="csr")
    reference = binary_reference()
    reference.fit(design, np.concatenate([y, guessed]), sample_weight=np.concatenate([np.ones(len(y)), weights]))
    np.testing.assert_allclose(
        np.asarray(rows @ kernel).ravel() + bias[0], reference.decision_function(design), rtol=1e-4, atol=1e-4
    )
    assert not np.allclose(kernel, first_kernel)
    fitted = reference.predict_proba(design[: len(y)])[np.arange(len(y)), y]
    assert loss == pytest.approx(float(-np.mean(np.log(np.clip(fitted, 1e-7, 1.0)))), rel=1e-4)  # labelled rows only


def test_a_fully_labelled_corpus_gives_no_pseudo_labels_so_the_full_data_model_is_unchanged():
    counts, y = separable(60, seed=1)
    stats = corpus_stats(counts, components=5, seed=0)
    config = ModelConfig(family="linear", linear_pseudo_weight=0.5)
    everything = solve(counts, y, stats, config, 0, counts, np.zeros(60, dtype=bool))
    off = solve(counts, y, stats, replace(config, linear_pseudo_weight=0.0), 0, counts, np.zeros(60, dtype=bool))
    np.testing.assert_array_equal(everything[0], off[0])
    with pytest.raises(ValueError, match="unlabeled marks 59 rows of a 60-row corpus"):
        solve(counts, y, stats, config, 0, counts, np.zeros(59, dtype=bool))


def test_with_the_nb_block_the_pseudo_fit_counts_the_labels_once_and_the_rest_as_predicted():
    """Written out independently: the second fit predicts the unlabelled rows; their mass and the labels' give the
    importance of the third fit, which they join as weighted rows."""
    counts, y = separable(40, seed=1)
    corpus, _ = separable(120, seed=2)
    unlabeled = np.arange(120) % 3 != 0
    stats = corpus_stats(corpus, components=5, seed=0)
    config = ModelConfig(
        family="linear", linear_c=4.0, linear_nb_scale=2.0, linear_nb_unlabeled=0.5, linear_pseudo_weight=0.5
    )
    kernel, bias, _ = solve(counts, y, stats, config, seed=0, corpus=corpus, unlabeled=unlabeled)

    second_kernel, second_bias, _ = solve(counts, y, stats, config, seed=0, corpus=corpus)  # no marks: fit two
    x, rest = tfidf(counts, stats.idf), tfidf(corpus[unlabeled], stats.idf)
    positive = 1.0 / (1.0 + np.exp(-(np.asarray(rest @ second_kernel).ravel() + second_bias[0])))
    importance = nb_importance(x, y, rest, 0.5 * np.stack([1.0 - positive, positive], axis=1))
    rows = sp.vstack([x, rest], format="csr")
    w = lsa_weight(len(y), config.linear_lsa_pivot)
    design = sp.hstack([rows, rows @ sp.diags(2.0 * importance), sp.csr_matrix(stats.project(rows) * w)], format="csr")
    weights = np.concatenate([np.ones(len(y)), 0.5 * np.abs(2.0 * positive - 1.0)])
    reference = binary_reference()
    reference.fit(design, np.concatenate([y, (positive > 0.5).astype(int)]), sample_weight=weights)
    np.testing.assert_allclose(
        np.asarray(rows @ kernel).ravel() + bias[0], reference.decision_function(design), rtol=1e-4, atol=1e-4
    )


def test_pseudo_labels_work_for_n_way_problems_and_keep_to_the_labelled_classes():
    counts, y = separable(120, seed=3, classes=4)
    stats = corpus_stats(counts, components=4, seed=0)
    config = ModelConfig(family="linear", n_classes=4, linear_pseudo_weight=1.0)
    off = replace(config, linear_pseudo_weight=0.0)
    three = np.flatnonzero(y < 3)[:45]  # classes 0-2 labelled, class 3 not yet
    unlabeled = ~np.isin(np.arange(120), three)
    kernel, bias, _ = solve(counts[three], y[three], stats, config, seed=0, corpus=counts, unlabeled=unlabeled)
    predicted = (np.asarray(tfidf(counts, stats.idf) @ kernel) + bias).argmax(axis=1)
    assert (predicted[y < 3] == y[y < 3]).mean() > 0.95 and bias[3] < -20  # no label, no pseudo-label
    assert not np.allclose(kernel, solve(counts[three], y[three], stats, off, 0, counts, unlabeled)[0])
    # Classes 1 and 3 of 4 so far: the pseudo-labels are those classes' indices, not the columns' 0 and 1.
    two = np.flatnonzero(np.isin(y, [1, 3]))[:30]
    unlabeled = ~np.isin(np.arange(120), two)
    kernel, bias, _ = solve(counts[two], y[two], stats, config, seed=0, corpus=counts, unlabeled=unlabeled)
    assert kernel.shape == (40, 4) and bias[0] < -20 and bias[2] < -20
    assert np.all(kernel[:, [0, 1, 2]] == 0)  # one logit: class 3 against class 1
    assert not np.allclose(kernel, solve(counts[two], y[two], stats, off, 0, counts, unlabeled)[0])


def test_cross_validation_chooses_settings_from_the_labels_and_the_fold_still_holds(caplog):
    counts, y = separable(rows=90, classes=3)
    stats = corpus_stats(counts, components=5, seed=0)
    config = ModelConfig(n_classes=3, linear_select="folds", linear_select_folds=3)
    with caplog.at_level("INFO", logger="alloop.models.linear"):
        kernel, bias, _ = solve(counts, y, stats, config, seed=0)
    assert "settings chosen by 3-fold cross-validation on 90 labels" in caplog.text
    predicted = (tfidf(counts, stats.idf) @ kernel + bias).argmax(axis=1)
    assert (predicted == y).mean() > 0.95  # the separable tokens are found whatever the grid picked
    from alloop.models.linear import choose_settings

    choice, _ = choose_settings(tfidf(counts, stats.idf), y, stats, config, seed=0)
    assert choice.cv_accuracy > 0.9 and choice.c in (2.0, 8.0, 32.0)
    off, _ = choose_settings(tfidf(counts, stats.idf), y, stats, replace(config, linear_select="configured"), seed=0)
    assert (off.c, off.nb_scale, off.lsa) == (config.linear_c, config.linear_nb_scale, True)  # as configured
    # "validation" without a validation split to score on: as configured, not cross-validated
    assert choose_settings(tfidf(counts, stats.idf), y, stats, replace(config, linear_select="validation"), 0)[0] == off


def predicted_classes(fit, counts: sp.csr_matrix, idf) -> np.ndarray:
    logits = np.asarray(tfidf(counts, idf) @ fit[0]) + fit[1]
    return (logits[:, 0] > 0).astype(int) if fit[0].shape[1] == 1 else logits.argmax(axis=1)


@pytest.mark.parametrize("classes", [2, 3])
def test_the_validation_split_chooses_the_blocks_and_a_tie_goes_to_the_simplest_fit(classes):
    counts, y = separable(90, classes=classes)
    stats = corpus_stats(counts, components=4, seed=0)
    val = counts_matrix(80, 40, seed=5)  # rows without a class token: fits with different blocks disagree on them
    base = ModelConfig(
        family="linear",
        n_classes=classes,
        linear_c=4.0,
        linear_nb_scale=2.0,
        linear_pseudo_weight=0.0,
        linear_select="configured",
    )
    variants = {
        (nb, lsa): solve(counts, y, stats, replace(base, linear_nb_scale=nb, linear_lsa_components=4 * lsa), 0)
        for lsa in (0, 1)
        for nb in (0.0, 2.0)
    }
    answers = {key: predicted_classes(fit, val, stats.idf) for key, fit in variants.items()}
    assert len({tuple(a) for a in answers.values()}) == 4  # else the split could not tell the blocks apart
    choosing = replace(base, linear_select="validation", linear_lsa_components=4)
    for key, truth in answers.items():  # a validation split that each fit in turn answers perfectly
        chosen = solve(counts, y, stats, choosing, 0, validation=(val, truth))
        np.testing.assert_array_equal(chosen[0], variants[key][0])
        np.testing.assert_array_equal(chosen[1], variants[key][1])
    everyone = solve(counts, y, stats, choosing, 0, validation=(counts, y))  # all four fits score 100% here
    np.testing.assert_array_equal(everyone[0], variants[0.0, 0][0])


def test_pseudo_labels_stay_only_where_the_validation_split_scores_them_better(caplog):
    counts, y = separable(60)
    corpus = sp.vstack([counts, counts_matrix(60, 40, seed=3)], format="csr")
    stats = corpus_stats(corpus, components=4, seed=0)
    unlabeled = np.r_[np.zeros(60, dtype=bool), np.ones(60, dtype=bool)]
    base = ModelConfig(
        family="linear", linear_c=4.0, linear_nb_scale=0.0, linear_lsa_components=0, linear_select="configured"
    )
    with_pseudo = solve(counts, y, stats, base, 0, corpus, unlabeled)
    without = solve(counts, y, stats, replace(base, linear_pseudo_weight=0.0), 0, corpus, unlabeled)
    val = counts_matrix(80, 40, seed=5)
    kept, left = predicted_classes(with_pseudo, val, stats.idf), predicted_classes(without, val, stats.idf)
    assert (kept != left).any()
    choosing = replace(base, linear_select="validation")
    for truth, expected in ((kept, with_pseudo), (left, without)):
        with caplog.at_level("INFO", logger="alloop.models.linear"):
            chosen = solve(counts, y, stats, choosing, 0, corpus, unlabeled, validation=(val, truth))
        np.testing.assert_array_equal(chosen[0], expected[0])
        assert chosen[2] == expected[2]
    assert "pseudo-labelled rows kept" in caplog.text and "pseudo-labelled rows left out" in caplog.text


def test_the_model_family_is_one_of_the_families_and_blank_means_the_default():
    from alloop.config import trainer_from_env

    assert trainer_from_env({"ALLOOP_MODEL_FAMILY": "bilstm"}).model.family == "bilstm"
    assert trainer_from_env({"ALLOOP_MODEL_FAMILY": " "}).model.family == ModelConfig().family
    with pytest.raises(ValueError, match="ALLOOP_MODEL_FAMILY='svm'; choose one of bilstm, linear"):
        trainer_from_env({"ALLOOP_MODEL_FAMILY": "svm"})


def test_the_selection_comes_from_the_environment_and_a_bad_one_names_the_variable():
    from alloop.config import trainer_from_env

    assert trainer_from_env({}).model.linear_select == "validation"
    assert trainer_from_env({"ALLOOP_LINEAR_SELECT": "folds"}).model.linear_select == "folds"
    with pytest.raises(ValueError, match="ALLOOP_LINEAR_SELECT='cv'; choose one of"):
        trainer_from_env({"ALLOOP_LINEAR_SELECT": "cv"})
    with pytest.raises(ValueError, match="ALLOOP_LINEAR_SELECT_FOLDS"):
        trainer_from_env({"ALLOOP_LINEAR_SELECT_FOLDS": "1"})


def test_with_min_df_2_a_token_of_one_text_only_stays_out_of_the_vocabulary():
    from alloop.models.linear import build_vectorizer, frequent_columns

    counts = sp.csr_matrix(np.array([[1, 1, 0, 2], [0, 1, 0, 1], [3, 0, 1, 0]], dtype=np.float32))
    assert frequent_columns(counts, 2).tolist() == [0, 1, 3]  # column 0 (out of vocabulary) always stays
    texts = ["good film here", "good plot there", "rare words once"]
    words = build_vectorizer(ModelConfig(linear_max_tokens=1000, linear_min_df=2), texts).get_vocabulary()
    assert "good" in words and "rare" not in words and "good film" not in words and words[0] == "[UNK]"
    every = build_vectorizer(ModelConfig(linear_max_tokens=1000, linear_min_df=1), texts).get_vocabulary()
    assert "rare" in every and "good film" in every


def test_class_shares_are_smoothed_over_the_configured_classes():
    np.testing.assert_allclose(class_shares([0, 0, 1], 3), [3 / 6, 2 / 6, 1 / 6])
    np.testing.assert_allclose(class_shares([], 2), [0.5, 0.5])


def test_prior_shift_moves_the_odds_from_the_labels_shares_to_the_targets():
    y = np.array([0, 0, 0, 1])  # labelled 3:1, the target 1:1: class 1's odds go up threefold
    np.testing.assert_allclose(prior_shift(y, np.array([0.5, 0.5])), [np.log(3.0)])
    y = np.array([0, 0, 1, 2, 2, 2, 2, 2])
    shift = prior_shift(y, np.array([0.25, 0.25, 0.25, 0.25]))  # class 3 has no label: the rest share the target
    np.testing.assert_allclose(shift, np.log(np.array([1 / 3, 1 / 3, 1 / 3]) / np.array([2 / 8, 1 / 8, 5 / 8])))


@pytest.mark.parametrize("classes", [2, 4])
def test_a_validation_prior_moves_only_the_intercepts(classes):
    counts, y = separable(90, classes=3)
    skewed = np.where(np.arange(90) % 5 == 0, 1, np.where(y == 2, 0, y))  # 48 of class 0, 42 of class 1
    y = skewed if classes == 2 else np.where(np.arange(90) % 9 == 1, 0, y)  # 40, 20, 30 of classes 0, 1, 2
    stats = corpus_stats(counts, components=4, seed=0)
    config = ModelConfig(family="linear", n_classes=classes, linear_c=4.0, linear_class_prior="validation")
    target = np.full(classes, 1.0 / classes)
    kernel, bias, loss = solve(counts, y, stats, config, seed=0, target_prior=target)
    as_labelled = solve(counts, y, stats, config, 0, target_prior=None)
    ignored = solve(counts, y, stats, replace(config, linear_class_prior="labels"), 0, target_prior=target)
    for same in (as_labelled, ignored):
        np.testing.assert_array_equal(same[0], kernel)
        assert same[2] == loss
    np.testing.assert_array_equal(ignored[1], as_labelled[1])
    present = np.unique(y)
    moved = bias - as_labelled[1]
    expected = prior_shift(y, target)
    np.testing.assert_allclose(moved if classes == 2 else moved[present], expected, rtol=1e-5, atol=1e-5)
    if classes > 2:
        assert bias[3] == as_labelled[1][3]  # a class without labels stays improbable


def test_the_class_prior_comes_from_the_environment_and_a_bad_one_names_the_variable():
    from alloop.config import trainer_from_env

    assert trainer_from_env({}).model.linear_class_prior == ModelConfig().linear_class_prior
    assert trainer_from_env({"ALLOOP_CLASS_PRIOR": "labels"}).model.linear_class_prior == "labels"
    with pytest.raises(ValueError, match="ALLOOP_CLASS_PRIOR='flat'; choose one of labels, validation"):
        trainer_from_env({"ALLOOP_CLASS_PRIOR": "flat"})
    with pytest.raises(ValueError, match="linear_class_prior must be one of"):
        ModelConfig(linear_class_prior="flat")


def test_the_prior_shift_counts_what_the_fit_saw_pseudo_labelled_rows_included():
    y = np.array([0, 0, 1, 1])
    # Balanced labels, but pseudo-labelled rows of class 0 weighing 2 in all: the fit saw class 0 at 4 of 6.
    shift = prior_shift(np.array([0, 0, 1, 1, 0, 0]), np.array([0.5, 0.5]), np.array([1, 1, 1, 1, 1.5, 0.5]))
    np.testing.assert_allclose(shift, [np.log(0.5 / (2 / 6)) - np.log(0.5 / (4 / 6))])
    np.testing.assert_allclose(prior_shift(y, np.array([0.5, 0.5])), [0.0])

    counts, labels = separable(60)
    corpus = sp.vstack([counts, counts_matrix(60, 40, seed=3)], format="csr")
    stats = corpus_stats(corpus, components=4, seed=0)
    config = ModelConfig(family="linear", linear_c=4.0, linear_class_prior="validation")
    unlabeled = np.r_[np.zeros(60, dtype=bool), np.ones(60, dtype=bool)]
    _, moved, _ = solve(counts, labels, stats, config, 0, corpus, unlabeled, np.array([0.5, 0.5]))
    _, kept, _ = solve(counts, labels, stats, replace(config, linear_class_prior="labels"), 0, corpus, unlabeled)
    assert moved[0] != kept[0]  # balanced labels, yet the pseudo-labelled rows tilted the fit: the shift undoes it
