"""In-process learning curves of the ``linear`` family, for choosing its settings (not the services' benchmark).

    python -m bench.linear_study                                  # without pseudo-labelled pool rows vs with them
    python -m bench.linear_study --variant base:linear_nb_scale=0 --variant pivot3k:linear_lsa_pivot=3000
    python -m bench.linear_study --seeds 1 --max-labels 2000      # a few minutes
    python -m bench.linear_study --corpus rt-snippets --strategy random --variant base: --variant cv:linear_select_folds=4
    python -m bench.linear_study --corpus rt-snippets --encoder --variant tfidf:linear_encoder_scale=0 --variant enc:

Settings are chosen on the validation split (``--score val``, the default on a ``--corpus``); the test split is for
reporting a choice already made (``--score test``).

Why a second harness: bench/label_efficiency.py measures the product through its running services, which is what
the results must come from, but takes an hour for one setting. Choosing a setting needs many curves: this one
calls :func:`alloop.models.linear.solve` directly on count vectors tokenized once per seed, on the same splits,
initial sets and rounds as the benchmark, ranking by least-confidence (ties by position) or drawing at random.
Its numbers land within about 0.1 point of the services' (the selection breaks ties differently), so a setting
chosen here is then measured by bench/label_efficiency.py. Output: ``bench/results/linear_study_pseudo.json``
(``--out``; earlier comparisons are in ``linear_study.json`` and ``linear_study_nb_weights.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.device import device
from bench.label_efficiency import PLANS, ROOT, prepare_run_data

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_VARIANTS = ("nb-pool:linear_pseudo_weight=0", "pseudo:")


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``name:field=value,field=value`` over ModelConfig's linear fields; types follow the field's default."""
    from alloop.models.config import ModelConfig

    name, _, assignments = text.partition(":")
    types = {f.name: type(getattr(ModelConfig(), f.name)) for f in fields(ModelConfig)}
    overrides: dict[str, Any] = {}
    for item in filter(None, assignments.split(",")):
        key, _, value = item.partition("=")
        if key not in types:
            raise SystemExit(f"--variant {text!r}: {key!r} is not a ModelConfig field")
        overrides[key] = types[key](value)
    return name or "default", overrides


