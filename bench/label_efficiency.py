"""Label efficiency, measured through the running services: learning curves per model family and strategy.

Each curve is a real run: an embedded Redis, the trainer and the query service as processes, and the simulated
oracle answering queried items with their true labels (clients/oracle.py). The splits are drawn once (SPLIT_SEED):
the same validation and test items for every curve, seed, family and peer; the candidates are the rest, and a
curve's seed draws which of them start labelled. On IMDB these are the seed's balanced splits (5,000 validation,
5,000 test, 40,000 candidates); on another corpus (``--corpus``) a class-balanced test split of min(2,500, 20% of
the smallest class) per class and a validation split of min(2,500, 10%). Full-data accuracy is measured in the same
run by training each family once on every candidate, and small-text and modAL run on the same splits and rounds.
Results: bench/results/label_efficiency.json and .png.

    python -m bench.label_efficiency --quick     # linear family, 3 strategies, 1 seed, up to 2,000 labels
    python -m bench.label_efficiency             # both families, each family's strategies and seeds (PLANS)
    python -m bench.label_efficiency --corpus .cache/corpora/bbc-news.jsonl --classes \
        business,entertainment,politics,sports,tech      # any labelled corpus (bench/corpora.py fetches a suite)

On a corpus the plan's budgets are clipped to its candidates and its initial labels to a tenth of the smallest
class's candidates; the family defaults to ``linear`` (the BiLSTM is the seed's IMDB model: ``--families`` adds it).

Which strategies run for which family, and why some do not, is in PLANS and lands in the JSON as ``skipped``:
binary least-confidence, margin and entropy rank items identically (tests/unit/test_strategies.py), so one of
them runs; BALD needs dropout, which the linear family has not (every item scores 0); the BiLSTM runs one seed,
its curves costing about 12 minutes each on 2 cores, and BALD scores a random MC_CANDIDATES of the pool per round.
The linear family's two diversity strategies run one seed each (``seed_caps``, SEED_CAPPED), for time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from alloop.data.prepare import prepare
from alloop.strategies import NEEDS_MC_SAMPLES
from bench.device import device
from clients import oracle
from clients.stack import local_stack

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SEED_FULL_ACCURACY_PUBLISHED = 0.858  # the Keras example's full-data BiLSTM
SEED_FULL_ACCURACY_FINDINGS = 0.856  # the same model measured on this kind of machine (../shared/FINDINGS.md)


@dataclass(frozen=True)
class FamilyPlan:
    name: str
    initial_per_class: int
    budgets: list[int]
    env: dict[str, str] = field(default_factory=dict)
    strategies: tuple[str, ...] = ()  # what the full benchmark runs for this family
    seeds: int = 3
    skipped: dict[str, str] = field(default_factory=dict)  # strategy -> why the full benchmark leaves it out
    seed_caps: dict[str, int] = field(default_factory=dict)  # strategy -> fewer seeds than ``seeds`` (SEED_CAPPED)


MC_CANDIDATES = 5000
"""Items an MC-dropout strategy scores per round (a random sample of the pool, as Gal et al. 2017 did): 10 passes
over all 39,000 would be the cost of scoring the pool ten times every round."""
BINARY_SAME_RANKING = "binary: ranks items exactly as least_confidence does (tests/unit/test_strategies.py)"
SEED_CAPPED = (
    "time: the k-center and k-means batches cost ~8 min a curve on 2 cores against ~5 for least-confidence, "
    "and their 3-seed curves were level with it (bench/results/label_efficiency_linear.json, 321ef63); "
    "one seed each keeps the whole benchmark under 2 hours"
)


def strategy_seeds(plan: FamilyPlan, strategies: list[str], seeds: int, asked: bool) -> dict[str, int]:
    """Seeds per strategy: the plan's caps apply to its default seed count, not to a ``--seeds`` someone asked for."""
    return {s: seeds if asked else min(seeds, plan.seed_caps.get(s, seeds)) for s in strategies}


def _budgets(start: int, fine_until: int, fine_step: int, coarse_until: int, coarse_step: int) -> list[int]:
    fine = list(range(start + fine_step, fine_until + 1, fine_step))
    coarse = list(range(fine_until + coarse_step, coarse_until + 1, coarse_step))
    return fine + coarse


