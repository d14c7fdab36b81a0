"""Query service bootstrap: ``create_server`` wires the parts (used by tests on port 0); ``main`` runs it."""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

import grpc
import redis
from grpc_health.v1 import health, health_pb2
from prometheus_client.core import GaugeMetricFamily

from alloop import logs
from alloop.config import QuerySettings, add_common_flags, apply_common_flags, query_from_env
from alloop.errors import IntegrityError
from alloop.models.encoder import shared
from alloop.models.encoder.files import NAME
from alloop.rpc.limits import StreamLimiter
from alloop.rpc.serving import Watchdog, enable_reflection, new_server, wait_for_termination
from alloop.store import layout
from alloop.store.connection import Client, EmbeddedRedis, open_redis
from alloop.store.embeddings import EmbeddingStore
from alloop.store.keys import Keys
from alloop.store.labeling import LabelingStore
from alloop.store.pool import PoolStore
from alloop.store.scores import ScoreIndex
from alloop.store.versions import VersionRegistry
from alloop.telemetry import Metrics, gauge
from alloop.v1 import query_pb2, query_pb2_grpc
from query_service.app import QueryApp
from query_service.embedder import ShardEmbedder, stored_vectors
from query_service.features import FeatureCache
from query_service.model_holder import ModelHolder
from query_service.servicer import QueryServicer

log = logging.getLogger(__name__)
SERVICE_NAME = query_pb2.DESCRIPTOR.services_by_name["QueryService"].full_name
MODEL_HEALTH = "alloop.model"


@dataclass
class RunningQueryService:
    server: grpc.Server
    port: int
    app: QueryApp
    holder: ModelHolder
    watchdog: Watchdog
    stopping: threading.Event
    limiter: StreamLimiter
    metrics: Metrics
    metrics_port: int | None = None

    def stop(self, grace: float = 5.0) -> None:
        self.stopping.set()
        self.watchdog.stop()
        self.server.stop(grace).wait()
        self.app.scorer.stop()
        if self.app.embedder is not None:
            self.app.embedder.stop()
        self.holder.stop()
        self.metrics.stop()
        self.limiter.stop()


def model_reporter(holder: ModelHolder, health_servicer: health.HealthServicer) -> Callable[[], None]:
    """A watchdog chore: the health service's ``alloop.model`` entry says whether this replica serves the
    published version (NOT_SERVING: nothing served yet, or the current version was given up; see
    ModelHolder.model_health). The replica's own entries stay SERVING while it answers with an older version."""
    last: list[bool | None] = [None]

    def report() -> None:
        ok = holder.model_health()
        if ok != last[0]:
            status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
            health_servicer.set(MODEL_HEALTH, status)
            last[0] = ok
            if not ok and holder.refused():
                log.error("alloop.model NOT_SERVING: gave up on versions %s", holder.refused())

    return report


def shard_embedder(
    settings: QuerySettings,
    store: EmbeddingStore | None,
    pools: PoolStore,
    metrics: Metrics,
    gate: Callable[[], None],
) -> ShardEmbedder | None:
    """The replica's embedding worker where ``ALLOOP_ENCODER_DIR`` names an encoder, else None. The encoder is
    loaded here, at start: a replica that cannot read it does not start."""
    if store is None:
        return None
    _, encoder = shared.encoder()

    def count(items: int, seconds: float) -> None:
        metrics.embedded_items.inc(items)
        metrics.embedding_seconds.inc(seconds)

    return ShardEmbedder(
        store,
        pools,
        encoder.embed,  # type: ignore[attr-defined]
        claim_idle_ms=int(settings.embed_claim_seconds * 1000),
        on_embedded=count,
        gate=gate,
    )


