"""How the serving path holds up as the pool grows, through the real services (Redis, trainer, query replicas).

For each pool size: the pool is the demo's IMDB pool repeated with unique ids and a suffix, so every text differs.
Measured: SubmitPool items/s and the longest Redis stall seen meanwhile by a PING probe every 10 ms; after a new
version is published (TrainerService.Train), the seconds until the replica serves it and until the pool's ranking
for it is complete, with the ratio of the scoring rate after the swap to in-process scoring of the same texts; Query p50/p99 for
least_confidence and kmeans_diversity (both from the score index: the top k, and the top 10 * k by margin; a
``--kmeans-candidates`` sample instead where given); lease +
submit labels/s from 8 threads; the first replica's peak RSS; Redis bytes per pool item; and over ``--swaps`` more
published versions, the seconds from each announcement until every replica serves it, while a thread per replica
sends Predicts (``--swap-rate`` a second) and counts those that fail. ``--replicas`` query replicas (default 2) share the pool's scoring.
Results: bench/results/scale.json (keys per pool size as a string).

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
    replicas = args.replicas
    with local_stack(run_dir, data, env, replicas=replicas) as stack:
        client = connect(stack.redis_url)
        keys = Keys()
        index = ScoreIndex(client, keys)
        query = query_pb2_grpc.QueryServiceStub(open_channel(stack.query))
        stubs = [query_pb2_grpc.QueryServiceStub(open_channel(address)) for address in stack.replicas]
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
        wait_until(lambda: all(query_version(stub) >= version for stub in stubs), 300)
        first_swap = time.perf_counter() - published
        wait_until(lambda: index.progress("scale", version).complete, 3600, interval=0.05)
        fresh_s = time.perf_counter() - published
        out["index_fresh_seconds"] = {str(replicas): round(fresh_s, 2)}
        meta = VersionRegistry(client, keys).get(version) or {}
        predictor = Predictor(artifacts.load_version(stack.run_dir / "models", version, meta["sha256"]))
        sample = [t for _, t in items[: min(size, 5000)]]
        predictor.predict_proba(sample[:10])
        started = time.perf_counter()
        predictor.predict_proba(sample)
        in_process_rate = len(sample) / (time.perf_counter() - started)
        # Scoring rate once the replica serves the version (the swap is reported on its own) against in-process.
        scoring_s = fresh_s - first_swap
        per_replica = size / scoring_s / replicas
        out["rescore_ratio_to_in_process"] = {str(replicas): round(per_replica / in_process_rate, 3)}
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

        queued = int(client.zcard(keys.queue("scale")))
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
        # Last: each swap starts a rescoring of the pool, which a Query measured meanwhile would wait for.
        out.update(swaps(trainer, stubs, VersionRegistry(client, keys), sample[:20], args.swaps, args.swap_rate))
        out["replica_rss_bytes"] = peak_rss_bytes(stack.query_pid)
    return out


def swaps(trainer: Any, stubs: list[Any], registry: Any, texts: list[str], count: int, rate: float) -> dict[str, Any]:
    """Publish ``count`` versions; per version, seconds from its announcement until every replica serves it, while
    a thread per replica sends ``rate`` Predicts of ``texts`` a second and counts the ones that fail."""
    import grpc
    import numpy as np

    from alloop.v1 import query_pb2, trainer_pb2

    announced: dict[int, float] = {}
    listening = threading.Event()
    stop = threading.Event()
    counts = {"requests": 0, "failed": 0}
    counted = threading.Lock()

    def listen() -> None:
        pubsub = registry.subscribe()
        listening.set()
        while not stop.is_set():
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
            if message is not None:
                announced.setdefault(int(message["data"]), time.perf_counter())
        pubsub.close()

    def predict(stub: Any) -> None:
        while not stop.wait(1.0 / rate):
            failed = 0
            try:
                stub.Predict(query_pb2.PredictRequest(texts=texts), timeout=10)
            except grpc.RpcError:
                failed = 1
            with counted:
                counts["failed"] += failed
                counts["requests"] += 1

    threads = [threading.Thread(target=listen, daemon=True)]
    threads += [threading.Thread(target=predict, args=(stub,), daemon=True) for stub in stubs]
    for thread in threads:
        thread.start()
    listening.wait(10)
    seconds = []
    try:
        for _ in range(count):
            version = trainer.Train(trainer_pb2.TrainRequest(wait=True)).version.version
            returned = time.perf_counter()  # Train(wait=True) returns after the publish: a bound on its time
            wait_until(lambda v=version: all(query_version(stub) >= v for stub in stubs), 300, interval=0.01)
            served = time.perf_counter()
            wait_until(lambda v=version: v in announced, 10, interval=0.01)
            seconds.append(served - min(announced[version], returned))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    return {
        "swap_seconds": [round(s, 3) for s in seconds],
        "swap_seconds_p50": round(float(np.median(seconds)), 3) if seconds else None,
        "swap_requests": counts["requests"],
        "swap_failed_requests": counts["failed"],
    }


def _kmeans_candidates(count: int) -> str:
    return f"a sample of {count:,}" if count else "the top 10 * k of the margin ranking"


def report(result: dict[str, Any]) -> str:
    """Markdown: one column per pool size, one row per measurement."""
    sizes = result["sizes"]
    names = list(sizes)
    replicas = str(result.get("replicas", 1))

    def row(label: str, value: Any) -> str:
        return f"| {label} | " + " | ".join(value(sizes[n]) for n in names) + " |"

    def get(*path: str, fmt: str = "{:,}") -> Any:
        def read(entry: dict[str, Any]) -> str:
            value: Any = entry
            for key in path:
                if not isinstance(value, dict) or key not in value:
                    return ""
                value = value[key]
            return "" if value is None else fmt.format(value)

        return read

    def labels(entry: dict[str, Any]) -> str:
        return ", ".join(f"{v:,} ({int(q):,} queued)" for q, v in entry.get("labels_per_second", {}).items())

    lines = [
        f"{replicas} query replica(s), one Redis, k = {result['k']}; kmeans_diversity's candidates: "
        f"{_kmeans_candidates(result.get('kmeans_candidates', 10_000))}; {result['device']}.",
        "",
        "| | " + " | ".join(f"{int(n):,} items" for n in names) + " |",
        "|---|" + "---|" * len(names),
        row("SubmitPool items/s", get("submit_items_per_second")),
        row("longest Redis stall during the upload (ms)", get("max_redis_stall_ms", fmt="{:.1f}")),
        row("publish to every replica serving it, median (s)", get("swap_seconds_p50", fmt="{:.2f}")),
        row("failed Predicts during those swaps", get("swap_failed_requests")),
        row("publish to a complete ranking (s)", get("index_fresh_seconds", replicas, fmt="{:.1f}")),
        row("scoring rate per replica / in-process", get("rescore_ratio_to_in_process", replicas, fmt="{:.2f}")),
        row(
            "Query p50 / p99, least_confidence (ms)",
            lambda e: "{:.1f} / {:.1f}".format(
                e["query_p50_ms"]["least_confidence"], e["query_p99_ms"]["least_confidence"]
            ),
        ),
        row(
            "Query p50 / p99, kmeans_diversity (ms)",
            lambda e: "{:,.0f} / {:,.0f}".format(
                e["query_p50_ms"]["kmeans_diversity"], e["query_p99_ms"]["kmeans_diversity"]
            ),
        ),
        row("lease + submit labels/s, 8 threads", labels),
        row("first replica's peak RSS (GB)", lambda e: f"{e['replica_rss_bytes'] / 1e9:.2f}"),
        row("Redis bytes per item", get("redis_bytes_per_item")),
    ]
    return "\n".join(lines) + "\n"


def summary(result: dict[str, Any]) -> str:
    """One sentence from the largest pool measured: what one Redis held and how the request path held up."""
    size = max(result["sizes"], key=int)
    e = result["sizes"][size]
    per_item = e["redis_bytes_per_item"]
    rates = e.get("labels_per_second", {})
    return (
        f"Measured with {int(size):,} pool items on one Redis ({result['device']}): "
        f"{per_item:,} bytes of Redis memory per item ({per_item * int(size) / 1e9:.1f} GB), "
        f"a least-confidence Query in {e['query_p50_ms']['least_confidence']:,.0f} ms and a k-means diversity "
        f"Query in {e['query_p50_ms']['kmeans_diversity']:,.0f} ms (medians, k = {result['k']}), "
        f"{min(rates.values()):,} labels/s leased and submitted from 8 threads, and the longest Redis stall during "
        f"the upload {e['max_redis_stall_ms']:,.0f} ms.\n"
    )


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
    parser.add_argument(
        "--kmeans-candidates",
        type=int,
        default=0,
        help="kmeans_diversity's max_candidates: 0 (default) draws them from the score index, N samples N items",
    )
    parser.add_argument("--label-seconds", type=float, default=5.0)
    parser.add_argument("--replicas", type=int, default=2, help="query replicas sharing Redis and the scoring")
    parser.add_argument("--swaps", type=int, default=5, help="versions published to time the swap on every replica")
    parser.add_argument("--swap-rate", type=float, default=20.0, help="Predicts a second per replica during swaps")
    parser.add_argument("--workdir", type=Path, default=Path(".alloop/bench/scale"))
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/alloop"))
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    parser.add_argument("--report", type=Path, help="print the Markdown table of this results file and exit")
    args = parser.parse_args(argv)
    if args.swap_rate <= 0 or args.replicas < 1:
        parser.error("--swap-rate must be positive and --replicas at least 1")
    if args.report is not None:
        print(report(json.loads(args.report.read_text())), end="")
        return 0

    from alloop.data.prepare import prepare
    from clients.demo import DEMOS

    work = args.workdir.resolve()
    data = prepare(work / "data", source="npm", cache_dir=args.cache_dir, **DEMOS["linear"].sizes)
    with (data / "pool.jsonl").open(encoding="utf-8") as rows:
        texts = [json.loads(line)["text"] for line in rows if line.strip()]
    result: dict[str, Any] = {
        "device": device(),
        "replicas": args.replicas,
        "k": args.k,
        "kmeans_candidates": args.kmeans_candidates,
        "sizes": {},
    }
    for size in [int(s) for s in args.sizes.split(",")]:
        print(f"pool of {size:,} items ...", flush=True)
        result["sizes"][str(size)] = measure(size, texts, args, work, data)
        print(json.dumps(result["sizes"][str(size)], indent=2), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
