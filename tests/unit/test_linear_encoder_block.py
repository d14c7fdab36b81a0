"""The sentence encoder's block in the linear fit: folded into the kernel after the vocabulary's columns (the served
model must score exactly what the fit optimized), joined only where the held-out data says it pays, and refused
when vectors do not come for every row they stand beside."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp

from alloop.models.config import ModelConfig
from alloop.models.linear import Vectors, corpus_stats, join, lsa_weight, predict_proba, solve, tfidf
from tests.unit.test_linear_solve import augment, binary_reference, counts_matrix, separable

WIDTH = 8  # sentence vectors' width in these tests


def unit_rows(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def informative_vectors(y: np.ndarray, seed: int) -> np.ndarray:
    """Vectors whose first column says the class: a block the fit can use where the counts say nothing."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(0.0, 0.3, size=(len(y), WIDTH))
    vectors[:, 0] += np.where(y == 1, 1.0, -1.0)
    return unit_rows(vectors)


def noise_counts(rows: int, seed: int) -> sp.csr_matrix:
    return counts_matrix(rows, 40, seed)  # no class token: the counts alone cannot tell the classes apart


BASE = ModelConfig(
    family="linear",
    linear_c=4.0,
    linear_nb_scale=0.0,
    linear_lsa_components=0,
    linear_pseudo_weight=0.0,
    linear_encoder_scale=2.0,
)


def assert_scores_what_the_fit_optimized(x, vectors, y, kernel, bias, design) -> None:  # type: ignore[no-untyped-def]
    """The folded kernel on ``[tfidf, vectors]`` gives the decision values of an independent fit on ``design``."""
    reference = binary_reference().fit(design, y)
    np.testing.assert_allclose(
        np.asarray(join(x, vectors) @ kernel).ravel() + bias[0],
        reference.decision_function(design),
        rtol=1e-4,
        atol=1e-4,
    )


def test_the_fold_scores_exactly_what_the_fit_optimized_on_the_joined_rows():
    rng = np.random.default_rng(3)
    y = (rng.random(120) < 0.5).astype(int)
    counts, vectors = noise_counts(120, 1), informative_vectors(y, 1)
    stats = corpus_stats(counts, components=4, seed=0)
    config = replace(BASE, linear_select="configured")
    kernel, bias, _ = solve(counts, y, stats, config, 0, vectors=Vectors(vectors))
    assert kernel.shape == (40 + WIDTH, 1)  # the vocabulary's columns, then the vectors'
    x = tfidf(counts, stats.idf)
    design = sp.hstack([x, sp.csr_matrix(vectors * 2.0)], format="csr")  # written out independently of solve()
    assert_scores_what_the_fit_optimized(x, vectors, y, kernel, bias, design)
    probs = predict_proba(counts, stats.idf, kernel, bias, vectors)
    assert (probs.argmax(axis=1) == y).mean() > 0.95
    with pytest.raises(ValueError, match="need their sentence vectors"):
        predict_proba(counts, stats.idf, kernel, bias)


def test_the_fold_holds_with_every_block_at_once():
    rng = np.random.default_rng(8)
    y = (rng.random(150) < 0.5).astype(int)
    counts, vectors = noise_counts(150, 9), informative_vectors(y, 9)
    stats = corpus_stats(counts, components=5, seed=0)
    config = replace(BASE, linear_select="configured", linear_nb_scale=2.0, linear_lsa_components=5)
    kernel, bias, _ = solve(counts, y, stats, config, 0, vectors=Vectors(vectors))
    x = tfidf(counts, stats.idf)
    w = lsa_weight(len(y), config.linear_lsa_pivot)
    design = sp.hstack([augment(x, y, stats, 2.0, w), sp.csr_matrix(vectors * 2.0)], format="csr")  # [x, nb, lsa, e*v]
    assert_scores_what_the_fit_optimized(x, vectors, y, kernel, bias, design)


def test_the_validation_split_joins_the_block_only_where_it_pays():
    rng = np.random.default_rng(4)
    y, y_val = (rng.random(100) < 0.5).astype(int), (rng.random(60) < 0.5).astype(int)
    counts, val = noise_counts(100, 2), noise_counts(60, 3)
    stats = corpus_stats(counts, components=4, seed=0)
    config = replace(BASE, linear_select="validation")
    useful = Vectors(informative_vectors(y, 2), validation=informative_vectors(y_val, 3))
    kernel, _, _ = solve(counts, y, stats, config, 0, validation=(val, y_val), vectors=useful)
    assert kernel.shape[0] == 40 + WIDTH
    # Counts that separate the classes and vectors that say nothing: both fits score 100% on the training rows, and
    # the tie goes to the simpler fit, without the block.
    tokens, labels = separable(100)
    noise = unit_rows(rng.normal(size=(100, WIDTH)))
    kernel, _, _ = solve(
        tokens, labels, stats, config, 0, validation=(tokens, labels), vectors=Vectors(noise, validation=noise)
    )
    assert kernel.shape[0] == 40
    kernel, _, _ = solve(
        counts, y, stats, replace(config, linear_encoder_scale=0.0), 0, validation=(val, y_val), vectors=useful
    )
    assert kernel.shape[0] == 40  # a weight of 0: the block never joins


def test_cross_validation_on_the_labels_chooses_the_block_too():
    rng = np.random.default_rng(5)
    y = (rng.random(160) < 0.5).astype(int)
    counts = noise_counts(160, 4)
    stats = corpus_stats(counts, components=4, seed=0)
    config = replace(BASE, linear_select="folds", linear_select_folds=4)
    kernel, _, _ = solve(counts, y, stats, config, 0, vectors=Vectors(informative_vectors(y, 4)))
    assert kernel.shape[0] == 40 + WIDTH


def test_pseudo_labelled_rows_bring_their_vectors():
    rng = np.random.default_rng(6)
    y = (rng.random(80) < 0.5).astype(int)
    pool_y = (rng.random(200) < 0.5).astype(int)
    counts, pool = noise_counts(80, 5), noise_counts(200, 6)
    stats = corpus_stats(pool, components=4, seed=0)
    config = replace(BASE, linear_select="configured", linear_pseudo_weight=0.3)
    vectors = Vectors(informative_vectors(y, 5), informative_vectors(pool_y, 6))
    unlabeled = np.ones(200, dtype=bool)
    kernel, bias, _ = solve(counts, y, stats, config, 0, pool, unlabeled, vectors=vectors)
    assert kernel.shape[0] == 40 + WIDTH
    assert (predict_proba(pool, stats.idf, kernel, bias, vectors.corpus).argmax(axis=1) == pool_y).mean() > 0.9
    with pytest.raises(ValueError, match="not for the corpus rows"):
        solve(counts, y, stats, config, 0, pool, unlabeled, vectors=Vectors(vectors.train))


def test_vectors_must_come_for_every_row():
    y = np.arange(40) % 2
    counts = noise_counts(40, 7)
    stats = corpus_stats(counts, components=4, seed=0)
    with pytest.raises(ValueError, match="39 sentence vectors for 40 labelled rows"):
        solve(counts, y, stats, BASE, 0, vectors=Vectors(informative_vectors(y, 7)[:39]))
    with pytest.raises(ValueError, match="validation rows need a sentence vector each"):
        solve(counts, y, stats, BASE, 0, validation=(counts, y), vectors=Vectors(informative_vectors(y, 7)))