PLANS = {
    "linear": FamilyPlan(
        # Past 10,000 by two rounds, to say where the curve meets the full-data line if it has not by then.
        "linear",
        100,
        [*_budgets(200, 2000, 200, 10_000, 1000), 12_000, 15_000],
        {"ALLOOP_MODEL_FAMILY": "linear"},
        strategies=("random", "least_confidence", "class_balanced", "diversity", "kmeans_diversity"),
        seeds=3,
        seed_caps={"diversity": 1, "kmeans_diversity": 1},
        skipped={
            "entropy": BINARY_SAME_RANKING,
            "margin": BINARY_SAME_RANKING,
            "bald": "linear has no dropout: its MC passes agree and BALD is 0 for every item",
        },
    ),
    "bilstm": FamilyPlan(
        "bilstm",
        500,
        _budgets(1000, 2000, 500, 10_000, 1000),
        {"ALLOOP_MODEL_FAMILY": "bilstm", "ALLOOP_EPOCHS": "20", "ALLOOP_BATCH_SIZE": "256"},
        strategies=("random", "least_confidence", "bald"),
        seeds=1,
        skipped={
            "entropy": BINARY_SAME_RANKING,
            "margin": BINARY_SAME_RANKING,
            "class_balanced": "time: one BiLSTM curve is ~12 min on 2 cores (run it with --strategies)",
            "diversity": "time (run it with --strategies)",
            "kmeans_diversity": "time (run it with --strategies)",
        },
    ),
}
# The Keras example's protocol: 7,500 + 7,500 initial labels, then three rounds of 5,000 by class-ratio sampling.
SEED_PROTOCOL = FamilyPlan("bilstm", 7500, [20_000, 25_000, 30_000], PLANS["bilstm"].env)
SEED_PUBLISHED = {
    "full_data": {"labels": 40_000, "accuracy": 0.858, "false_negatives": 295, "false_positives": 415},
    "ratio_protocol": {"labels": 30_000, "accuracy": 0.854, "false_negatives": 348, "false_positives": 381},
}

# Binary least-confidence, margin and entropy rank items identically, so the quick run takes one of them.
QUICK_STRATEGIES = ["random", "least_confidence", "kmeans_diversity"]


