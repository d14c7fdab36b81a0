"""The linear family's fit: L2 logistic regression on ``[tfidf, s * importance * tfidf, w * lsa]`` and optional
pseudo-labelled pool rows, solved exactly and folded into the served Dense kernel (see the package docstring)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from alloop.models import linear_selection as selection
from alloop.models.config import ModelConfig
from alloop.models.linear.corpus import CorpusStats, tfidf

log = logging.getLogger(__name__)

_ABSENT_CLASS_BIAS = -30.0  # a class with no label yet gets probability ~e-13, not a random logit


def predict_proba(
    counts: sp.csr_matrix,
    idf: npt.NDArray[np.float32],
    kernel: npt.NDArray[np.float32],
    bias: npt.NDArray[np.float32],
    vectors: npt.NDArray[np.floating] | None = None,
) -> npt.NDArray[np.float32]:
    """What the served model outputs for these counts (and, for a kernel with the encoder block, these sentence
    ``vectors``), as (n, classes) probabilities, computed sparsely."""
    rows = tfidf(counts, idf)
    if kernel.shape[0] > rows.shape[1]:
        if vectors is None:
            raise ValueError("this kernel has the encoder block: its rows need their sentence vectors")
        rows = join(rows, vectors)
    return probabilities(np.asarray(rows @ kernel, dtype=np.float64) + bias).astype(np.float32)


def probabilities(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """(n, classes) probabilities from one sigmoid logit per row (two classes) or one softmax logit per class."""
    if logits.shape[1] == 1:
        positive = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        return np.stack([1.0 - positive, positive], axis=1)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def lsa_weight(labels: int, pivot: int) -> float:
    return min(1.0, math.sqrt(pivot / max(1, labels)))


NB_SMOOTHING = 1.0  # the add-one of a naive-Bayes log-count ratio, here on TF-IDF mass rather than counts


def nb_importance(
    x: sp.csr_matrix,
    y: npt.NDArray[np.int64],
    unlabeled: sp.csr_matrix | None = None,
    predicted: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """How strongly each column separates the labelled classes: the largest one-vs-rest naive-Bayes log-count ratio.

    Why: with one L2 penalty for every column, a bigram seen in three reviews of one class is held back as hard as
    one seen in three hundred. Scaling a copy of the TF-IDF block by this importance lowers the penalty on columns
    the labels already call discriminative (Wang & Manning's NBSVM, 2012); the plain block stays, so a column the
    ratio misjudges at a few hundred labels is still learnable. On two classes this is ``|log r|`` of NBSVM (the
    fit picks the sign).

    ``unlabeled`` TF-IDF rows with ``predicted`` class probabilities (columns in the order of ``np.unique(y)``) add
    their expected class mass: labels that active learning chose sit near the boundary and flatten the ratios, and
    the pool's predicted mass restores them (``linear_nb_unlabeled``).
    """
    classes = np.unique(y)
    onehot = sp.csr_matrix((y[:, None] == classes[None, :]).astype(np.float64).T)
    mass = np.asarray((onehot @ x).todense(), dtype=np.float64)
    if unlabeled is not None and predicted is not None:
        mass += np.asarray((sp.csr_matrix(np.asarray(predicted, dtype=np.float64).T) @ unlabeled).todense())
    mass += NB_SMOOTHING
    total = mass.sum(axis=0)
    importance = np.zeros(x.shape[1])
    for i in range(len(classes)):
        rest = total - mass[i] - NB_SMOOTHING * (len(classes) - 2)  # the other classes' mass, smoothed once
        ratio = np.log(mass[i] / mass[i].sum()) - np.log(rest / rest.sum())
        np.maximum(importance, np.abs(ratio), out=importance)
    return importance


def nb_uses_corpus(config: ModelConfig) -> bool:
    """Whether the naive-Bayes importance counts the corpus' predicted class mass."""
    return config.linear_nb_scale > 0 and config.linear_nb_unlabeled > 0


def uses_corpus(config: ModelConfig) -> bool:
    """Whether :func:`solve` has a use for the corpus' count vectors."""
    return nb_uses_corpus(config) or config.linear_pseudo_weight > 0


def pseudo_labels(
    predicted: npt.NDArray[np.float64], classes: npt.NDArray[np.int64], weight: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Each unlabelled row's most probable class and its weight as a training row: ``weight`` scaled by how far
    the row's top probability stands above a uniform guess (``(k p - 1) / (k - 1)`` over ``k`` classes, so
    ``2p - 1`` on two), 0 for a row the model cannot call.

    Why soft rather than a confidence cut: the rows active learning leaves unlabelled are the easy ones, and what
    the labelled set lacks is exactly their weight in the fit; a cut throws away the middle of that mass, and a
    weight that fades to 0 at the boundary keeps the model's coin-flips from teaching it anything.
    """
    k = predicted.shape[1]
    top = predicted.max(axis=1)
    weights = weight * np.clip((k * top - 1.0) / (k - 1.0), 0.0, 1.0)
    return classes[predicted.argmax(axis=1)], weights


Validation = tuple[sp.csr_matrix, Sequence[int]]
"""The validation split's count vectors and labels, for :func:`solve` to choose its settings on."""

Dense = npt.NDArray[np.floating]


class Vectors(NamedTuple):
    """A frozen sentence encoder's vectors (one row per text, unit length) of the rows :func:`solve` is given: the
    labelled rows, the corpus rows and the validation rows, in their order."""

    train: Dense
    corpus: Dense | None = None
    validation: Dense | None = None


def join(rows: sp.csr_matrix, vectors: Dense | None) -> sp.csr_matrix:
    """TF-IDF rows with their sentence vectors appended (the input a kernel with an encoder block multiplies)."""
    if vectors is None:
        return rows
    return sp.hstack([rows, sp.csr_matrix(np.asarray(vectors, dtype=np.float32))], format="csr")


def solve(
    counts: sp.csr_matrix,
    labels: Sequence[int],
    stats: CorpusStats,
    config: ModelConfig,
    seed: int,
    corpus: sp.csr_matrix | None = None,
    unlabeled: npt.NDArray[np.bool_] | None = None,
    target_prior: npt.NDArray[np.float64] | None = None,
    validation: Validation | None = None,
    vectors: Vectors | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], float]:
    """The Dense layer's (kernel, bias) for labelled rows, and the fit's training log-loss: L2 logistic regression on
    ``[tfidf, s * importance * tfidf, w * lsa, e * vectors]``, folded into one kernel over the TF-IDF columns (and
    the vectors' columns after them).

    ``vectors`` (a frozen sentence encoder's, :class:`Vectors`) offer the encoder block; it joins when the
    selection says so (``config.linear_encoder_scale`` is its weight ``e``), and the kernel then has the vectors'
    width more rows than the vocabulary: the served model's input is ``[counts, vector]`` (see
    :func:`alloop.models.linear.layer.build_classifier`). Otherwise the kernel covers the vocabulary alone.

    Which blocks join comes from :func:`choose_settings` (with ``config.linear_select == "validation"``, the
    ``validation`` split decides; without one, every configured block joins).

    ``corpus`` (count vectors of the pools' text) lets the naive-Bayes importance count the corpus' predicted class
    mass too (``config.linear_nb_unlabeled``): a first fit on the labels alone predicts it, and a second fit uses the
    importance it gives. Labelled rows may be in the corpus: their fitted probabilities are near their labels, so
    they only count a little more.

    ``unlabeled`` marks the corpus rows no label covers. With ``config.linear_pseudo_weight`` they join a third fit
    as pseudo-labelled rows (:func:`pseudo_labels`, as the second fit predicts them). That fit's importance counts
    the labels once and these rows' mass as the second fit predicts it. Why: labels that active learning chose are
    the hard cases, and the easy mass they leave out tilts the fit (Wang et al.'s CEAL, 2016). The third fit is
    returned unless the validation split chooses and scores the second at least as well: pseudo-labels from a weak
    model teach it its own mistakes. A fully labelled
    corpus has no such rows, so the full-data model is the second fit's. Without ``unlabeled`` or with a weight of
    0, the second fit is returned.

    ``target_prior`` (class shares over the configured classes: the validation split's, :func:`class_shares`) moves
    the intercepts to those shares when ``config.linear_class_prior`` is ``"validation"`` (:func:`prior_shift`).

    Binary problems give a one-column kernel for the sigmoid output; N-way ones a multinomial fit whose columns
    follow the class indices (a class with no label yet gets a zero column and a very negative bias).
    """
    y = np.asarray(labels, dtype=np.int64)
    present = np.unique(y)
    outside = present[(present < 0) | (present >= config.n_classes)]
    if len(outside):
        raise ValueError(f"labels {outside.tolist()} are outside the {config.n_classes} configured classes")
    if len(present) < 2:
        raise ValueError(
            f"the training set holds labels of one class only ({present.tolist()}); a classifier needs labels of at "
            "least two classes"
        )
    x = tfidf(counts, stats.idf)
    if vectors is not None and config.linear_encoder_scale <= 0:
        vectors = None
    if vectors is not None:
        _check_vectors(vectors, x.shape[0], corpus, validation)
    shift_to = target_prior if config.linear_class_prior == "validation" else None
    held = (
        _held_out(validation, stats, present, shift_to, vectors.validation if vectors is not None else None)
        if config.linear_select == "validation"
        else None
    )
    choice, first = choose_settings(x, y, stats, config, seed, held, vectors.train if vectors is not None else None)
    config = replace(config, linear_c=choice.c, linear_nb_scale=choice.nb_scale)
    if not choice.encoder:
        vectors = None  # the block stays out: the kernel covers the vocabulary alone
    dense = _Block(vectors.train, choice.encoder) if vectors is not None else None
    w = lsa_weight(len(y), config.linear_lsa_pivot) if choice.lsa else 0.0
    lsa = sp.csr_matrix(stats.project(x) * w)
    scale = config.linear_nb_scale * nb_importance(x, y) if config.linear_nb_scale > 0 else None
    folded, intercept, train_loss = first or _fit(x, y, lsa, w, scale, stats, config, seed, dense=dense)
    fitted_rows: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64] | None] = (y, None)  # the returned fit's rows

    def pooled_scale(rows: sp.csr_matrix, predicted: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return config.linear_nb_scale * nb_importance(x, y, rows, config.linear_nb_unlabeled * predicted)

    pool = tfidf(corpus, stats.idf) if corpus is not None and corpus.shape[0] and uses_corpus(config) else None
    pool_vectors = vectors.corpus if vectors is not None else None
    if pool is not None and nb_uses_corpus(config):
        scale = pooled_scale(pool, _predicted(join(pool, pool_vectors), folded, intercept))
        folded, intercept, train_loss = _fit(x, y, lsa, w, scale, stats, config, seed, dense=dense)
    if pool is not None and unlabeled is not None and config.linear_pseudo_weight > 0:
        if len(unlabeled) != pool.shape[0]:
            raise ValueError(f"unlabeled marks {len(unlabeled)} rows of a {pool.shape[0]}-row corpus")
        rest_rows = np.flatnonzero(unlabeled)
        rest = pool[rest_rows]
        rest_vectors = pool_vectors[rest_rows] if pool_vectors is not None else None
        if rest.shape[0]:
            predicted = _predicted(join(rest, rest_vectors), folded, intercept)
            if nb_uses_corpus(config):  # the labels counted once, the rest as the better fit predicts it
                scale = pooled_scale(rest, predicted)
            guessed, weights = pseudo_labels(predicted, present, config.linear_pseudo_weight)
            keep = np.flatnonzero(weights > 0)
            extra = sp.csr_matrix(rest[keep])
            pseudo = PseudoRows(
                extra,
                sp.csr_matrix(stats.project(extra) * w),
                guessed[keep],
                weights[keep],
                rest_vectors[keep] if rest_vectors is not None else None,
            )
            third = _fit(x, y, lsa, w, scale, stats, config, seed, pseudo, dense)
            rows = (np.concatenate([y, guessed[keep]]), np.concatenate([np.ones(len(y)), weights[keep]]))
            without = held(folded, intercept, y, None) if held is not None else -math.inf
            with_pseudo = held(third[0], third[1], *rows) if held is not None else math.inf
            if with_pseudo > without:
                (folded, intercept, train_loss), fitted_rows = third, rows
            log.info(
                "pseudo-labelled rows %s: validation accuracy %.4f with them, %.4f without",
                "kept" if with_pseudo > without else "left out",
                with_pseudo,
                without,
            )
    vocabulary = folded.shape[1]  # the TF-IDF columns, and the vectors' after them where the encoder block joined
    if shift_to is not None:
        intercept = intercept + prior_shift(fitted_rows[0], shift_to, fitted_rows[1])
    if config.n_classes == 2:
        return folded.T.astype(np.float32), intercept.astype(np.float32), train_loss
    kernel = np.zeros((vocabulary, config.n_classes), dtype=np.float32)
    bias = np.full(config.n_classes, _ABSENT_CLASS_BIAS, dtype=np.float32)
    if len(folded) == 1:  # two classes seen so far: one logit for the second against the first
        kernel[:, present[1]] = folded[0]
        bias[present] = [0.0, float(intercept[0])]
    else:
        kernel[:, present] = folded.T
        bias[present] = intercept
    return kernel, bias, train_loss


Fit = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float]
"""What :func:`_fit` returns: weights folded onto the TF-IDF columns, intercepts, training log-loss."""
HeldOut = Callable[
    [npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64], "npt.NDArray[np.float64] | None"], float
]
"""``(folded, intercept, fitted labels, their row weights) -> accuracy on the validation split``, the intercepts
moved to the target class shares first, as the returned model's will be."""


