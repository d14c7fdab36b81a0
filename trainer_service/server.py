"""Trainer service bootstrap: ``create_server`` wires the parts (used by tests on port 0); ``main`` runs it."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import grpc

from alloop import logs
from alloop.config import TrainerSettings, add_common_flags, apply_common_flags, trainer_from_env
from alloop.errors import IntegrityError
from alloop.models.families import get_family
from alloop.rpc.limits import StreamLimiter
from alloop.rpc.serving import Watchdog, enable_reflection, new_server, wait_for_termination
from alloop.store.connection import Client, EmbeddedRedis, open_redis, wait_until_reachable
from alloop.telemetry import Metrics
from alloop.v1 import trainer_pb2, trainer_pb2_grpc
from trainer_service.servicer import TrainerServicer
from trainer_service.trainer import Trainer

log = logging.getLogger(__name__)
SERVICE_NAME = trainer_pb2.DESCRIPTOR.services_by_name["TrainerService"].full_name


@dataclass
class RunningTrainerService:
    server: grpc.Server
    port: int
    trainer: Trainer
    watchdog: Watchdog
    stopping: threading.Event
    limiter: StreamLimiter
    metrics_port: int | None = None

    def stop(self, grace: float = 5.0) -> None:
        self.stopping.set()
        self.watchdog.stop()
        self.server.stop(grace).wait()
        self.trainer.stop()
        self.trainer.metrics.stop()
        self.limiter.stop()


def create_server(settings: TrainerSettings, client: Client) -> RunningTrainerService:
    consumer = settings.consumer or f"{socket.gethostname()}-{os.getpid()}"
    metrics = Metrics()
    trainer = Trainer(settings, client, consumer=consumer, metrics=metrics)
    metrics.collect_with(trainer.state)
    trainer.prepare()
    stopping = threading.Event()
    bound = new_server(
        settings.address,
        max_message_bytes=4 * 1024 * 1024,
        security=settings.security,
        limits=settings.limits,
        metrics=metrics,
    )
    server = bound.server
    trainer_pb2_grpc.add_TrainerServiceServicer_to_server(TrainerServicer(trainer, stopping), server)
    enable_reflection(server, [SERVICE_NAME])
    watchdog = Watchdog(client, bound.health, [SERVICE_NAME])
    watchdog.start()
    server.start()
    trainer.start()
    metrics_port = metrics.serve(settings.metrics_address) if settings.metrics_address else None
    return RunningTrainerService(server, bound.port, trainer, watchdog, stopping, bound.limiter, metrics_port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="alloop-trainer-service", description="alloop trainer service (gRPC)")
    add_common_flags(parser)
    parser.add_argument("--initial-data", type=Path, help="initial labeled set, CSV/JSONL (env ALLOOP_INITIAL_DATA)")
    parser.add_argument("--val-data", type=Path, help="validation set (env ALLOOP_VAL_DATA)")
    parser.add_argument("--test-data", type=Path, help="test set (env ALLOOP_TEST_DATA)")
    parser.add_argument(
        "--retrain-threshold", type=int, help="new labels that trigger a round (env ALLOOP_RETRAIN_THRESHOLD)"
    )
    args = parser.parse_args(argv)
    try:
        logs.configure("trainer", os.environ)
        settings = trainer_from_env(os.environ)
        settings = replace(
            settings,
            common=apply_common_flags(settings.common, args),
            address=args.address or settings.address,
            initial_data=args.initial_data or settings.initial_data,
            val_data=args.val_data or settings.val_data,
            test_data=args.test_data or settings.test_data,
            retrain_threshold=args.retrain_threshold or settings.retrain_threshold,
        )
        settings.security.check(settings.address)
        for variable, path in (
            ("ALLOOP_INITIAL_DATA", settings.initial_data),
            ("ALLOOP_VAL_DATA", settings.val_data),
            ("ALLOOP_TEST_DATA", settings.test_data),
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"{variable} (or its flag): {path} is not a readable file")
        get_family(settings.model.family).check_installed()
    except ValueError as exc:  # a bad setting: one line naming it, no traceback
        parser.exit(2, f"{parser.prog}: {exc}\n")
    client, embedded = open_redis(
        settings.common.redis_url,
        settings.common.embedded_redis_dir,
        password=settings.common.redis_password,
        cluster=settings.common.redis_cluster,
    )
    if settings.common.redis_url:
        wait_until_reachable(client, settings.common.redis_url)  # the trainer seeds its set from Redis at start
    try:
        running = create_server(settings, client)
    except IntegrityError as exc:  # the store cannot be used as it is (alloop.store.layout): one line, no traceback
        parser.exit(2, f"{parser.prog}: {exc}\n")
    log.info("trainer service on port %d", running.port)

    def stop() -> None:
        running.stop()
        if isinstance(embedded, EmbeddedRedis):
            embedded.stop()

    wait_for_termination(stop)


if __name__ == "__main__":
    main()