@dataclass(frozen=True)
class Corpus:
    """A user's labelled corpus file instead of IMDB, split by one documented rule (:func:`corpus_sizes`)."""

    path: Path
    classes: tuple[str, ...]
    val_per_class: int
    test_per_class: int
    counts: tuple[int, ...] = ()  # records per class, before the splits

    @property
    def name(self) -> str:
        """The pool name the oracle submits the corpus under, and the label in reports: the file's stem."""
        return self.path.stem

    def candidates_per_class(self, pool_limit: int | None = None) -> list[int]:
        """What each class has left for initial labels and the pool once test and validation are drawn (a pool
        limit scales them down alike)."""
        left = [c - self.test_per_class - self.val_per_class for c in self.counts]
        total = sum(left)
        if pool_limit is not None and total > pool_limit:
            left = [int(c * pool_limit / total) for c in left]
        return left

    def most_initial_per_class(self, pool_limit: int | None = None) -> int:
        """The largest initial set per class a run may start from: a tenth of the smallest class's candidates."""
        return max(1, min(self.candidates_per_class(pool_limit)) // 10)


CORPUS_TEST_PER_CLASS = 2500  # as the seed's IMDB test split ...
CORPUS_TEST_FRACTION = 0.2  # ... capped at 20% of the smallest class
CORPUS_VAL_FRACTION = 0.1  # validation: the same cap rule at 10% (the trainer needs one; the peers ignore it)


def corpus_sizes(path: Path, classes: tuple[str, ...] | None = None) -> Corpus:
    """The splitting rule for ``--corpus``: a class-balanced test split of ``min(2,500, 20% of the smallest class)``
    per class and a validation split of ``min(2,500, 10%)``, drawn with seed 0 (alloop.data.balanced_splits); the
    initial labelled set is drawn per curve seed as for IMDB; everything else is the pool."""
    from alloop.data import infer_classes, read_records

    names = classes or infer_classes(path)
    records = read_records(path, classes=names, require_label=True)
    counts = np.bincount(
        [int(r.label) for r in records],  # type: ignore[arg-type]
        minlength=len(names),
    )
    smallest = int(counts.min())
    test = min(CORPUS_TEST_PER_CLASS, int(smallest * CORPUS_TEST_FRACTION))
    val = min(CORPUS_TEST_PER_CLASS, int(smallest * CORPUS_VAL_FRACTION))
    if min(test, val) < 1:
        raise ValueError(f"{path}: the smallest class has {smallest} records, too few for test and validation splits")
    return Corpus(path, tuple(names), val, test, tuple(int(c) for c in counts))


def fit_plan(plan: FamilyPlan, corpus: Corpus, pool_limit: int | None, initial_asked: bool) -> FamilyPlan:
    """``plan`` cut to what ``corpus`` holds: budgets above the candidates dropped (a Query cannot ask for more items
    than are left), and initial labels at most a tenth of the smallest class's candidates. An initial size someone
    asked for that the corpus cannot hold is refused in one line rather than failing inside a run."""
    per_class = corpus.candidates_per_class(pool_limit)
    most = corpus.most_initial_per_class(pool_limit)
    initial = plan.initial_per_class
    if initial > most:
        if initial_asked:
            raise SystemExit(
                f"--initial-per-class {initial}: {corpus.path.name}'s smallest class has "
                f"{min(per_class)} candidates after the test and validation splits; use at most {most}"
            )
        initial = most
    start, total = initial * len(per_class), sum(per_class)
    budgets = [b for b in plan.budgets if start < b <= total]
    if initial != plan.initial_per_class or budgets != plan.budgets:
        print(
            f"{corpus.path.name}: {plan.name} plan fitted to {total} candidates: {initial} initial labels per "
            f"class, budgets {budgets}",
            flush=True,
        )
    if not budgets:
        raise SystemExit(
            f"{corpus.path.name}: none of the budgets {plan.budgets} lies between the {start} initial "
            f"labels and the {total} candidates; give --budgets"
        )
    return replace(plan, initial_per_class=initial, budgets=budgets)


SPLIT_SEED = 0
"""Draws val, test and the candidates of every run. A curve's seed draws only its initial labelled set (and seeds its
training), so seeds differ in where they start, not in what they are scored on, and the full-data model and the
peers, which use seed 0's files, see the same test set and candidates as every curve."""


def prepare_run_data(
    plan: FamilyPlan, seed: int, work: Path, cache: Path, pool_limit: int | None, corpus: Corpus | None
) -> Path:
    name = f"{plan.name}-split{SPLIT_SEED}-initial{seed}-{pool_limit or 'all'}"
    name += f"-{corpus.path.stem}" if corpus else ""
    source: dict[str, Any] = (
        {"source": "npm", "val_per_class": 2500, "test_per_class": 2500}
        if corpus is None
        else {
            "source": "file",
            "path": corpus.path,
            "classes": corpus.classes,
            "val_per_class": corpus.val_per_class,
            "test_per_class": corpus.test_per_class,
        }
    )
    return prepare(
        work / "data" / name,
        **source,
        cache_dir=cache,
        initial_per_class=plan.initial_per_class,
        seed=SPLIT_SEED,
        initial_seed=seed,
        pool_limit=pool_limit,
        log=lambda _m: None,
    )


def run_curve(
    plan: FamilyPlan,
    strategy: str,
    seed: int,
    budgets: list[int],
    work: Path,
    cache: Path,
    pool_limit: int | None,
    corpus: Corpus | None = None,
) -> list[dict[str, Any]]:
    data = prepare_run_data(plan, seed, work, cache, pool_limit, corpus)
    classes = ",".join(corpus.classes) if corpus else "negative,positive"
    run_dir = work / "runs" / f"{plan.name}-{strategy}-{seed}-{time.strftime('%H%M%S')}"
    # The oracle asks for every round itself, hence the threshold no round of labels reaches.
    env = {
        **plan.env,
        "ALLOOP_RETRAIN_THRESHOLD": "1000000000",
        "ALLOOP_SEED": str(seed),
        "ALLOOP_CLASSES": classes,
        # Every curve's pool text is the same candidates: adapt the vocabulary and run the SVD once per run.
        "ALLOOP_CORPUS_CACHE_DIR": str(work / "corpus-cache"),
    }
    pool = corpus.name if corpus else "imdb"
    with local_stack(run_dir, data, env) as stack:
        rows = oracle.run(
            oracle_args(stack.query, stack.trainer, data, strategy, seed, budgets, classes, run_dir, pool)
        )
    return [
        {
            "labels": r.labels,
            "accuracy": r.accuracy,
            "false_positives": r.false_positives,
            "false_negatives": r.false_negatives,
            "kappa": r.kappa,
            "seconds": r.seconds,
        }
        for r in rows
    ]


def oracle_args(
    query: str,
    trainer: str,
    data: Path,
    strategy: str,
    seed: int,
    budgets: list[int],
    classes: str,
    run_dir: Path,
    pool: str = "imdb",
) -> argparse.Namespace:
    """The oracle's arguments for one curve; its Query draws are seeded from the curve's seed (``--seed``)."""
    return oracle.build_parser().parse_args(
        [
            "--query-address",
            query,
            "--trainer-address",
            trainer,
            "--pool-file",
            str(data / "pool.jsonl"),
            "--pool",
            pool,
            "--strategy",
            strategy,
            "--budgets",
            ",".join(map(str, budgets)),
            "--classes",
            classes,
            "--out",
            str(run_dir),
            "--quiet",
            "--timeout",
            "1800",
            "--seed",
            str(seed),
            "--max-candidates",
            str(MC_CANDIDATES if strategy in NEEDS_MC_SAMPLES else 0),
        ]
    )


def full_data_accuracy(
    plan: FamilyPlan, work: Path, cache: Path, pool_limit: int | None, corpus: Corpus | None = None
) -> dict[str, Any]:
    """The family trained once on every candidate (initial + pool), evaluated on the same test set."""
    from alloop.data import read_records
    from alloop.models.config import ModelConfig, TrainingConfig
    from alloop.models.training import LabeledData, train_round

    data = prepare_run_data(plan, 0, work, cache, pool_limit, corpus)
    names = corpus.classes if corpus else None
    load = lambda name: read_records(data / f"{name}.jsonl", classes=names, require_label=True)
    candidates = load("initial") + load("pool")
    as_data = lambda rs: LabeledData([r.text for r in rs], [int(r.label) for r in rs])
    started = time.monotonic()
    result = train_round(
        as_data(candidates),
        as_data(load("val")),
        as_data(load("test")),
        model_config=ModelConfig(family=plan.name, n_classes=len(corpus.classes) if corpus else 2),
        training=TrainingConfig(
            epochs=int(plan.env.get("ALLOOP_EPOCHS", 20)),
            batch_size=int(plan.env.get("ALLOOP_BATCH_SIZE", 256)),
            warm_start=False,
        ),
        work_dir=work / "full" / plan.name,
    )
    return {
        "labels": len(candidates),
        "accuracy": result.test.accuracy,
        "false_positives": result.test.false_positives,
        "false_negatives": result.test.false_negatives,
        "seconds": round(time.monotonic() - started, 1),
    }


def mean_curves(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[int, dict[str, float]]]]:
    """family -> strategy -> labels -> {mean, std (population), min, max, n} over seeds."""
    grouped: dict[str, dict[str, dict[int, list[float]]]] = {}
    for run in runs:
        per = grouped.setdefault(run["family"], {}).setdefault(run["strategy"], {})
        for point in run["curve"]:
            per.setdefault(point["labels"], []).append(point["accuracy"])
    return {
        fam: {
            s: {
                n: {
                    "mean": float(np.mean(v)),
                    "std": float(np.std(v)),
                    "min": float(np.min(v)),
                    "max": float(np.max(v)),
                    "n": len(v),
                }
                for n, v in sorted(points.items())
            }
            for s, points in strategies.items()
        }
        for fam, strategies in grouped.items()
    }


