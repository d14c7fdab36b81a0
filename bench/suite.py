"""The label-efficiency benchmark across the corpus suite (bench/corpora.py): one run per corpus through the services,
small-text and modAL in the same run on the same splits, and one summary.

    python -m bench.suite --quick          # 1 seed, least-confidence, 500/1,000/2,000 labels, 5,000 candidates
    python -m bench.suite                  # 3 seeds, random + least-confidence + k-means diversity, up to 10,000
    python -m bench.suite --report bench/results/suite.json

Each corpus gets bench.label_efficiency's own run (its results file in bench/results/suite/), with the same start
everywhere: about 200 initial labels, split evenly over the classes. The summary (bench/results/suite.json and
.png) keeps per corpus its classes, size, seeds, the margin of alloop's best strategy over the best peer per budget
(accuracy difference as a fraction, keyed by the budget as a string), and the full-data accuracy of alloop's model
and of the best peer's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench import corpora, label_efficiency
from bench.device import device

RESULTS = label_efficiency.RESULTS
INITIAL_LABELS = 200  # split evenly over a corpus's classes, so every corpus starts from about as many labels
QUICK = {"strategies": "least_confidence", "seeds": 1, "budgets": "500,1000,2000", "pool_limit": 5000}
FULL = {
    "strategies": "random,least_confidence,kmeans_diversity",
    "seeds": 3,
    "budgets": "500,1000,1500,2000,3000,5000,7000,10000",
    "pool_limit": None,
}


def run_corpus(
    name: str, quick: bool, out_dir: Path, cache: Path, workdir: Path, reuse: bool = False
) -> dict[str, Any]:
    """bench.label_efficiency on one suite corpus (or, with ``reuse``, its results file from an earlier run of the
    same mode); returns the results file's content."""
    path, classes = corpora.fetch(name, cache)
    settings = QUICK if quick else FULL
    out = out_dir / f"{name}{'_quick' if quick else ''}.json"
    if reuse and out.exists():
        print(f"{name}: reusing {out}", flush=True)
        return {"file": _shown(out), "reused": True, **json.loads(out.read_text())}
    argv = [
        "--corpus",
        str(path),
        "--classes",
        ",".join(classes),
        "--families",
        "linear",
        "--strategies",
        str(settings["strategies"]),
        "--seeds",
        str(settings["seeds"]),
        "--budgets",
        str(settings["budgets"]),
        "--initial-per-class",
        str(initial_per_class(path, classes, settings["pool_limit"])),
        "--workdir",
        str(workdir / name),
        "--cache-dir",
        str(label_efficiency.ROOT / ".cache" / "alloop"),
        "--out",
        str(out),
    ]
    if settings["pool_limit"]:
        argv += ["--pool-limit", str(settings["pool_limit"])]
    label_efficiency.main(argv)
    return {"file": _shown(out), **json.loads(out.read_text())}


def _shown(path: Path) -> str:
    return str(path.relative_to(label_efficiency.ROOT)) if path.is_relative_to(label_efficiency.ROOT) else str(path)


