"""How large a pool sample the linear family needs: validation accuracy and round time against the sample's size.

Past ``ALLOOP_POOL_SAMPLE_ITEMS`` pool items a round learns its vocabulary, IDF, LSA basis and pseudo-labelled rows
from a seeded sample of the pools (:meth:`alloop.store.pool.PoolStore.sample_texts`). This measures what a smaller
sample costs in accuracy, on IMDB's benchmark pool (39,800 items) stored in an embedded Redis through the product's
own PoolStore, with the product's round (:func:`alloop.models.training.train_round`) on random labels: initial labels
as in the benchmark, then random pool items up to each budget. Scored on the **validation** split only: this chooses
a default, so the test split is never read. The ``all`` row is the unsampled path, whose corpus also holds the
labelled texts (a sample's does not). Results: ``bench/results/pool_sample.json``.

    python -m bench.pool_sample                                     # samples of 5k, 10k, 20k and all; ~10 minutes
    python -m bench.pool_sample --sizes 5000,0 --budgets 1000 --seeds 1   # 0 means the whole pool
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from alloop.data.files import read_records, write_json
from alloop.models.config import ModelConfig, TrainingConfig
from alloop.models.families import get_family
from alloop.models.training import LabeledData, train_round
from alloop.store.connection import EmbeddedRedis, connect
from alloop.store.keys import Keys
from alloop.store.pool import PoolStore
from bench.device import device
from bench.label_efficiency import PLANS, ROOT, prepare_run_data

RESULTS = ROOT / "bench" / "results"
POOL = "imdb"


def labeled(records: list[Any]) -> LabeledData:
    return LabeledData([r.text for r in records], [r.known_label for r in records])


def curve_rows(data_dir: Path, seed: int, sizes: list[int], budgets: list[int], work: Path) -> list[dict[str, Any]]:
    """One seed: every (sample size, budget) round's validation accuracy and seconds (sampling included)."""
    initial = read_records(data_dir / "initial.jsonl", require_label=True)
    val = labeled(read_records(data_dir / "val.jsonl", require_label=True))
    pool = read_records(data_dir / "pool.jsonl", require_label=True)
    picks = np.random.default_rng(seed).permutation(len(pool))
    rows = []
    with EmbeddedRedis(work / f"redis-{seed}", appendonly=False) as server:
        client = connect(server.url)
        pools = PoolStore(client, Keys("bench"))
        pools.add(POOL, [(r.id, r.text) for r in pool])
        for size in sizes:
            # One corpus cache per sample, as one trainer keeps: the second budget reuses the sample's statistics.
            cache = get_family("linear").new_cache(work / f"cache-{seed}-{size}")
            for budget in budgets:
                chosen = [pool[int(i)] for i in picks[: max(0, budget - len(initial))]]
                started = time.monotonic()
                texts, sampled = pools.sample_texts(size or len(pool), seed)
                result = train_round(
                    labeled(initial + chosen),
                    val,
                    LabeledData([], []),
                    model_config=ModelConfig(family="linear"),
                    training=TrainingConfig(seed=seed),
                    work_dir=work / "round",
                    unlabeled_texts=texts,
                    unlabeled_is_sample=sampled,
                    cache=cache,
                )
                rows.append(
                    {
                        "seed": seed,
                        "sample": size or "all",
                        "sampled_items": len(texts),
                        "budget": budget,
                        "val_accuracy": round(result.validation.accuracy, 4),
                        "round_seconds": round(time.monotonic() - started, 1),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
        client.close()
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per sample (as a string) and budget (as a string): median and spread of validation accuracy over seeds, and
    the median round time."""
    out: dict[str, Any] = {}
    for row in rows:
        out.setdefault(str(row["sample"]), {}).setdefault(str(row["budget"]), []).append(row)
    return {
        sample: {
            budget: {
                "val_accuracy_median": statistics.median(r["val_accuracy"] for r in group),
                "val_accuracy_min": min(r["val_accuracy"] for r in group),
                "val_accuracy_max": max(r["val_accuracy"] for r in group),
                "round_seconds_median": statistics.median(r["round_seconds"] for r in group),
                "seeds": len(group),
            }
            for budget, group in budgets.items()
        }
        for sample, budgets in out.items()
    }


def report(result: dict[str, Any]) -> str:
    """A markdown table: validation accuracy (median, min–max over seeds) and round seconds per sample and budget."""
    summary = result["summary"]
    budgets = sorted({int(b) for per in summary.values() for b in per})
    lines = [
        "| sample | " + " | ".join(f"{b:,} labels: val. accuracy, round" for b in budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    for sample, per in summary.items():
        cells = []
        for b in budgets:
            c = per.get(str(b))
            cells.append(
                f"{100 * c['val_accuracy_median']:.2f}% ({100 * c['val_accuracy_min']:.2f}–"
                f"{100 * c['val_accuracy_max']:.2f}), {c['round_seconds_median']:.0f} s"
                if c
                else "–"
            )
        name = sample if sample == "all" else f"{int(sample):,}"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,10000,20000,0", help="sample sizes, comma-separated; 0: all")
    parser.add_argument("--budgets", default="1000,5000", help="labels, comma-separated")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "alloop", help="the IMDB download")
    parser.add_argument("--out", type=Path, default=RESULTS / "pool_sample.json")
    parser.add_argument("--report", action="store_true", help="print the table of --out and exit")
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.loads(args.out.read_text())))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    budgets = [int(b) for b in args.budgets.split(",") if b]
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="alloop-pool-sample-") as tmp:
        work = Path(tmp)
        for seed in range(args.seeds):
            data_dir = prepare_run_data(PLANS["linear"], seed, work, args.cache_dir, None, None)
            rows += curve_rows(data_dir, seed, sizes, budgets, work)
    result = {
        "benchmark": "pool_sample",
        "corpus": "imdb",
        "score": "validation",
        "strategy": "random",
        "device": device(),
        "seconds": round(time.monotonic() - started),
        "rows": rows,
        "summary": summarize(rows),
    }
    write_json(args.out, result)
    print(report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