def reusable(
    previous: dict[str, Any], family: str, strategy: str, seed: int, budgets: list[int]
) -> dict[str, Any] | None:
    """The run of ``previous`` (a results or partial file) that this run would repeat, if any: same family,
    strategy and seed, and the same rounds after the initial one. A file recording another split protocol, corpus
    or candidate cap is refused as a whole by :func:`check_resumable`."""
    for run in previous.get("runs", []):
        labels = [point["labels"] for point in run["curve"]]
        if (run["family"], run["strategy"], run["seed"]) == (family, strategy, seed) and labels[1:] == budgets:
            return run
    return None


def check_resumable(previous: dict[str, Any], pool_limit: int | None, corpus: Corpus | None) -> set[str]:
    """The families whose runs in ``previous`` this run may reuse; refuses the file when none can be.

    Why per family: a family's curves depend on the splits and on the settings that family reads
    (``ModelConfig.family_settings``), not on another family's. A change to the ``linear`` settings therefore
    re-measures the ``linear`` runs and keeps the BiLSTM's (the half-hour or more of the benchmark). Files written
    before they recorded the model settings (321ef63 and earlier) measured an older linear model, and files from
    before the split fix (c6ae950) drew a test set per curve seed: neither can be resumed."""
    from alloop.models.config import ModelConfig
    from alloop.models.families import FAMILY_NAMES

    expected = _protocol(pool_limit, corpus)
    missing = [key for key in expected if key not in previous]
    if missing:
        raise SystemExit(
            f"--resume: the file does not record its {', '.join(missing)}: it was written by an older "
            "benchmark (an older linear model, or curves whose Query draws were not seeded); run afresh"
        )
    for key, value in expected.items():
        if key != "model_defaults" and previous[key] != value:
            raise SystemExit(
                f"--resume: the file's {key} is {previous[key]!r}, this run's is {value!r}; "
                "its runs were measured on other data and cannot be mixed with this run's"
            )
    current = ModelConfig()
    recorded = previous["model_defaults"]
    same: set[str] = set()
    for family in FAMILY_NAMES:
        changed = {k: (recorded.get(k), v) for k, v in current.family_settings(family).items() if recorded.get(k) != v}
        if changed:
            what = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
            print(f"--resume: the {family} settings differ ({what}): its {family} runs are measured again", flush=True)
        else:
            same.add(family)
    if not same:
        raise SystemExit("--resume: the file's model_defaults differ for every family; nothing in it can be reused")
    return same


def only_families(previous: dict[str, Any], families: set[str]) -> dict[str, Any]:
    """``previous`` with the full-data models and runs of other families left out (see :func:`check_resumable`)."""
    return {
        **previous,
        "full_data": {f: v for f, v in previous.get("full_data", {}).items() if f in families},
        "runs": [r for r in previous.get("runs", []) if r["family"] in families],
    }


def _protocol(pool_limit: int | None, corpus: Corpus | None) -> dict[str, Any]:
    """What a run's measurements depend on besides its plan: written into results and partial files, and compared
    by :func:`check_resumable`."""
    return {
        "pool_limit": pool_limit,  # candidates (initial + pool); full_data is "every candidate" of this run
        "corpus": {
            "path": str(corpus.path),
            "classes": list(corpus.classes),
            "val_per_class": corpus.val_per_class,
            "test_per_class": corpus.test_per_class,
        }
        if corpus
        else "imdb (seed splits)",
        "splits": {
            "split_seed": SPLIT_SEED,
            "initial_seed": "the curve's seed",
            "shared": "val, test and the candidates (initial + pool): every curve, the full-data models, the peers",
        },
        "model_defaults": _model_defaults(),
        # Each round's Query draws (random batches, candidate samples) repeat with the curve's seed; curves from
        # before the oracle sent one cannot be reused as if they were exact.
        "query_seed": "clients.oracle.query_seed(curve seed, round)",
    }


