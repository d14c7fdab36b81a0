"""What a lease and a label batch cost in Redis as the labeling queue grows: the claim is that both stay flat.

An embedded Redis, the real LabelingStore scripts, no gRPC (this isolates the work done inside single-threaded
Redis, where a slow script blocks every other client). For each queue length, a pool of that many items is queued,
then batches of 50 labels are submitted for queued items (not leased: the case that used to scan the queue) and
batches of 50 items are leased; each is timed as the median over the batches. Results: bench/results/label_cost.json.

    python -m bench.label_cost                                  # queues of 1,000, 10,000 and 100,000 items
    python -m bench.label_cost --sizes 1000,10000,100000,1000000  # and 1,000,000 (about 90 s on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from alloop.store.connection import EmbeddedRedis, connect
from alloop.store.keys import Keys
from alloop.store.labeling import LabelingStore, LabelSubmission, QueuedTask
from alloop.store.pool import PoolStore
from bench.device import device

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BATCH = 50
BATCHES = 8  # 400 labelled and 400 leased: fits the smallest queue


def measure(queued: int, directory: Path) -> tuple[dict[str, Any], str]:
    with EmbeddedRedis(directory, appendonly=False) as server:
        client = connect(server.url)
        version = str(client.info("server")["redis_version"])
        keys = Keys("bench")
        pools, labeling = PoolStore(client, keys), LabelingStore(client, keys)
        ids = [f"i{n:07d}" for n in range(queued)]
        for start in range(0, queued, 10_000):
            pools.add("p", [(i, f"text of {i}") for i in ids[start : start + 10_000]])
            labeling.enqueue("p", [(i, QueuedTask(0.5, 1, "least_confidence")) for i in ids[start : start + 10_000]])
        # Label items from the back of the queue (a full LREM scan could not stop early there either).
        submit_ms = []
        for b in range(BATCHES):
            batch = ids[queued - (b + 1) * BATCH : queued - b * BATCH]
            started = time.perf_counter()
            labeling.submit([LabelSubmission("p", i, 1) for i in batch], "bench")
            submit_ms.append((time.perf_counter() - started) * 1000)
        lease_ms = []
        for _ in range(BATCHES):
            started = time.perf_counter()
            leased = labeling.lease(BATCH, 60)
            lease_ms.append((time.perf_counter() - started) * 1000)
            assert len(leased) == BATCH
        client.close()
    return {
        "submit_50_ms_p50": round(statistics.median(submit_ms), 3),
        "lease_50_ms_p50": round(statistics.median(lease_ms), 3),
    }, version


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="queue lengths, comma-separated")
    parser.add_argument("--out", type=Path, default=RESULTS / "label_cost.json")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows = {}
    server_version = ""
    with tempfile.TemporaryDirectory(prefix="alloop-label-cost-") as tmp:
        for size in sizes:
            rows[str(size)], server_version = measure(size, Path(tmp) / str(size))
            print(size, rows[str(size)], flush=True)
    result = {
        "what": "median ms per batch of 50 (labels submitted for queued items; items leased), by queue length",
        "batches": BATCHES,
        "device": device(),
        "redis": "redis-server " + server_version,
        "queued": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
