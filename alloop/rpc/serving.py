"""Server plumbing both services share: the gRPC server, its health service, and a Redis watchdog."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass

import grpc
import redis
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from alloop.rpc.guard import MalformedRequestGuard
from alloop.rpc.limits import ServerLimits, StreamLimiter
from alloop.rpc.security import SecuritySettings
from alloop.rpc.telemetry import MetricsInterceptor
from alloop.store.connection import Client
from alloop.telemetry import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoundServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    limiter: StreamLimiter


def new_server(
    address: str,
    *,
    max_message_bytes: int,
    limits: ServerLimits | None = None,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    security: SecuritySettings | None = None,
    metrics: Metrics | None = None,
) -> BoundServer:
    """A server bound to ``address`` (port 0 picks a free one) with the standard health service attached.

    ``security`` adds TLS to the port and the bearer-token check, which runs before ``interceptors``; ``limits``
    bounds the workers, open streams and connection lifetimes one caller can hold (:mod:`alloop.rpc.limits`).
    """
    security = security or SecuritySettings()
    limits = limits or ServerLimits()
    limiter = StreamLimiter(limits)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="grpc-worker"),
        # Auth first (a refused call reads nothing), then malformed requests become INVALID_ARGUMENT, then the
        # stream bounds (a refused stream holds no slot).
        # Metrics outermost, so refused calls are counted with their codes too.
        interceptors=[
            *([MetricsInterceptor(metrics)] if metrics is not None else []),
            *security.interceptors(),
            MalformedRequestGuard(),
            limiter,
            *interceptors,
        ],
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            *limits.server_options(),
        ],
        maximum_concurrent_rpcs=limits.max_concurrent_rpcs,
    )
    port = security.add_port(server, address)
    if port == 0:
        raise RuntimeError(f"could not bind {address}")
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    return BoundServer(server, port, health_servicer, limiter)


def enable_reflection(server: grpc.Server, service_names: Sequence[str]) -> None:
    """Serve gRPC reflection for ``service_names`` and the standard services beside them, so tools such as
    ``grpcurl list`` / ``describe`` work without the .proto files (behind the same token check as any RPC)."""
    reflection.enable_server_reflection(
        (*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )


class Watchdog:
    """Reports SERVING / NOT_SERVING on the health service by pinging Redis, and runs periodic chores."""

    def __init__(
        self,
        client: Client,
        health_servicer: health.HealthServicer,
        services: list[str],
        *,
        interval: float = 1.0,
        chores: list[Callable[[], object]] | None = None,
    ) -> None:
        self._client = client
        self._health = health_servicer
        self._services = ["", *services]
        self._interval = interval
        self._chores = chores or []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        # None until the first ping: that one writes every service's status whatever it finds (the health
        # servicer starts out saying SERVING for "" and nothing for the others).
        self.serving: bool | None = None

    def start(self) -> None:
        self.check()
        self._thread.start()

    def check(self) -> bool:
        try:
            self._client.ping()
            for chore in self._chores:
                chore()
            ok = True
        except redis.exceptions.RedisError as exc:
            if self.serving is not False:
                log.warning("Redis unreachable (%s): NOT_SERVING until it is back", exc)
            ok = False
        if ok != self.serving:
            status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in self._services:
                self._health.set(name, status)
            self.serving = ok
        return ok

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        self._health.enter_graceful_shutdown()


def wait_for_termination(stop: Callable[[], None]) -> None:
    """Block until SIGINT/SIGTERM, then run ``stop`` once (graceful shutdown for operators and compose)."""
    done = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("signal %d: shutting down", signum)
        done.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    done.wait()
    stop()