def _model_defaults() -> dict[str, Any]:
    """The model settings the services run with (the plans set only the family and the BiLSTM's epochs): a run
    measured with other defaults measured another model."""
    from alloop.models.config import ModelConfig

    return {k: v for k, v in ModelConfig().to_dict().items() if k != "family"}


def first_reaching(curve: dict[int, dict[str, float]], target: float) -> int | None:
    return next((n for n, p in sorted(curve.items()) if p["mean"] >= target), None)


def summarize(curves: dict[str, Any], full: dict[str, Any], imdb: bool = True) -> dict[str, Any]:
    """The issue's keys. On a user's corpus there is no seed model to reach: its keys are None, the rest holds."""
    seed_full = full.get("bilstm", {}).get("accuracy")
    seed_target = seed_full if seed_full is not None else SEED_FULL_ACCURACY_FINDINGS
    reach = [
        (n, fam, s)
        for fam, strategies in curves.items()
        for s, c in strategies.items()
        if imdb and (n := first_reaching(c, seed_target)) is not None
    ]
    own = {}
    for fam, strategies in curves.items():
        if fam in full:
            hits = [n for c in strategies.values() if (n := first_reaching(c, full[fam]["accuracy"])) is not None]
            own[fam] = min(hits) if hits else None
    beats = {}
    for fam, strategies in curves.items():
        random_curve = strategies.get("random")
        if not random_curve:
            continue
        for s, c in strategies.items():
            if s == "random":
                continue
            common = [n for n in c if n >= 1000 and n in random_curve]
            beats[f"{fam}/{s}"] = bool(common) and all(c[n]["mean"] > random_curve[n]["mean"] for n in common)
    best = min(reach) if reach else None
    return {
        "seed_full_accuracy_target": seed_target if imdb else None,
        "seed_full_accuracy_source": ("this run" if seed_full is not None else "../shared/FINDINGS.md (bilstm not run)")
        if imdb
        else "not IMDB: no seed model to compare with",
        "labels_to_seed_full_accuracy": best[0] if best else None,
        "labels_to_seed_full_accuracy_by": f"{best[1]}/{best[2]}" if best else None,
        "labels_to_full_accuracy": min((v for v in own.values() if v is not None), default=None),
        "labels_to_full_accuracy_by_family": own,
        "bilstm_labels_to_full_accuracy": own.get("bilstm"),
        "beats_random": beats,
    }


PEER_MARGIN_BUDGETS = (500, 1000, 2000, 5000, 10_000, 15_000)


def run_peer_curves(
    plan: FamilyPlan,
    budgets: list[int],
    seeds: int,
    work: Path,
    cache: Path,
    pool_limit: int | None,
    corpus: Corpus | None = None,
) -> dict[str, Any]:
    """small-text and modAL on the same candidates, test set and rounds as alloop's ``plan`` (bench/peers.py)."""
    from alloop.data import load_prepared
    from bench import peers

    splits = load_prepared(prepare_run_data(plan, 0, work, cache, pool_limit, corpus))
    initial = plan.initial_per_class * len(splits.classes)
    # One round per budget, budgets as alloop's: each peer grows its labels exactly as alloop's oracle does.
    return peers.run_peers(
        splits,
        initial=initial,
        budgets=[initial, *budgets],
        seeds=list(range(seeds)),
        cache_dir=cache / "bench",
        progress=lambda m: print(m, flush=True),
    )


def _at(curve: dict[int, float], labels: int) -> float | None:
    """A curve's value at ``labels``, linearly interpolated between its rounds; None outside them."""
    xs = sorted(curve)
    if not xs or labels < xs[0] or labels > xs[-1]:
        return None
    return float(np.interp(labels, xs, [curve[x] for x in xs]))