def initial_per_class(path: Path, classes: tuple[str, ...], pool_limit: int | None) -> int:
    """About INITIAL_LABELS in all, at most what the corpus's plan fitting allows (a tenth of its smallest class)."""
    corpus = label_efficiency.corpus_sizes(path, classes)
    return max(1, min(corpus.most_initial_per_class(pool_limit), INITIAL_LABELS // len(classes)))


def corpus_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The suite's keys for one corpus's results file."""
    peers = (result.get("peers") or {}).get("peers") or {}
    ceilings = [a for entry in peers.values() if (a := entry.get("full_data", {}).get("accuracy")) is not None]
    candidates = result["full_data"]["linear"]["labels"]
    corpus = result["corpus"]
    return {
        "file": result.get("file"),
        "reused": result.get("reused", False),
        "classes": corpus["classes"],
        "size": candidates + (corpus["val_per_class"] + corpus["test_per_class"]) * len(corpus["classes"]),
        "candidates": candidates,
        "test_per_class": corpus["test_per_class"],
        "seeds": max(result["seeds"].values()) if isinstance(result["seeds"], dict) else result["seeds"],
        "peer_margin": result.get("peer_margin", {}),
        "full_data": {
            "alloop": result["full_data"]["linear"]["accuracy"],
            "best_peer": max(ceilings) if ceilings else None,
        },
        "labels_to_best_peer_full_accuracy": result.get("labels_to_best_peer_full_accuracy"),
    }


def summarize(per_corpus: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Across corpora: where alloop leads or trails the best peer, and by how much at most."""
    margins = [(name, int(b), m) for name, c in per_corpus.items() for b, m in c["peer_margin"].items()]
    behind = sorted((name, b, m) for name, b, m in margins if m < 0)
    full_gap = {
        name: round(c["full_data"]["alloop"] - c["full_data"]["best_peer"], 4)
        for name, c in per_corpus.items()
        if c["full_data"]["best_peer"] is not None
    }
    return {
        "budgets_compared": len(margins),
        "budgets_ahead": len(margins) - len(behind),
        "behind": [{"corpus": n, "labels": b, "margin": m} for n, b, m in behind],
        "worst_margin": min((m for _, _, m in margins), default=None),
        "full_data_gap": full_gap,  # alloop's full-data model minus the best peer's, per corpus
    }


def report(suite: dict[str, Any]) -> str:
    """Markdown: one row per corpus, alloop's best strategy minus the best peer (points) per budget, and the
    full-data models."""
    budgets = sorted({int(b) for c in suite["corpora"].values() for b in c["peer_margin"]})
    lines = [
        "| corpus | classes | candidates | seeds | "
        + " | ".join(f"{b:,}" for b in budgets)
        + " | full data: alloop | best peer |",
        "|---" * (len(budgets) + 6) + "|",
    ]
    for name, c in suite["corpora"].items():
        cells = [f"{c['peer_margin'][str(b)] * 100:+.1f}" if str(b) in c["peer_margin"] else "" for b in budgets]
        best = c["full_data"]["best_peer"]
        lines.append(
            f"| {name} | {len(c['classes'])} | {c['candidates']:,} | {c['seeds']} | "
            + " | ".join(cells)
            + f" | {c['full_data']['alloop'] * 100:.1f} | {'' if best is None else f'{best * 100:.1f}'} |"
        )
    return "\n".join(lines)


def plot(suite: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, c in suite["corpora"].items():
        points = sorted((int(b), m * 100) for b, m in c["peer_margin"].items())
        ax.plot([b for b, _ in points], [m for _, m in points], marker="o", label=name)
    ax.axhline(0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("labels")
    ax.set_ylabel("alloop minus best peer (points)")
    ax.set_title("alloop's best strategy against small-text and modAL, per corpus")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="1 seed, one strategy, up to 2,000 labels, 5,000 candidates"
    )
    parser.add_argument(
        "--corpora",
        default=",".join(corpora.CORPORA),
        help="comma list of suite corpora (default: all; bench/corpora.py --list)",
    )
    parser.add_argument("--cache", type=Path, default=corpora.DEFAULT_CACHE)
    parser.add_argument("--workdir", type=Path, default=label_efficiency.ROOT / ".alloop" / "suite")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: bench/results/suite.json (quick: suite_quick.json)"
    )
    parser.add_argument("--report", type=Path, default=None, help="print a suite file's table (markdown) and exit")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="take a corpus's results file from an earlier run of the same mode where there is one",
    )
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return 0
    names = [n for n in args.corpora.split(",") if n]
    unknown = [n for n in names if n not in corpora.CORPORA]
    if unknown:
        parser.error(f"unknown corpora {', '.join(unknown)}; choose from {', '.join(corpora.CORPORA)}")
    out = args.out or RESULTS / ("suite_quick.json" if args.quick else "suite.json")
    started = time.monotonic()
    per_corpus: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for name in names:
        t0 = time.monotonic()
        try:
            result = run_corpus(name, args.quick, out.parent / "suite", args.cache, args.workdir, args.reuse)
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {str(exc)[:500]}"
            print(f"{name}: FAILED {failed[name]}", flush=True)
            continue
        per_corpus[name] = {**corpus_summary(result), "seconds": round(time.monotonic() - t0, 1)}
        print(f"{name}: {json.dumps(per_corpus[name]['peer_margin'])}", flush=True)
    suite = {
        "device": device(),
        "quick": args.quick,
        "settings": QUICK if args.quick else FULL,
        "initial_labels": INITIAL_LABELS,
        "wall_seconds": round(time.monotonic() - started, 1),
        "corpora": per_corpus,
        "failed": failed,
        "summary": summarize(per_corpus),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(suite, indent=2))
    plot(suite, out.with_suffix(".png"))
    print(report(suite))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