def corpus_initial_per_class(corpus: Any) -> int:
    """About 200 initial labels split over a corpus's classes, as the suite starts (bench/suite.py)."""
    return max(1, 200 // len(corpus.classes))


def sentence_vectors(texts: list[str], cache_dir: Path) -> Any:
    """The frozen sentence encoder's vectors of ``texts`` (float32, one row each), kept on disk per set of texts: a
    seed's candidates are embedded once for every variant and every later run."""
    from alloop.data.records import texts_digest
    from alloop.models.encoder import SentenceEncoder
    from alloop.models.encoder.files import fetch_encoder

    path = cache_dir / "sentence-vectors" / f"{texts_digest(texts)}.npy"
    if path.exists():
        return np.load(path).astype(np.float32)
    started = time.monotonic()
    vectors = SentenceEncoder(fetch_encoder(cache_dir)).embed(texts)
    print(f"embedded {len(texts)} texts in {time.monotonic() - started:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors.astype(np.float16))  # as the store keeps them (alloop.store.embeddings)
    return vectors.astype(np.float16).astype(np.float32)


def seed_features(
    seed: int,
    workdir: Path,
    cache_dir: Path,
    corpus: Any = None,
    score: str = "test",
    min_df: int | None = None,
    encoder: bool = False,
) -> dict[str, Any]:
    """Count vectors of one seed's candidates and of the split accuracy is scored on (``score``: val or test), over
    the vocabulary the trainer would adapt (``min_df``: ModelConfig's default unless given); with ``encoder``, the
    sentence vectors of the same rows too."""
    from alloop.data import read_records
    from alloop.models import linear
    from alloop.models.config import ModelConfig

    plan = PLANS["linear"]
    if corpus is not None:  # the suite's start: about 200 labels over the classes
        plan = replace(plan, initial_per_class=corpus_initial_per_class(corpus))
    data = prepare_run_data(plan, seed, workdir, cache_dir, None, corpus)  # the benchmark's own splits
    names = corpus.classes if corpus is not None else None
    records = {
        name: read_records(data / f"{name}.jsonl", classes=names, require_label=True)
        for name in {"initial", "pool", "val", score}
    }
    records["test"] = records[score]
    candidates = records["initial"] + records["pool"]
    corpus_texts = sorted({r.text for r in candidates})
    cache = linear.CorpusCache(workdir / "corpus-cache")  # shared with bench/label_efficiency.py's runs
    config = ModelConfig(family="linear", n_classes=len(names) if names else 2)
    if min_df is not None:
        config = replace(config, linear_min_df=min_df)
    vectorizer = cache.vectorizer(config, corpus_texts)
    vectors: dict[str, Any] = {}
    if encoder:
        texts = {name: [r.text for r in rows] for name, rows in (("candidates", candidates), *records.items())}
        vectors = {name: sentence_vectors(texts[name], cache_dir) for name in ("candidates", "val", "test")}
    return {
        "vectors": vectors,
        "counts": cache.counts(vectorizer, [r.text for r in candidates]),
        "labels": np.array([int(r.label) for r in candidates]),
        # Which rows share a text: the trainer's corpus is the set of texts, so a copy of a labelled review is labelled.
        "text_ids": np.unique([r.text for r in candidates], return_inverse=True)[1],
        "test": cache.counts(vectorizer, [r.text for r in records["test"]]),
        "test_labels": np.array([int(r.label) for r in records["test"]]),
        "stats": cache.stats(vectorizer, corpus_texts, config.linear_lsa_components, seed),
        "val": (cache.counts(vectorizer, [r.text for r in records["val"]]), [int(r.label) for r in records["val"]]),
        "n_classes": config.n_classes,
        "initial": len(records["initial"]),
        # What the trainer passes solve() as the validation split's class shares (ModelConfig.linear_class_prior).
        "prior": linear.class_shares([int(r.label) for r in records["val"]], config.n_classes),
    }


def study_budgets(max_labels: int) -> list[int]:
    """The benchmark's ``linear`` rounds up to ``max_labels``, the initial set (labelled first) included."""
    plan = PLANS["linear"]
    return [plan.initial_per_class * 2, *(b for b in plan.budgets if b <= max_labels)]


def unlabelled(data: dict[str, Any], rows: Any) -> Any:
    """The candidates no label covers when ``rows`` are labelled: a copy of a labelled review's text counts as
    labelled, as in the trainer, whose corpus is the set of texts. These are the rows solve() pseudo-labels."""
    return ~np.isin(data["text_ids"], data["text_ids"][rows])


def fitter(data: dict[str, Any], config: Any, seed: int) -> Any:
    """``fit(rows) -> (kernel, bias)`` as the trainer solves a round whose labels are those candidate rows."""
    from alloop.models import linear

    def fit(rows: Any) -> tuple[Any, Any]:
        corpus = data["counts"] if linear.uses_corpus(config) else None  # the trainer's corpus: every candidate
        v = data["vectors"]
        vectors = (
            linear.Vectors(v["candidates"][rows], v["candidates"] if corpus is not None else None, v["val"])
            if v
            else None
        )
        kernel, bias, _ = linear.solve(
            data["counts"][rows],
            data["labels"][rows],
            data["stats"],
            config,
            seed,
            corpus,
            unlabelled(data, rows),
            data["prior"],
            data["val"],
            vectors,
        )
        return kernel, bias

    return fit


def accuracy_on_test(data: dict[str, Any], kernel: Any, bias: Any) -> float:
    from alloop.models import linear

    vectors = data["vectors"].get("test")
    predicted = linear.predict_proba(data["test"], data["stats"].idf, kernel, bias, vectors).argmax(axis=1)
    return float((predicted == data["test_labels"]).mean())


def rounds(
    data: dict[str, Any], config: Any, strategy: str, budgets: list[int], seed: int
) -> tuple[dict[int, float], Any, tuple[Any, Any]]:
    """Test accuracy after each round, the candidate rows labelled at the last budget (a boolean mask), and the
    (kernel, bias) fitted on them."""
    from alloop.models import linear

    fit = fitter(data, config, seed)
    rng = np.random.default_rng(seed)
    labelled = np.zeros(len(data["labels"]), dtype=bool)
    labelled[: data["initial"]] = True
    accuracy: dict[int, float] = {}
    for i, budget in enumerate(budgets):
        kernel, bias = fit(np.flatnonzero(labelled))
        accuracy[budget] = accuracy_on_test(data, kernel, bias)
        if i + 1 == len(budgets):
            break
        pool = np.flatnonzero(~labelled)
        wanted = budgets[i + 1] - int(labelled.sum())
        if strategy == "random":
            chosen = rng.choice(pool, wanted, replace=False)
        else:
            vectors = data["vectors"]["candidates"][pool] if data["vectors"] else None
            probs = linear.predict_proba(data["counts"][pool], data["stats"].idf, kernel, bias, vectors)
            chosen = pool[np.argsort(probs.max(axis=1), kind="stable")[:wanted]]
        labelled[chosen] = True
    return accuracy, labelled, (kernel, bias)


def curve(
    data: dict[str, Any], overrides: dict[str, Any], strategy: str, budgets: list[int], seed: int
) -> dict[int, float]:
    """:func:`rounds`, then the same settings on every candidate (the last key: the full-data accuracy)."""
    from alloop.models.config import ModelConfig

    config = replace(ModelConfig(family="linear", n_classes=data["n_classes"]), **overrides)
    accuracy, _, _ = rounds(data, config, strategy, budgets, seed)
    accuracy[len(data["labels"])] = accuracy_on_test(data, *fitter(data, config, seed)(np.arange(len(data["labels"]))))
    return accuracy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--variant",
        action="append",
        default=None,
        help="name:field=value,... over ModelConfig (default: no pseudo-labels, and the default model)",
    )
    parser.add_argument("--strategy", choices=("least_confidence", "random"), default="least_confidence")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-labels", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".alloop" / "bench")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "alloop")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="default: bench/results/linear_study_pseudo.json (a corpus: linear_study_<corpus>.json)",
    )
    parser.add_argument("--corpus", default=None, help="a suite corpus (bench/corpora.py) instead of IMDB")
    parser.add_argument(
        "--score",
        choices=("val", "test"),
        default=None,
        help="the split accuracy is measured on (default: val on a corpus, test on IMDB)",
    )
    parser.add_argument(
        "--encoder",
        action="store_true",
        help="give the fit the frozen sentence encoder's vectors (the block joins where linear_encoder_scale > 0)",
    )
    parser.add_argument("--budgets", default=None, help="comma list of label totals (default: the linear plan's)")
    args = parser.parse_args(argv)
    variants = [parse_variant(v) for v in (args.variant or DEFAULT_VARIANTS)]
    corpus = None
    if args.corpus:
        from bench import corpora
        from bench.label_efficiency import corpus_sizes

        path, classes = corpora.fetch(args.corpus)
        corpus = corpus_sizes(path, classes)
    score = args.score or ("val" if corpus is not None else "test")
    args.out = args.out or RESULTS / (f"linear_study_{args.corpus}.json" if args.corpus else "linear_study_pseudo.json")
    budgets = study_budgets(args.max_labels)
    if args.budgets:
        budgets = [budgets[0], *sorted(int(b) for b in args.budgets.split(",") if int(b) > budgets[0])]
    if corpus is not None:
        budgets = [
            corpus_initial_per_class(corpus) * len(corpus.classes),
            *(b for b in budgets[1:] if b <= sum(corpus.candidates_per_class())),
        ]
    started = time.monotonic()
    runs: dict[str, list[dict[int, float]]] = {name: [] for name, _ in variants}
    for seed in range(args.seeds):
        features: dict[int | None, dict[str, Any]] = {}  # per vocabulary: a variant may set linear_min_df
        for name, overrides in variants:
            min_df = overrides.get("linear_min_df")
            if min_df not in features:
                features[min_df] = seed_features(
                    seed, args.workdir, args.cache_dir, corpus, score, min_df, args.encoder
                )
            runs[name].append(curve(features[min_df], overrides, args.strategy, budgets, seed))
            print(f"{name}/seed {seed}: " + " ".join(f"{n}:{a:.4f}" for n, a in runs[name][-1].items()), flush=True)
    summary = {name: {str(n): float(np.mean([r[n] for r in rs])) for n in rs[0]} for name, rs in runs.items()}
    result = {
        "device": device(),
        "strategy": args.strategy,
        "seeds": args.seeds,
        "budgets": budgets,
        "corpus": args.corpus or "imdb",
        "scored_on": score,
        "variants": dict(variants),
        "encoder": args.encoder,
        "wall_seconds": round(time.monotonic() - started, 1),
        "mean_accuracy": summary,  # the last key of each is every candidate: the variant's full-data accuracy
        "runs": {name: [{str(n): a for n, a in r.items()} for r in rs] for name, rs in runs.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