def _held_out(
    validation: Validation | None,
    stats: CorpusStats,
    present: npt.NDArray[np.int64],
    shift_to: npt.NDArray[np.float64] | None,
    vectors: Dense | None = None,
) -> HeldOut | None:
    """``vectors``: the validation rows' sentence vectors, which a fit with the encoder block needs to be scored."""
    if validation is None or validation[0].shape[0] == 0:
        return None
    tfidf_rows, truth = tfidf(validation[0], stats.idf), np.asarray(validation[1], dtype=np.int64)
    with_vectors = join(tfidf_rows, vectors)

    def accuracy(
        folded: npt.NDArray[np.float64],
        intercept: npt.NDArray[np.float64],
        y: npt.NDArray[np.int64],
        weights: npt.NDArray[np.float64] | None,
    ) -> float:
        if shift_to is not None:
            intercept = intercept + prior_shift(y, shift_to, weights)
        rows = with_vectors if folded.shape[1] > tfidf_rows.shape[1] else tfidf_rows
        return float((present[_predicted(rows, folded, intercept).argmax(axis=1)] == truth).mean())

    return accuracy


def choose_settings(
    x: sp.csr_matrix,
    y: npt.NDArray[np.int64],
    stats: CorpusStats,
    config: ModelConfig,
    seed: int,
    held: HeldOut | None = None,
    vectors: Dense | None = None,
) -> tuple[selection.Choice, Fit | None]:
    """The fit's C and blocks, and the labels-only fit with them where choosing made it. ``vectors`` (the labelled
    rows' sentence vectors) add the encoder block to the grid, with and without it.

    ``config.linear_select``: ``"validation"`` with a ``held`` scorer, every combination of the configured blocks
    fitted on the labels at ``config.linear_c`` and scored on the validation split; ``"folds"``, k-fold
    cross-validation on the labels over C and the blocks (alloop.models.linear_selection), each fold's naive-Bayes
    importance from its own training rows so that no held-out label shapes the features it is scored with;
    otherwise the configured settings."""
    encoder_scale = config.linear_encoder_scale if vectors is not None else 0.0
    configured = selection.Choice(
        config.linear_c, config.linear_nb_scale, config.linear_lsa_components > 0, encoder=encoder_scale
    )
    projected = stats.project(x) if config.linear_lsa_components > 0 else None

    def fit(choice: selection.Choice, train: npt.NDArray[np.int64] | slice) -> Fit:
        rows, labels = x[train], y[train]
        w = lsa_weight(rows.shape[0], config.linear_lsa_pivot) if choice.lsa and projected is not None else 0.0
        lsa = (
            sp.csr_matrix(projected[train] * w)
            if w and projected is not None
            else sp.csr_matrix((rows.shape[0], stats.basis.shape[1]))
        )
        scale = choice.nb_scale * nb_importance(rows, labels) if choice.nb_scale > 0 else None
        dense = _Block(vectors[train], choice.encoder) if vectors is not None and choice.encoder else None
        return _fit(rows, labels, lsa, w, scale, stats, replace(config, linear_c=choice.c), seed, dense=dense)

    if config.linear_select == "validation" and held is not None:
        fits: dict[tuple[float, float, bool, float], Fit] = {}

        def score(choice: selection.Choice) -> float:
            made = fits[choice.c, choice.nb_scale, choice.lsa, choice.encoder] = fit(choice, slice(None))
            return held(made[0], made[1], y, None)

        grid = selection.candidates(
            config.linear_nb_scale, config.linear_lsa_components, (config.linear_c,), encoder_scale
        )
        chosen = selection.best(grid, score)
        log.info(
            "blocks chosen on the validation split with %d labels: %s (accuracy %.4f)",
            len(y),
            chosen.describe(),
            chosen.cv_accuracy,
        )
        return chosen, fits[chosen.c, chosen.nb_scale, chosen.lsa, chosen.encoder]
    if config.linear_select != "folds":
        return configured, None
    splits = selection.folds(y, config.linear_select_folds, config.linear_select_rows, seed)

    def predict(
        choice: selection.Choice, train: npt.NDArray[np.int64], held_rows: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        folded, intercept, _ = fit(choice, train)
        rows = join(x[held_rows], vectors[held_rows] if vectors is not None and choice.encoder else None)
        return np.unique(y[train])[_predicted(rows, folded, intercept).argmax(axis=1)]

    chosen = selection.choose(
        selection.candidates(config.linear_nb_scale, config.linear_lsa_components, encoder_scale=encoder_scale),
        splits,
        y,
        predict,
    )
    log.info(
        "settings chosen by %d-fold cross-validation on %d labels: %s (held-out accuracy %.4f)",
        config.linear_select_folds,
        len(y),
        chosen.describe(),
        chosen.cv_accuracy,
    )
    return chosen, None


def _predicted(
    rows: sp.csr_matrix, folded: npt.NDArray[np.float64], intercept: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """A fit's probabilities for TF-IDF rows, one column per present class."""
    return probabilities(np.asarray(rows @ folded.T, dtype=np.float64) + intercept)


class PseudoRows(NamedTuple):
    """Pseudo-labelled rows for :func:`_fit`."""

    tfidf: sp.csr_matrix
    lsa: sp.csr_matrix  # their LSA coordinates, already weighted
    labels: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float64]
    vectors: Dense | None = None  # their sentence vectors, where the fit has the encoder block


class _Block(NamedTuple):
    """The encoder block of a fit: the labelled rows' sentence vectors and the block's weight."""

    vectors: Dense
    weight: float


def _check_vectors(vectors: Vectors, rows: int, corpus: sp.csr_matrix | None, validation: Validation | None) -> None:
    """Vectors must come for every row they stand beside: a missing block would silently score against nothing."""
    if len(vectors.train) != rows:
        raise ValueError(f"{len(vectors.train)} sentence vectors for {rows} labelled rows")
    if corpus is not None and vectors.corpus is not None and len(vectors.corpus) != corpus.shape[0]:
        raise ValueError(f"{len(vectors.corpus)} sentence vectors for {corpus.shape[0]} corpus rows")
    if corpus is not None and corpus.shape[0] and vectors.corpus is None:
        raise ValueError("sentence vectors for the labelled rows but not for the corpus rows")
    rows_held = validation[0].shape[0] if validation is not None else 0
    if rows_held and (vectors.validation is None or len(vectors.validation) != rows_held):
        raise ValueError("the validation rows need a sentence vector each")


def prior_shift(
    y: npt.NDArray[np.int64], target: npt.NDArray[np.float64], weights: npt.NDArray[np.float64] | None = None
) -> npt.NDArray[np.float64]:
    """What to add to the intercepts of a fit on rows labelled ``y`` (with row ``weights``; one intercept per logit,
    as :func:`_fit` returns them) so that its odds assume the class shares ``target`` gives (over the configured
    classes) instead of the fit's: ``log(target / fitted)`` per class of ``y``, taken against the first one where a
    single logit serves two classes.

    Why: the labels' class shares are what active learning asked for and what the pool held, not what the model will
    meet, and a logistic fit learns them as priors. Moving the intercepts is the prior-shift correction of a
    probabilistic classifier (Saerens, Latinne & Decaestecker, 2002); it leaves the weights, and the ranking within a
    class, alone and costs nothing. Reweighting the labelled rows instead scored the same on the suite's snippets and
    made the 15-class L-BFGS fit more than ten times slower.
    """
    classes, inverse = np.unique(y, return_inverse=True)
    mass = np.bincount(inverse, weights=weights, minlength=len(classes))
    wanted = np.asarray(target, dtype=np.float64)[classes]
    delta = np.log(wanted / wanted.sum()) - np.log(mass / mass.sum())
    return delta[1:2] - delta[0] if len(classes) == 2 else delta


def class_shares(labels: Sequence[int], n_classes: int) -> npt.NDArray[np.float64]:
    """Each configured class's share of ``labels``, add-one smoothed so that no class's share is 0."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)[:n_classes].astype(np.float64)
    return (counts + 1.0) / (counts.sum() + n_classes)


def _fit(
    x: sp.csr_matrix,
    y: npt.NDArray[np.int64],
    lsa: sp.csr_matrix,
    w: float,
    scale: npt.NDArray[np.float64] | None,
    stats: CorpusStats,
    config: ModelConfig,
    seed: int,
    pseudo: PseudoRows | None = None,
    dense: _Block | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float]:
    """One logistic fit on ``[x, scale * x, lsa, e * vectors]``, folded onto the TF-IDF columns (and, with the
    encoder block ``dense``, its vectors' columns after them): (weights, intercepts, loss), one row per logit over
    the present classes (one row for two classes). ``pseudo`` rows join the fit with their weights; the loss is the
    labelled rows' alone."""
    from sklearn.linear_model import LogisticRegression

    vocabulary = x.shape[1]
    labelled = len(y)
    weights = None
    vectors = dense.vectors if dense is not None else None
    if pseudo is not None:
        x, lsa = sp.vstack([x, pseudo.tfidf], format="csr"), sp.vstack([lsa, pseudo.lsa], format="csr")
        y, weights = np.concatenate([y, pseudo.labels]), np.concatenate([np.ones(labelled), pseudo.weights])
        if vectors is not None:
            if pseudo.vectors is None:
                raise ValueError("pseudo-labelled rows need sentence vectors when the fit has the encoder block")
            vectors = np.concatenate([vectors, pseudo.vectors])
    blocks = [x] + ([x @ sp.diags(scale)] if scale is not None else []) + [lsa]
    if dense is not None and vectors is not None:
        blocks.append(sp.csr_matrix(np.asarray(vectors, dtype=np.float64) * dense.weight))
    features = sp.hstack(blocks, format="csr")
    width = features.shape[1]
    # Only the columns some row uses: an L2 fit gives every other column a weight of exactly 0, so leaving them out
    # finds the same optimum, and L-BFGS' cost per iteration follows the parameters (500 snippets use a tenth of
    # a 250,000-token vocabulary; 15 classes made the full width 3.75M parameters).
    used = np.flatnonzero(np.diff(features.tocsc().indptr))
    features = features[:, used]
    # liblinear (binary) penalizes the intercept like a weight, L-BFGS (N-way) does not; with C = 32 and a few
    # hundred labels the difference is far below what the benchmark can see, so each problem gets its usual solver.
    # liblinear's dual form: the same optimum (the problem is strictly convex), found 2.5-3x faster here, where
    # rows (at most the corpus' 40,000) are far fewer than columns (twice the vocabulary).
    binary = config.n_classes == 2
    model = LogisticRegression(
        C=config.linear_c, solver="liblinear" if binary else "lbfgs", dual=binary, max_iter=2000, random_state=seed
    )
    model.fit(features, y, sample_weight=weights)
    fitted = model.predict_proba(features[:labelled])[
        np.arange(labelled), np.searchsorted(model.classes_, y[:labelled])
    ]
    fitted = np.clip(fitted, 1e-7, 1.0)
    train_loss = float(-np.mean(np.log(fitted)))
    coef = np.zeros((model.coef_.shape[0], width))  # (1, columns) for two present classes, (present, columns) else
    coef[:, used] = model.coef_
    lsa_start = 2 * vocabulary if scale is not None else vocabulary
    folded = coef[:, :vocabulary] + w * stats.unproject(coef[:, lsa_start : lsa_start + stats.basis.shape[1]])
    if scale is not None:
        folded += coef[:, vocabulary : 2 * vocabulary] * scale
    if dense is not None:
        folded = np.hstack([folded, dense.weight * coef[:, lsa_start + stats.basis.shape[1] :]])
    return folded, model.intercept_.astype(np.float64), train_loss