def compare_with_peers(
    curves: dict[str, Any], peer_result: dict[str, Any], seed_target: float | None
) -> dict[str, Any]:
    ours = [{n: p["mean"] for n, p in c.items()} for st in curves.values() for c in st.values()]
    theirs = {name: {b["labels"]: b["mean"] for b in entry["budgets"]} for name, entry in peer_result["peers"].items()}
    margin = {}
    for labels in PEER_MARGIN_BUDGETS:
        best_ours = max((v for c in ours if (v := _at(c, labels)) is not None), default=None)
        best_peer = max((v for c in theirs.values() if (v := _at(c, labels)) is not None), default=None)
        if best_ours is not None and best_peer is not None:
            margin[str(labels)] = round(best_ours - best_peer, 4)
    reach = {
        name: next((n for n in sorted(c) if seed_target is not None and c[n] >= seed_target), None)
        for name, c in theirs.items()
    }
    own = {}
    for name, entry in peer_result["peers"].items():
        ceiling = entry.get("full_data", {}).get("accuracy")
        own[name] = next((n for n in sorted(theirs[name]) if ceiling is not None and theirs[name][n] >= ceiling), None)
    hits = [n for n in reach.values() if n is not None]
    own_hits = [n for n in own.values() if n is not None]
    ceilings = [a for entry in peer_result["peers"].values() if (a := entry.get("full_data", {}).get("accuracy"))]
    best_peer_full = max(ceilings, default=None)
    ours_reaching = [n for c in ours for n in sorted(c) if best_peer_full is not None and c[n] >= best_peer_full]
    return {
        "best_peer_full_accuracy": best_peer_full,
        # The fewest labels with which any alloop curve (mean over seeds) reaches the best peer's full-data model.
        "labels_to_best_peer_full_accuracy": min(ours_reaching, default=None),
        "peer_margin": margin,  # alloop's best family+strategy minus the best peer (interpolated between rounds)
        "peer_labels_to_seed_full_accuracy": min(hits) if hits else None,
        "peer_labels_to_seed_full_accuracy_by_peer": reach,
        "peer_labels_to_own_full_accuracy": min(own_hits) if own_hits else None,
        "peer_labels_to_own_full_accuracy_by_peer": own,
    }


REPORT_BUDGETS = (200, 500, 1000, 2000, 5000, 10_000, 15_000)


def report_columns(curves: list[dict[int, Any]]) -> list[int]:
    """The label counts a table shows: REPORT_BUDGETS inside some curve's range, or, where none is (a small
    corpus), the rounds themselves."""
    columns = [n for n in REPORT_BUDGETS if any(c and min(c) <= n <= max(c) for c in curves)]
    return columns or sorted({n for c in curves for n in c})


