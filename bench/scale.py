"""How the serving path holds up as the pool grows, through the real services (Redis, trainer, one query replica).

For each pool size: the pool is the demo's IMDB pool repeated with unique ids and a suffix, so every text differs.
Measured: SubmitPool items/s and the longest Redis stall seen meanwhile by a PING probe every 10 ms; after a new
version is published (TrainerService.Train), the seconds until the replica serves it and until the pool's ranking
for it is complete, with the ratio of the scoring rate after the swap to in-process scoring of the same texts; Query p50/p99 for
least_confidence (read from the score index) and kmeans_diversity (a sample of ``--kmeans-candidates``); lease +
submit labels/s from 8 threads; the replica's peak RSS; Redis bytes per pool item. Results:
bench/results/scale.json (keys per pool size as a string).

    python -m bench.scale                         # 10,000 and 100,000 items
    python -m bench.scale --sizes 10000 --out /tmp/scale.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.device import device

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
UPLOAD_BATCH = 1000  # items per SubmitPool message
STREAM_ITEMS = 50_000  # items per SubmitPool stream (below ALLOOP_MAX_UPLOAD_ITEMS)


class StallProbe:
    """PINGs Redis every 10 ms on its own connection; ``worst_ms`` is the longest a PING waited."""

    def __init__(self, url: str) -> None:
        from alloop.store.connection import connect

        self._client = connect(url)
        self._stop = threading.Event()
        self.worst_ms = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            self._client.ping()
            self.worst_ms = max(self.worst_ms, (time.perf_counter() - started) * 1000)
            self._stop.wait(0.01)

    def __enter__(self) -> StallProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(size: int, texts: list[str], args: argparse.Namespace, work: Path, data: Path) -> dict[str, Any]:
    import numpy as np

    from alloop import artifacts
    from alloop.models.text_model import Predictor
    from alloop.store.connection import connect
    from alloop.store.keys import Keys
    from alloop.store.scores import ScoreIndex
    from alloop.store.versions import VersionRegistry
    from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc, trainer_pb2, trainer_pb2_grpc
    from clients.common import open_channel
    from clients.stack import local_stack

    run_dir = work / f"run-{size}-{time.strftime('%Y%m%d-%H%M%S')}"
    env = {"ALLOOP_RETRAIN_THRESHOLD": "1000000", "ALLOOP_MAX_POOL_ITEMS": str(max(size, 1_000_000))}
    out: dict[str, Any] = {}
    with local_stack(run_dir, data, env) as stack:
        client = connect(stack.redis_url)
        keys = Keys()
        index = ScoreIndex(client, keys)
        query = query_pb2_grpc.QueryServiceStub(open_channel(stack.query))
        trainer = trainer_pb2_grpc.TrainerServiceStub(open_channel(stack.trainer))
        wait_until(lambda: query_version(query) > 0, 300)
        memory_before = int(client.info("memory")["used_memory"])

        items = [(f"s{i:07d}", f"{texts[i % len(texts)]} #{i}") for i in range(size)]

        def stream(chunk: list[tuple[str, str]]) -> Any:
            for start in range(0, len(chunk), UPLOAD_BATCH):
                batch = chunk[start : start + UPLOAD_BATCH]
                yield query_pb2.SubmitPoolRequest(
                    pool="scale", items=[query_pb2.PoolItem(id=i, text=t) for i, t in batch]
                )

        with StallProbe(stack.redis_url) as probe:
            started = time.perf_counter()
            for start in range(0, size, STREAM_ITEMS):
                query.SubmitPool(stream(items[start : start + STREAM_ITEMS]))
            upload_s = time.perf_counter() - started
        out["submit_items_per_second"] = round(size / upload_s)
        out["max_redis_stall_ms"] = round(probe.worst_ms, 1)

        # A new version: time to serve it, and to a complete ranking of the whole pool.
        version = trainer.Train(trainer_pb2.TrainRequest(wait=True)).version.version
        published = time.perf_counter()
        wait_until(lambda: query_version(query) >= version, 300)
        out["swap_seconds"] = round(time.perf_counter() - published, 2)
        wait_until(lambda: index.progress("scale", version).complete, 3600, interval=0.05)
        fresh_s = time.perf_counter() - published
        out["index_fresh_seconds"] = {"1": round(fresh_s, 2)}
        meta = VersionRegistry(client, keys).get(version) or {}
        predictor = Predictor(artifacts.load_version(stack.run_dir / "models", version, meta["sha256"]))
        sample = [t for _, t in items[: min(size, 5000)]]
        predictor.predict_proba(sample[:10])
        started = time.perf_counter()
        predictor.predict_proba(sample)
        in_process_rate = len(sample) / (time.perf_counter() - started)
        # Scoring rate once the replica serves the version (the swap is reported on its own) against in-process.
        scoring_s = fresh_s - out["swap_seconds"]
        out["rescore_ratio_to_in_process"] = {"1": round((size / scoring_s) / in_process_rate, 3)}
        out["redis_bytes_per_item"] = round((int(client.info("memory")["used_memory"]) - memory_before) / size)

        latencies: dict[str, list[float]] = {"least_confidence": [], "kmeans_diversity": []}
        for name, strategy, repeats, candidates in (
            ("least_confidence", common_pb2.STRATEGY_LEAST_CONFIDENCE, args.queries, 0),
            (
                "kmeans_diversity",
                common_pb2.STRATEGY_KMEANS_DIVERSITY,
                max(3, args.queries // 5),
                args.kmeans_candidates,
            ),
        ):
            for _ in range(repeats):
                started = time.perf_counter()
                query.Query(
                    query_pb2.QueryRequest(pool="scale", strategy=strategy, k=args.k, max_candidates=candidates)
                )
                latencies[name].append((time.perf_counter() - started) * 1000)
        out["query_p50_ms"] = {n: round(statistics.median(v), 1) for n, v in latencies.items()}
        out["query_p99_ms"] = {n: round(float(np.percentile(v, 99)), 1) for n, v in latencies.items()}

        queued = int(client.zcard(keys.queue))
        done = [0]
        stop = time.perf_counter() + args.label_seconds

        def labeler(n: int) -> None:
            rng = np.random.default_rng(n)
            while time.perf_counter() < stop:
                tasks = query.LeaseTasks(query_pb2.LeaseTasksRequest(labeler=f"l{n}", max_items=50)).tasks
                if not tasks:
                    return
                query.SubmitLabels(
                    query_pb2.SubmitLabelsRequest(
                        labeler=f"l{n}",
                        labels=[query_pb2.Label(pool=t.pool, id=t.id, label=int(rng.integers(2))) for t in tasks],
                    )
                )
                done[0] += len(tasks)

        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(labeler, range(8)))
        out["labels_per_second"] = {str(queued): round(done[0] / (time.perf_counter() - started))}
        out["replica_rss_bytes"] = peak_rss_bytes(stack.query_pid)
    return out


def query_version(stub: Any) -> int:
    import grpc

    from alloop.v1 import query_pb2

    try:
        return int(stub.GetModel(query_pb2.GetModelRequest()).version.version)
    except grpc.RpcError:
        return 0


def wait_until(predicate: Any, timeout: float, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {timeout:.0f}s")
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="pool sizes, comma-separated")
    parser.add_argument("-k", type=int, default=100)
    parser.add_argument("--queries", type=int, default=20, help="least_confidence Queries per size")
    parser.add_argument("--kmeans-candidates", type=int, default=10_000)
    parser.add_argument("--label-seconds", type=float, default=5.0)
    parser.add_argument("--workdir", type=Path, default=Path(".alloop/bench/scale"))
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/alloop"))
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    args = parser.parse_args(argv)

    from alloop.data.prepare import prepare
    from clients.demo import DEMOS

    work = args.workdir.resolve()
    data = prepare(work / "data", source="npm", cache_dir=args.cache_dir, **DEMOS["linear"].sizes)
    with (data / "pool.jsonl").open(encoding="utf-8") as rows:
        texts = [json.loads(line)["text"] for line in rows if line.strip()]
    result: dict[str, Any] = {"device": device(), "replicas": 1, "k": args.k, "sizes": {}}
    for size in [int(s) for s in args.sizes.split(",")]:
        print(f"pool of {size:,} items ...", flush=True)
        result["sizes"][str(size)] = measure(size, texts, args, work, data)
        print(json.dumps(result["sizes"][str(size)], indent=2), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
