"""What the `linear` family's sentence-encoder block is worth, corpus by corpus: the same in-process curves as
bench/linear_study.py (the product's own solver, least-confidence rounds), without and with the block on offer,
scored on each corpus' validation split. Where the block is on offer, the round's selection still decides whether
it joins (``ALLOOP_LINEAR_SELECT``, on the validation split by default), so "with" is what a user who sets
``ALLOOP_ENCODER_DIR`` gets.

    python -m bench.encoder_block --corpora rt-snippets,crowdflower-tweets --seeds 1 --max-labels 2000
    python -m bench.encoder_block --report bench/results/encoder_block.json

Each corpus' curves land in bench/results/encoder_block/<corpus>.json (bench/linear_study.py's format); the
summary, bench/results/encoder_block.json, keeps per corpus and budget the mean validation accuracy of both and
their difference. The test split is not read. The encoder's vectors are computed once per text set and kept under
the cache directory (``.cache/alloop/sentence-vectors``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench import linear_study
from bench.device import device

RESULTS = linear_study.RESULTS
VARIANTS = ("tfidf:linear_encoder_scale=0", "encoder:")
SHOWN = (500, 1000, 2000, 5000)  # the columns of the report (the nearest measured budget), then full data


def run(corpora: list[str], seeds: int, max_labels: int, out_dir: Path, cache_dir: Path) -> dict[str, Any]:
    started = time.monotonic()
    summary: dict[str, Any] = {}
    for corpus in corpora:
        out = out_dir / f"{corpus}.json"
        argv = ["--corpus", corpus, "--encoder", "--strategy", "least_confidence", "--seeds", str(seeds)]
        argv += ["--max-labels", str(max_labels), "--cache-dir", str(cache_dir), "--out", str(out)]
        for variant in VARIANTS:
            argv += ["--variant", variant]
        print(f"== {corpus}", flush=True)
        if linear_study.main(argv) != 0:
            raise SystemExit(f"{corpus}: bench.linear_study failed")
        summary[corpus] = summarize(out, seeds)
    return {
        "device": device(),
        "strategy": "least_confidence",
        "variants": list(VARIANTS),
        "wall_seconds": round(time.monotonic() - started, 1),
        "corpora": summary,
    }


def summarize(out: Path, seeds: int) -> dict[str, Any]:
    """One corpus' row of the summary, from its bench/linear_study.py results file."""
    curves = json.loads(out.read_text())
    without, with_block = (curves["mean_accuracy"][name.partition(":")[0]] for name in VARIANTS)
    return {
        "file": str(out.relative_to(RESULTS.parents[1])),
        "seeds": seeds,
        "scored_on": curves["scored_on"],
        "budgets": {
            budget: {
                "without": without[budget],
                "with": with_block[budget],
                "gain": with_block[budget] - without[budget],
            }
            for budget in without
        },
        "wall_seconds": curves["wall_seconds"],
    }


def report(result: dict[str, Any]) -> str:
    """A table: per corpus, validation accuracy without and with the block (points) at a few budgets and on all
    candidates, the measured budget nearest each column."""
    lines = [
        f"{result['device']}; {result['strategy']} rounds; validation accuracy (%), mean over seeds: without the "
        "block → with it on offer; each column shows the measured budget nearest it (within 20%)."
        + (f" Not finished: {', '.join(result['not_finished'])}." if result.get("not_finished") else ""),
        "",
        "| corpus | seeds | " + " | ".join(f"{b:,} labels" for b in SHOWN) + " | all candidates |",
        "|---|---|" + "---|" * (len(SHOWN) + 1),
    ]
    for corpus, row in result["corpora"].items():
        budgets = sorted(int(b) for b in row["budgets"])
        full = budgets[-1]
        cells = []
        for wanted in SHOWN:
            near = min(budgets[:-1], key=lambda b: abs(b - wanted)) if len(budgets) > 1 else None
            if near is None or abs(near - wanted) > wanted * 0.2:
                cells.append("")
                continue
            cells.append(_cell(row["budgets"][str(near)]))
        cells.append(_cell(row["budgets"][str(full)]) + f" ({full:,})")
        lines.append(f"| {corpus} | {row['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(point: dict[str, float]) -> str:
    return f"{100 * point['without']:.1f} → {100 * point['with']:.1f} ({100 * point['gain']:+.1f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", default="rt-snippets,crowdflower-tweets,bbc-news,brown-genre,spamassassin")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--max-labels", type=int, default=5000)
    parser.add_argument("--cache-dir", type=Path, default=linear_study.ROOT / ".cache" / "alloop")
    parser.add_argument("--out", type=Path, default=RESULTS / "encoder_block.json")
    parser.add_argument("--report", type=Path, default=None, help="print the table of a results file and exit")
    args = parser.parse_args(argv)
    if args.report is not None:
        print(report(json.loads(args.report.read_text())))
        return 0
    result = run(
        [c for c in args.corpora.split(",") if c],
        args.seeds,
        args.max_labels,
        RESULTS / "encoder_block",
        args.cache_dir,
    )
    from alloop.data.files import write_json

    write_json(args.out, result)
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