def report(result: dict[str, Any]) -> str:
    """The table from a results file: per family/strategy and peer, mean accuracy (%) over seeds with its
    population std (interpolated between rounds, blank outside a curve), and each one's full-data accuracy."""
    rows: list[tuple[str, dict[int, float], dict[int, float], float | None]] = []
    for fam, strategies in result.get("curves", {}).items():
        full = result.get("full_data", {}).get(fam, {}).get("accuracy")
        seeds = result.get("seeds", {})
        n_family = seeds.get(fam) if isinstance(seeds, dict) else seeds
        for strategy, curve in strategies.items():
            n = result.get("seeds_by_strategy", {}).get(fam, {}).get(strategy, n_family)
            rows.append(
                (
                    f"alloop `{fam}` / {strategy} ({n} seed{'s' if n != 1 else ''})",
                    {int(k): v["mean"] for k, v in curve.items()},
                    {int(k): v.get("std", 0.0) for k, v in curve.items()},
                    full,
                )
            )
    for name, entry in ((result.get("peers") or {}).get("peers") or {}).items():
        rows.append(
            (
                f"peer: {name}",
                {b["labels"]: b["mean"] for b in entry["budgets"]},
                {b["labels"]: b.get("std", 0.0) for b in entry["budgets"]},
                entry.get("full_data", {}).get("accuracy"),
            )
        )
    columns = report_columns([mean for _, mean, _, _ in rows])
    where = result.get("corpus")
    title = f"{Path(where['path']).stem}: " if isinstance(where, dict) else "IMDB: "
    lines = [
        f"{title}test accuracy (%), mean ± std over seeds",
        "",
        "| labels | " + " | ".join(f"{n:,}" for n in columns) + " | all candidates |",
        "|---" * (len(columns) + 2) + "|",
    ]
    for name, mean, std, full in rows:
        cells = []
        for n in columns:
            value, spread = _at(mean, n), _at(std, n)
            cells.append("" if value is None else f"{value * 100:.1f}" + (f" ±{spread * 100:.1f}" if spread else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'' if full is None else f'{full * 100:.1f}'} |")
    return "\n".join(lines)


def plot(
    curves: dict[str, Any],
    full: dict[str, Any],
    path: Path,
    peer_result: dict[str, Any] | None = None,
    title: str = "IMDB",
) -> None:
    """Curves with their seed spread, the peers' curves, and every full-data line (alloop's families and each peer
    library's); the seed BiLSTM's published line only on IMDB."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for fam, strategies in curves.items():
        for s, c in strategies.items():
            xs = sorted(c)
            ax.plot(xs, [c[n]["mean"] * 100 for n in xs], marker=".", label=f"{fam} / {s}")
            ax.fill_between(xs, [c[n]["min"] * 100 for n in xs], [c[n]["max"] * 100 for n in xs], alpha=0.15)
    ceilings: dict[float, str] = {}
    for name, entry in (peer_result or {}).get("peers", {}).items():
        points = sorted((b["labels"], b["mean"]) for b in entry["budgets"])
        line = ax.plot(
            [n for n, _ in points], [a * 100 for _, a in points], linestyle="--", marker="x", label=f"peer: {name}"
        )[0]
        if (ceiling := entry.get("full_data", {}).get("accuracy")) is not None and ceiling not in ceilings:
            ceilings[ceiling] = name  # one line per library: its peers share the full-data model
            ax.axhline(
                ceiling * 100, color=line.get_color(), linestyle=":", linewidth=1, label=f"peer {name}, all labels"
            )
    for fam, f in full.items():
        ax.axhline(f["accuracy"] * 100, linestyle="--", linewidth=1, label=f"{fam}, all {f['labels']:,} labels")
    if title == "IMDB":
        ax.axhline(SEED_FULL_ACCURACY_PUBLISHED * 100, color="grey", linestyle=":", label="seed, published (85.8%)")
    ax.set_title(title)
    ax.set_xlabel("labels")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def seed_reproduction(work: Path, cache: Path) -> dict[str, Any]:
    """The seed experiment through the services: its BiLSTM on all 40,000 candidates, and its ratio protocol."""
    started = time.monotonic()
    full = full_data_accuracy(PLANS["bilstm"], work, cache, None)
    print(f"bilstm: full data {full}", flush=True)
    curve = run_curve(SEED_PROTOCOL, "ratio", 0, SEED_PROTOCOL.budgets, work, cache, None)
    return {
        "device": device(),
        "wall_seconds": round(time.monotonic() - started, 1),
        "published": SEED_PUBLISHED,
        "findings_full_data_accuracy": SEED_FULL_ACCURACY_FINDINGS,
        "full_data": full,
        "ratio_protocol": curve,
    }


def _plan(plan: FamilyPlan, initial_per_class: int | None, budgets: str | None) -> FamilyPlan:
    if initial_per_class is None and budgets is None:
        return plan
    chosen = sorted({int(b) for b in budgets.split(",") if b.strip()}) if budgets else plan.budgets
    if not chosen or chosen[0] <= 0:
        raise SystemExit(f"--budgets must be positive label totals, got {budgets!r}")
    return replace(plan, initial_per_class=initial_per_class or plan.initial_per_class, budgets=chosen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--seed-protocol",
        action="store_true",
        help="only the seed's reproduction: full-data BiLSTM and its ratio protocol (15k -> 30k labels)",
    )
    parser.add_argument("--quick", action="store_true", help="linear only, 3 strategies, 1 seed, up to 2,000 labels")
    parser.add_argument(
        "--families",
        default=None,
        help="comma list (default: linear,bilstm on IMDB; linear on --corpus and with --quick)",
    )
    parser.add_argument("--strategies", default=None, help="comma list for every family (default: each family's plan)")
    parser.add_argument("--seeds", type=int, default=None, help="default: each family's plan (quick: 1)")
    parser.add_argument(
        "--max-labels", type=int, default=None, help="cap every plan's budgets (default: none; quick: 2,000)"
    )
    parser.add_argument("--no-full", action="store_true", help="skip the full-data reference models")
    parser.add_argument("--pool-limit", type=int, default=None, help="cap the candidates (quick: 10,000)")
    parser.add_argument("--no-peers", action="store_true", help="skip small-text and modAL (bench/peers.py)")
    parser.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help="a labelled CSV/JSONL (id, text, label) corpus instead of IMDB; test: min(2,500, 20%% of "
        "the smallest class) per class, validation: min(2,500, 10%%), the rest candidates",
    )
    parser.add_argument("--classes", default=None, help="--corpus class names in label order (default: inferred)")
    parser.add_argument(
        "--initial-per-class",
        type=int,
        default=None,
        help="initial labels per class (default: 100 for linear, 500 for bilstm; on a corpus at most "
        "a tenth of its smallest class)",
    )
    parser.add_argument(
        "--budgets", default=None, help="comma list of label totals, one round each (default: the plan's)"
    )
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        help="a results or .partial.json file of a stopped run on the same splits: its full-data "
        "models and its curves with the same family, strategy, seed and rounds are reused",
    )
    parser.add_argument("--report", type=Path, default=None, help="print a results file's table (markdown) and exit")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".alloop" / "bench")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "alloop")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="default: bench/results/label_efficiency.json (quick: label_efficiency_quick.json)",
    )
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return 0
    if args.seed_protocol:
        out = args.out or RESULTS / "seed_reproduction.json"
        result = seed_reproduction(args.workdir, args.cache_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        return 0
    args.out = args.out or RESULTS / ("label_efficiency_quick.json" if args.quick else "label_efficiency.json")

    families = (args.families or ("linear" if args.quick or args.corpus else "linear,bilstm")).split(",")
    classes = tuple(args.classes.split(",")) if args.classes else None
    corpus = corpus_sizes(args.corpus, classes) if args.corpus else None
    chosen = args.strategies.split(",") if args.strategies else (QUICK_STRATEGIES if args.quick else None)
    seeds_for = {fam: args.seeds or (1 if args.quick else PLANS[fam].seeds) for fam in families}
    strategies_for = {fam: list(chosen or PLANS[fam].strategies) for fam in families}
    if corpus is not None and len(corpus.classes) > 2 and chosen is None:
        for fam in families:  # with three classes or more, margin and entropy rank differently from least-confidence
            strategies_for[fam] += [s for s in ("margin", "entropy") if s not in strategies_for[fam]]
    seeds_by_strategy = {
        fam: strategy_seeds(PLANS[fam], strategies_for[fam], seeds_for[fam], args.seeds is not None) for fam in families
    }
    skipped = {
        fam: {s: why for s, why in PLANS[fam].skipped.items() if s not in strategies_for[fam]} for fam in families
    }
    plans = {fam: _plan(PLANS[fam], args.initial_per_class, args.budgets) for fam in families}
    pool_limit = args.pool_limit or (10_000 if args.quick else None)
    if corpus is not None:
        plans = {
            fam: fit_plan(plan, corpus, pool_limit, args.initial_per_class is not None) for fam, plan in plans.items()
        }
    max_labels = args.max_labels or (2000 if args.quick else max(p.budgets[-1] for p in plans.values()))
    previous: dict[str, Any] = {}
    if args.resume:
        previous = json.loads(args.resume.read_text())
        previous = only_families(previous, check_resumable(previous, pool_limit, corpus))
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    full: dict[str, Any] = {}
    reused: list[str] = []
    reused_seconds = 0.0
    context = _protocol(pool_limit, corpus)
    partial = args.out.with_suffix(".partial.json")
    for fam in families:
        plan = plans[fam]
        budgets = [b for b in plan.budgets if b <= max_labels]
        if not args.no_full:
            if fam in previous.get("full_data", {}):
                full[fam] = previous["full_data"][fam]
                reused.append(f"{fam}/full_data")
                reused_seconds += full[fam].get("seconds", 0.0)
            else:
                full[fam] = full_data_accuracy(plan, args.workdir, args.cache_dir, pool_limit, corpus)
            print(f"{fam}: full data {full[fam]}", flush=True)
        for seed in range(seeds_for[fam]):
            for strategy in strategies_for[fam]:
                if seed >= seeds_by_strategy[fam][strategy]:
                    continue
                if (earlier := reusable(previous, fam, strategy, seed, budgets)) is not None:
                    runs.append(earlier)
                    reused.append(f"{fam}/{strategy}/{seed}")
                    reused_seconds += earlier.get("seconds", 0.0)
                    continue
                t0 = time.monotonic()
                curve = run_curve(plan, strategy, seed, budgets, args.workdir, args.cache_dir, pool_limit, corpus)
                runs.append(
                    {
                        "family": fam,
                        "strategy": strategy,
                        "seed": seed,
                        "curve": curve,
                        "seconds": round(time.monotonic() - t0, 1),
                    }
                )
                points = " ".join(f"{p['labels']}:{p['accuracy']:.3f}" for p in curve)
                print(f"{fam}/{strategy}/seed {seed}: {points}", flush=True)
                # A run of an hour or more keeps what it has measured so far, to be resumed (--resume) if stopped.
                partial.parent.mkdir(parents=True, exist_ok=True)
                partial.write_text(json.dumps({**context, "full_data": full, "runs": runs}, indent=2))
    curves = mean_curves(runs)
    peer_result = None
    if not args.no_peers and "linear" in families:
        plan = plans["linear"]
        budgets = [b for b in plan.budgets if b <= max_labels]
        peer_result = run_peer_curves(
            plan, budgets, seeds_for["linear"], args.workdir, args.cache_dir, pool_limit, corpus
        )
    summary = summarize(curves, full, imdb=corpus is None)
    result = {
        "device": device(),
        "quick": args.quick,
        "families": families,
        "strategies": strategies_for,
        "seeds": seeds_for,
        "skipped": skipped,
        "seeds_by_strategy": seeds_by_strategy,
        "seed_capped": {
            fam: {s: SEED_CAPPED for s, n in by.items() if n < seeds_for[fam]} for fam, by in seeds_by_strategy.items()
        },
        "mc_candidates": MC_CANDIDATES,
        "max_labels": max_labels,
        **context,
        "wall_seconds": round(time.monotonic() - started, 1),  # this invocation only; see "resumed"
        # What was reused and what measuring it took then: wall_seconds + reused_seconds is about the whole run.
        "resumed": {"from": str(args.resume), "reused": reused, "reused_seconds": round(reused_seconds, 1)}
        if args.resume
        else None,
        "seed_reference": {
            "published_full": SEED_FULL_ACCURACY_PUBLISHED,
            "published_full_fn_fp": [295, 415],
            "published_active_30k": 0.854,
            "published_active_fn_fp": [348, 381],
        },
        "full_data": full,
        **summary,
        **(compare_with_peers(curves, peer_result, summary["seed_full_accuracy_target"]) if peer_result else {}),
        "peers": peer_result,
        "curves": {fam: {s: {str(n): p for n, p in c.items()} for s, c in st.items()} for fam, st in curves.items()},
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    args.out.with_suffix(".partial.json").unlink(missing_ok=True)  # the whole result is written: no partial one
    plot(curves, full, args.out.with_suffix(".png"), peer_result, title=corpus.name if corpus else "IMDB")
    print(json.dumps({k: v for k, v in result.items() if k not in ("curves", "runs", "peers")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
