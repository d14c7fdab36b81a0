"""Serving cost, measured as ratios taken in one run: scoring a pool in-process against over gRPC, and a Query on a
cold pool (every item tokenized) against a warm one (features kept by the replica, query_service/features.py).

One linear version, trained on the seed's initial labels with the pool's vocabulary, is published into an embedded
Redis and served by a real query service on loopback; the pool is the seed's 39,800 unlabelled candidates (--quick:
5,000). Each measurement is repeated and reported as its median (machines are noisy); ratios are of medians.
Results: bench/results/serving.json.

    python -m bench.serving            # about 5 minutes on 2 cores
    python -m bench.serving --quick    # about 1 minute
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BATCH = 500  # items per ScorePool message, as clients/pool.py sends them
K = 100


def median_seconds(
    fn: Callable[[], object], repeats: int, before: Callable[[], object] | None = None
) -> dict[str, Any]:
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return {"median_s": round(statistics.median(times), 4), "runs_s": [round(t, 4) for t in times]}


def run(pool_limit: int | None, repeats: int, workdir: Path, cache_dir: Path) -> dict[str, Any]:
    from alloop import artifacts
    from alloop.config import CommonSettings, QuerySettings
    from alloop.data import load_prepared
    from alloop.data.prepare import prepare
    from alloop.models.config import ModelConfig, TrainingConfig
    from alloop.models.linear import CorpusCache
    from alloop.models.training import LabeledData, train_round
    from alloop.store.connection import EmbeddedRedis, connect
    from alloop.store.keys import Keys
    from alloop.store.versions import VersionRegistry
    from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc
    from clients.common import open_channel
    from clients.pool import submit_records
    from query_service.features import FeatureCache
    from query_service.server import create_server

    data = prepare(
        workdir / "data" / f"linear-0-{pool_limit or 'all'}",
        source="npm",
        cache_dir=cache_dir,
        val_per_class=2500,
        test_per_class=2500,
        initial_per_class=100,
        seed=0,
        pool_limit=pool_limit,
        log=lambda _m: None,
    )
    splits = load_prepared(data)
    as_data = lambda rs: LabeledData([r.text for r in rs], [int(r.label) for r in rs])
    pool_texts = [r.text for r in splits.pool]
    # The label-efficiency runs keep this corpus' vocabulary and SVD here too: a second benchmark reuses them.
    corpus_cache = CorpusCache(workdir / "corpus-cache")
    result = train_round(
        as_data(splits.initial),
        as_data(splits.val),
        as_data(splits.test),
        model_config=ModelConfig(family="linear"),
        training=TrainingConfig(warm_start=False),
        work_dir=workdir / "serving-work",
        unlabeled_texts=pool_texts,
        cache=corpus_cache,
    )

    with (
        tempfile.TemporaryDirectory(prefix="alloop-serving-") as tmp,
        EmbeddedRedis(Path(tmp) / "redis", appendonly=False) as server,
    ):
        client = connect(server.url)
        settings = QuerySettings(
            common=CommonSettings(redis_url=server.url, model_dir=Path(tmp) / "models"), address="127.0.0.1:0"
        )
        _, digest = artifacts.write_version(
            settings.common.models_path,
            1,
            result.model,
            {"version": 1, "family": "linear", "classes": ["negative", "positive"]},
            export_saved_model=False,
        )
        VersionRegistry(client, Keys(settings.common.redis_prefix)).publish(
            1,
            {
                "version": 1,
                "family": "linear",
                "classes": ["negative", "positive"],
                "sha256": digest,
                "metrics": result.test.to_dict(),
            },
        )
        running = create_server(settings, client)
        try:
            deadline = time.monotonic() + 120
            while running.holder.current_or_none() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            predictor = running.holder.current().predictor
            stub = query_pb2_grpc.QueryServiceStub(open_channel(f"127.0.0.1:{running.port}"))
            submit_records(stub, "bench", splits.pool, progress=False)
            ids, texts = running.app.pools.candidates("bench")

            def score_over_grpc() -> None:
                def requests() -> Iterator[query_pb2.ScorePoolRequest]:
                    for start in range(0, len(texts), BATCH):
                        yield query_pb2.ScorePoolRequest(
                            items=[
                                query_pb2.PoolItem(id=i, text=t)
                                for i, t in zip(ids[start : start + BATCH], texts[start : start + BATCH], strict=True)
                            ]
                        )

                for _ in stub.ScorePool(requests()):
                    pass

            cache = FeatureCache(len(ids))
            cache.features(predictor, "bench", ids, texts)  # what a replica holds after one Query on this pool
            query = lambda: stub.Query(
                query_pb2.QueryRequest(pool="bench", strategy=common_pb2.STRATEGY_LEAST_CONFIDENCE, k=K)
            )
            empty_cache = lambda: setattr(running.app, "features", FeatureCache(settings.feature_cache_rows))
            out = {
                "inprocess_text": median_seconds(lambda: predictor.predict_proba(texts), repeats),
                "inprocess_cached_features": median_seconds(
                    lambda: predictor.predict_proba_features(cache.features(predictor, "bench", ids, texts)), repeats
                ),
                "grpc_score_pool": median_seconds(score_over_grpc, repeats),
                "grpc_query_cold": median_seconds(query, repeats, before=empty_cache),
            }
            query()  # fill the cache once for the warm Queries
            out["grpc_query_warm"] = median_seconds(query, repeats)
        finally:
            running.stop(0)
    ratio = lambda a, b: round(out[a]["median_s"] / out[b]["median_s"], 3)
    return {
        "device": f"cpu ({os.cpu_count()} cores), {platform.machine()}, {platform.python_version()}",
        "items": len(texts),
        "repeats": repeats,
        "query_k": K,
        "score_pool_batch": BATCH,
        "measurements": out,
        "ratios": {
            "grpc_score_pool_over_inprocess_text": ratio("grpc_score_pool", "inprocess_text"),
            "inprocess_cached_features_over_text": ratio("inprocess_cached_features", "inprocess_text"),
            "grpc_query_warm_over_cold": ratio("grpc_query_warm", "grpc_query_cold"),
        },
        "items_per_second": {name: round(len(texts) / m["median_s"]) for name, m in out.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5,000 pool items, 3 repeats")
    parser.add_argument("--repeats", type=int, default=None, help="default 5 (quick: 3)")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".alloop" / "bench")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "alloop")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: bench/results/serving.json (quick: serving_quick.json)"
    )
    args = parser.parse_args(argv)
    result = run(5000 if args.quick else None, args.repeats or (3 if args.quick else 5), args.workdir, args.cache_dir)
    out = args.out or RESULTS / ("serving_quick.json" if args.quick else "serving.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("items", "ratios", "items_per_second")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
