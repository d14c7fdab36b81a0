"""How far active learning's labels can still go: what the ``linear`` family's least-confidence model would gain
at 10,000 labels if it knew more than its labels.

    python -m bench.label_ceiling                  # 3 seeds, 10,000 labels: ~20 min on 2 cores
    python -m bench.label_ceiling --seeds 1 --labels 5000

Why: ``labels_to_full_accuracy`` (issue #4's target: reach the family's own all-labels accuracy with at most
10,000) stayed about 0.3 point short through many changes to the model, the loss and the rounds. Before another
selection rule is tried, this measures the room any selection rule has. It runs the least-confidence rounds of
bench/linear_study.py (the same splits, initial sets and fits as the services' benchmark) to ``--labels``, then fits
that label set again with extra knowledge:

- ``as_trained``: the label set as the product fits it (pseudo-labelled pool rows included);
- ``oracle_pseudo_labels``: the pool's unlabelled rows carry their *true* labels at the pseudo-label weights, so
  what is left is the cost of the pseudo-labels' mistakes;
- ``oracle_pool_weight_1``: the same rows at full weight, every one of the 40,000 true labels known, yet the
  labelled set's own settings (LSA weight, importance);
- ``plus_mispredicted_labelled``: every pool review the model gets wrong is labelled too: what a perfect
  "find my confident mistakes" strategy would buy;
- ``plus_next_round``: the next least-confidence round (1,000 more labels), for scale;
- ``full_data``: the family's all-labels model, the target.

The oracle rows swap :func:`alloop.models.linear.pseudo_labels` for the truth while they fit; nothing else
changes. Output: ``bench/results/label_ceiling.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from bench.device import device
from bench.label_efficiency import ROOT
from bench.linear_study import RESULTS, accuracy_on_test, fitter, rounds, seed_features, study_budgets, unlabelled

ROUND = 1_000  # the benchmark's round size above 2,000 labels


def truth_for(labels: np.ndarray, weight: float | None) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """A stand-in for ``pseudo_labels`` that returns the unlabelled rows' true labels: at the weights the real one
    gives (``weight=None``) or at ``weight`` for every row."""
    from alloop.models import linear

    real = linear.pseudo_labels

    def oracle(predicted: np.ndarray, classes: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        guessed, weights = real(predicted, classes, scale)
        if len(labels) != len(guessed):
            raise RuntimeError(f"the oracle knows {len(labels)} unlabelled rows, the fit asks about {len(guessed)}")
        return labels.copy(), (weights if weight is None else np.full(len(guessed), weight))

    return oracle


def measure(data: dict[str, Any], labels: int, seed: int) -> dict[str, Any]:
    from alloop.models import linear
    from alloop.models.config import ModelConfig

    config = ModelConfig(family="linear")
    budgets = study_budgets(labels)
    curve, labelled, (kernel, bias) = rounds(data, config, "least_confidence", budgets, seed)
    fit = fitter(data, config, seed)
    rows = np.flatnonzero(labelled)
    pool = np.flatnonzero(~labelled)
    probs = linear.predict_proba(data["counts"][pool], data["stats"].idf, kernel, bias)
    wrong = pool[probs.argmax(axis=1) != data["labels"][pool]]
    truth = data["labels"][unlabelled(data, rows)]  # in corpus order, as solve() asks about them

    def with_oracle(weight: float | None) -> float:
        with mock.patch.object(linear, "pseudo_labels", truth_for(truth, weight)):
            return accuracy_on_test(data, *fit(rows))

    nxt = pool[np.argsort(probs.max(axis=1), kind="stable")[:ROUND]]
    return {
        "labels": int(labelled.sum()),
        "curve": {str(n): a for n, a in curve.items()},
        "as_trained": curve[budgets[-1]],
        "oracle_pseudo_labels": with_oracle(None),
        "oracle_pool_weight_1": with_oracle(1.0),
        "pool_mispredicted": len(wrong),
        "pool_size": len(pool),
        "plus_mispredicted_labelled": accuracy_on_test(data, *fit(np.concatenate([rows, wrong]))),
        "plus_next_round": accuracy_on_test(data, *fit(np.concatenate([rows, nxt]))),
        "full_data": accuracy_on_test(data, *fit(np.arange(len(data["labels"])))),
    }


KEYS = (
    "as_trained",
    "oracle_pseudo_labels",
    "oracle_pool_weight_1",
    "plus_mispredicted_labelled",
    "plus_next_round",
    "full_data",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--labels", type=int, default=10_000, help="the label budget to examine")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".alloop" / "bench")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "alloop")
    parser.add_argument("--out", type=Path, default=RESULTS / "label_ceiling.json")
    args = parser.parse_args(argv)
    started = time.monotonic()
    runs = []
    for seed in range(args.seeds):
        runs.append(measure(seed_features(seed, args.workdir, args.cache_dir), args.labels, seed))
        print(f"seed {seed}: " + " ".join(f"{k}={runs[-1][k]:.4f}" for k in KEYS), flush=True)
    mean = {k: float(np.mean([r[k] for r in runs])) for k in KEYS}
    result = {
        "device": device(),
        "strategy": "least_confidence",
        "labels": args.labels,
        "seeds": args.seeds,
        "wall_seconds": round(time.monotonic() - started, 1),
        "mean_accuracy": mean,
        "range": {k: [min(r[k] for r in runs), max(r[k] for r in runs)] for k in KEYS},
        "gap_to_full_data": {k: mean[k] - mean["full_data"] for k in KEYS},
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({"mean_accuracy": mean}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
