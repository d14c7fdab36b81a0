"""Query service bootstrap: ``create_server`` wires the parts (used by tests on port 0); ``main`` runs it."""

from __future__ import annotations

import argparse
import logging
import os
import threading
from dataclasses import dataclass, replace

import grpc
import redis

from alloop.config import QuerySettings, add_common_flags, apply_common_flags, query_from_env
from alloop.rpc.serving import Watchdog, new_server, wait_for_termination
from alloop.store.connection import EmbeddedRedis, open_redis
from alloop.store.keys import Keys
from alloop.store.labeling import LabelingStore
from alloop.store.pool import PoolStore
from alloop.store.versions import VersionRegistry
from alloop.v1 import query_pb2, query_pb2_grpc
from query_service.app import QueryApp
from query_service.features import FeatureCache
from query_service.model_holder import ModelHolder
from query_service.servicer import QueryServicer

log = logging.getLogger(__name__)
SERVICE_NAME = query_pb2.DESCRIPTOR.services_by_name["QueryService"].full_name


@dataclass
class RunningQueryService:
    server: grpc.Server
    port: int
    app: QueryApp
    holder: ModelHolder
    watchdog: Watchdog
    stopping: threading.Event

    def stop(self, grace: float = 5.0) -> None:
        self.stopping.set()
        self.watchdog.stop()
        self.server.stop(grace).wait()
        self.holder.stop()


def create_server(settings: QuerySettings, client: redis.Redis) -> RunningQueryService:
    keys = Keys(settings.common.redis_prefix)
    registry = VersionRegistry(client, keys)
    holder = ModelHolder(registry, settings.common.models_path, batch_size=settings.score_batch_size)
    labeling = LabelingStore(client, keys)
    app = QueryApp(settings, PoolStore(client, keys), labeling, holder, FeatureCache(settings.feature_cache_rows))
    stopping = threading.Event()
    server, port, health_servicer = new_server(
        settings.address, max_message_bytes=settings.max_message_bytes, security=settings.security,
    )
    query_pb2_grpc.add_QueryServiceServicer_to_server(QueryServicer(app, stopping), server)
    watchdog = Watchdog(client, health_servicer, [SERVICE_NAME], chores=[labeling.reclaim_expired])
    try:
        holder.refresh()
    except redis.exceptions.RedisError as exc:
        log.warning("could not read the current model version yet: %s", exc)
    holder.start(settings.model_poll_seconds)
    watchdog.start()
    server.start()
    return RunningQueryService(server, port, app, holder, watchdog, stopping)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="alloop query service (gRPC)")
    add_common_flags(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("ALLOOP_LOG_LEVEL", "INFO"), format="%(asctime)s query %(levelname)s %(message)s")
    settings = query_from_env(os.environ)
    settings = replace(settings, common=apply_common_flags(settings.common, args), address=args.address or settings.address)
    client, embedded = open_redis(settings.common.redis_url, settings.common.embedded_redis_dir)
    running = create_server(settings, client)
    log.info("query service on port %d (Redis %s)", running.port, embedded.url if embedded else "external")

    def stop() -> None:
        running.stop()
        if isinstance(embedded, EmbeddedRedis):
            embedded.stop()

    wait_for_termination(stop)


if __name__ == "__main__":
    main()