def create_server(settings: QuerySettings, client: Client) -> RunningQueryService:
    keys = Keys(settings.common.redis_prefix)
    registry = VersionRegistry(client, keys)
    holder = ModelHolder(
        registry,
        settings.common.models_path,
        batch_size=settings.score_batch_size,
        max_load_attempts=settings.model_load_attempts,
    )
    labeling = LabelingStore(client, keys)
    pools = PoolStore(client, keys)
    metrics = Metrics()
    metrics.collect_with(lambda: replica_state(pools, labeling, holder))
    index = ScoreIndex(client, keys)
    gate = layout.LayoutGate(client, keys)
    shared.configure(settings.common.encoder_dir)  # before the first version loads: one may need the encoder
    store = EmbeddingStore(client, keys, NAME) if settings.common.encoder_dir is not None else None
    embedder = shard_embedder(settings, store, pools, metrics, gate.ensure)
    app = QueryApp(
        settings,
        pools,
        labeling,
        holder,
        index,
        FeatureCache(settings.feature_cache_rows, stored_vectors(store) if store is not None else None),
        metrics,
        gate=gate.ensure,
        embedder=embedder,
        embeddings=store,
    )
    stopping = threading.Event()
    bound = new_server(
        settings.address,
        max_message_bytes=settings.max_message_bytes,
        security=settings.security,
        limits=settings.limits,
        metrics=metrics,
    )
    server = bound.server
    query_pb2_grpc.add_QueryServiceServicer_to_server(QueryServicer(app, stopping, settings.security.auth), server)
    enable_reflection(server, [SERVICE_NAME])
    watchdog = Watchdog(
        client,
        bound.health,
        [SERVICE_NAME],
        chores=[labeling.reclaim_expired, model_reporter(holder, bound.health)],
    )
    try:
        gate.ensure()
        holder.refresh()
    except redis.exceptions.RedisError as exc:
        log.warning("could not read Redis yet: %s", exc)
    holder.start(settings.model_poll_seconds)
    app.scorer.start()
    if embedder is not None:
        embedder.start()
    watchdog.start()
    server.start()
    metrics_port = metrics.serve(settings.metrics_address) if settings.metrics_address else None
    return RunningQueryService(
        server, bound.port, app, holder, watchdog, stopping, bound.limiter, metrics, metrics_port
    )


def replica_state(pools: PoolStore, labeling: LabelingStore, holder: ModelHolder) -> list[GaugeMetricFamily]:
    """What a scrape reads now: the labeling queue and stream from Redis, the version this replica serves."""
    served = holder.current_or_none()
    pool_items = GaugeMetricFamily("alloop_pool_items", "Items stored per pool", labels=["pool"])
    for name in pools.names():
        pool_items.add_metric([name], pools.size(name))
    return [
        pool_items,
        gauge("alloop_queue_items", "Items queued for labeling, not leased", labeling.queue_length()),
        gauge("alloop_leased_items", "Items leased to labelers now", labeling.leased_count()),
        gauge("alloop_label_stream_lag", "Accepted labels the trainer has not taken in yet", labeling.stream_length()),
        gauge("alloop_served_version", "Model version this replica serves (0: none)", served.version if served else 0),
        gauge(
            "alloop_served_version_test_accuracy",
            "Test accuracy the served version was published with",
            float(served.metadata.get("metrics", {}).get("accuracy", 0.0)) if served else 0.0,
        ),
        gauge(
            "alloop_model_healthy",
            "1 while the replica serves the published version or is loading it",
            1.0 if holder.model_health() else 0.0,
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="alloop-query-service", description="alloop query service (gRPC)")
    add_common_flags(parser)
    args = parser.parse_args(argv)
    try:
        logs.configure("query", os.environ)
        settings = query_from_env(os.environ)
        settings = replace(
            settings,
            common=apply_common_flags(settings.common, args),
            address=args.address or settings.address,
        )
        settings.security.check(settings.address)
    except ValueError as exc:  # a bad setting: one line naming it, no traceback
        parser.exit(2, f"{parser.prog}: {exc}\n")
    client, embedded = open_redis(
        settings.common.redis_url,
        settings.common.embedded_redis_dir,
        password=settings.common.redis_password,
        cluster=settings.common.redis_cluster,
    )
    try:
        running = create_server(settings, client)
    except IntegrityError as exc:  # the store cannot be used as it is (alloop.store.layout): one line, no traceback
        parser.exit(2, f"{parser.prog}: {exc}\n")
    log.info("query service on port %d (Redis %s)", running.port, "embedded" if embedded else "external")

    def stop() -> None:
        running.stop()
        if isinstance(embedded, EmbeddedRedis):
            embedded.stop()

    wait_for_termination(stop)


if __name__ == "__main__":
    main()
