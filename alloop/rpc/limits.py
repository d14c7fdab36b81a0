"""How much of a replica one caller can hold: worker threads, open streams, idle streams, connection age.

A synchronous gRPC server runs each call on one of ``workers`` threads. A unary call gives its thread back within
its own run time; a stream (``SubmitPool``, ``ScorePool``, ``WatchModels``, ``WatchTraining``) holds one for as
long as the caller keeps it open. Without a bound, as many open streams as workers freeze every other call, the
open health service included, so an orchestrator sees the replica dead. :class:`StreamLimiter` bounds them:

- streams that hold a worker: at most ``max_streams`` at once per replica, fewer than ``workers``, so unary calls
  always find a thread; one more is refused with RESOURCE_EXHAUSTED before it reads anything;
- non-blocking streams (the health service's ``Watch``, which holds no thread): at most ``max_watches``;
- a request stream whose caller sends nothing for ``stream_idle_seconds`` is cancelled, so a caller cannot hold a
  worker by opening a stream and going quiet;
- every call, queued or running, counts against ``max_concurrent_rpcs`` (gRPC's own limit; past it, new calls are
  refused with RESOURCE_EXHAUSTED instead of queueing without bound), and a connection lives at most
  ``max_connection_age_seconds`` (then ``connection_age_grace_seconds`` for its calls to finish), so no stream
  outlives the two: watchers re-subscribe.

Unary calls are not capped here: each ends by itself, and each is bounded by the per-request limits
(alloop/environment.py); a token holder can keep workers busy with heavy calls, but cannot hold them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from alloop.environment import ServerEnvironment
from alloop.rpc.guard import NON_BLOCKING, behavior_of, rewrap

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerLimits:
    """Per-replica bounds on what callers can hold (the variables: alloop.environment.ServerEnvironment)."""

    workers: int = 32
    max_streams: int = 16
    max_watches: int = 64
    max_concurrent_rpcs: int = 512
    stream_idle_seconds: float = 60.0
    max_connection_age_seconds: float = 3600.0
    connection_age_grace_seconds: float = 900.0  # a Train(wait=True) may take minutes
    max_connection_idle_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.workers < 2:
            raise ValueError(f"ALLOOP_GRPC_WORKERS must be at least 2, got {self.workers}")
        if not 1 <= self.max_streams < self.workers:
            raise ValueError(
                f"ALLOOP_MAX_STREAMS must be between 1 and ALLOOP_GRPC_WORKERS - 1 ({self.workers - 1}), "
                f"got {self.max_streams}: streams hold a worker each, and unary calls need one left"
            )
        if self.max_watches < 1:
            raise ValueError(f"ALLOOP_MAX_HEALTH_WATCHES must be at least 1, got {self.max_watches}")
        if self.max_concurrent_rpcs <= self.max_streams + self.max_watches:
            raise ValueError(
                f"ALLOOP_MAX_CONCURRENT_RPCS ({self.max_concurrent_rpcs}) must exceed ALLOOP_MAX_STREAMS + "
                f"ALLOOP_MAX_HEALTH_WATCHES ({self.max_streams + self.max_watches}), or open streams could "
                "take every slot"
            )
        for name, value in (
            ("ALLOOP_STREAM_IDLE_SECONDS", self.stream_idle_seconds),
            ("ALLOOP_MAX_CONNECTION_AGE_SECONDS", self.max_connection_age_seconds),
            ("ALLOOP_CONNECTION_AGE_GRACE_SECONDS", self.connection_age_grace_seconds),
            ("ALLOOP_MAX_CONNECTION_IDLE_SECONDS", self.max_connection_idle_seconds),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")

    def server_options(self) -> list[tuple[str, int]]:
        """gRPC core's connection limits (milliseconds)."""
        return [
            ("grpc.max_connection_age_ms", int(self.max_connection_age_seconds * 1000)),
            ("grpc.max_connection_age_grace_ms", int(self.connection_age_grace_seconds * 1000)),
            ("grpc.max_connection_idle_ms", int(self.max_connection_idle_seconds * 1000)),
        ]


def limits_from(e: ServerEnvironment) -> ServerLimits:
    return ServerLimits(
        workers=e.grpc_workers,
        max_streams=e.max_streams,
        max_watches=e.max_health_watches,
        max_concurrent_rpcs=e.max_concurrent_rpcs,
        stream_idle_seconds=e.stream_idle_seconds,
        max_connection_age_seconds=e.max_connection_age_seconds,
        connection_age_grace_seconds=e.connection_age_grace_seconds,
        max_connection_idle_seconds=e.max_connection_idle_seconds,
    )


def limits_from_env(env: Mapping[str, str]) -> ServerLimits:
    return limits_from(ServerEnvironment.read(env))


class _Slots:
    """A counter with a ceiling; ``take`` never blocks."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._held >= self.limit:
                return False
            self._held += 1
            return True

    def give(self) -> None:
        with self._lock:
            self._held -= 1

    @property
    def held(self) -> int:
        with self._lock:
            return self._held


class _Held:
    """One slot taken for one call, given back exactly once."""

    def __init__(self, slots: _Slots) -> None:
        self._slots = slots
        self._lock = threading.Lock()
        self._given = False
        self._started = False

    def give(self) -> None:
        with self._lock:
            if self._given:
                return
            self._given = True
        self._slots.give()

    def give_unless_started(self) -> None:
        with self._lock:
            if self._started:
                return
        self.give()

    def run(self, responses: Iterator[Any]) -> Iterator[Any]:
        with self._lock:
            self._started = True
        try:
            yield from responses
        finally:
            self.give()


class _IdleReaper:
    """Cancels request streams whose caller has sent nothing for ``idle_seconds`` while the server waits on it."""

    def __init__(self, idle_seconds: float) -> None:
        self._idle = idle_seconds
        self._waiting: dict[int, tuple[float, grpc.ServicerContext, str]] = {}
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="stream-idle-reaper", daemon=True)
            self._thread.start()

    def watch(self, requests: Iterator[Any], context: grpc.ServicerContext, method: str) -> Iterator[Any]:
        """``requests``, with the wait for each message timed; a stream cancelled here raises, never just ends
        (a cancelled stream may read as a normal end, and a SubmitPool would then store what it had)."""
        key = id(context)
        try:
            while True:
                with self._lock:
                    self._ensure_thread()
                    self._waiting[key] = (time.monotonic(), context, method)
                try:
                    request = next(requests)
                except StopIteration:
                    with self._lock:
                        if key in self._cancelled:
                            raise StreamIdle(method, self._idle) from None
                    return
                with self._lock:
                    self._waiting.pop(key, None)
                yield request
        finally:
            with self._lock:
                self._waiting.pop(key, None)
                self._cancelled.discard(key)

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(min(1.0, self._idle / 4)):
            now = time.monotonic()
            with self._lock:
                stale = [(key, ctx, m) for key, (since, ctx, m) in self._waiting.items() if now - since > self._idle]
                for key, _, _ in stale:
                    self._cancelled.add(key)
                    del self._waiting[key]
            for _, context, method in stale:
                log.warning(
                    "cancelled %s: the caller sent nothing for %.0f s (ALLOOP_STREAM_IDLE_SECONDS)", method, self._idle
                )
                context.cancel()


class StreamIdle(grpc.RpcError):
    """A request stream cancelled for idleness (the caller already sees CANCELLED)."""

    def __init__(self, method: str, idle_seconds: float) -> None:
        super().__init__(f"{method}: no message for {idle_seconds:.0f} s; cancelled")


class StreamLimiter(grpc.ServerInterceptor):
    """Bounds the streams a replica holds open (see the module docstring); unary calls pass through untouched."""

    def __init__(self, limits: ServerLimits) -> None:
        self._streams = _Slots(limits.max_streams)
        self._watches = _Slots(limits.max_watches)
        self._reaper = _IdleReaper(limits.stream_idle_seconds)

    def stop(self) -> None:
        """Stop the idle reaper's thread (with the server)."""
        self._reaper.stop()

    @property
    def open_streams(self) -> int:
        return self._streams.held

    @property
    def open_watches(self) -> int:
        return self._watches.held

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or not (handler.request_streaming or handler.response_streaming):
            return handler
        method = handler_call_details.method
        behavior = behavior_of(handler)
        non_blocking = bool(getattr(behavior, NON_BLOCKING, False))
        slots = self._watches if non_blocking else self._streams
        setting = "ALLOOP_MAX_HEALTH_WATCHES" if non_blocking else "ALLOOP_MAX_STREAMS"
        reaper = self._reaper if handler.request_streaming else None

        def limited(request: Any, context: grpc.ServicerContext, *args: Any, **kwargs: Any) -> Any:
            if not slots.take():
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"this replica already holds {slots.limit} open streams of this kind ({setting}); "
                    "close one or retry later",
                )
            held = _Held(slots)
            if non_blocking:
                # Holds no worker: the slot is the open stream itself, given back when the call ends.
                if not context.add_callback(held.give):
                    held.give()
                return behavior(request, context, *args, **kwargs)
            # Holds a worker: the slot is given back when the worker is free, not when the caller cancels (a
            # cancelled call's servicer code may still be running).
            if reaper is not None:
                request = reaper.watch(request, context, method)
            if handler.stream_unary:
                try:
                    return behavior(request, context, *args, **kwargs)
                finally:
                    held.give()
            # A response stream runs in the worker as it is iterated: its end gives the slot back. A stream that
            # is never iterated (the call ended first) gives it back when the call ends.
            if not context.add_callback(held.give_unless_started):
                held.give_unless_started()
            return held.run(behavior(request, context, *args, **kwargs))

        return rewrap(handler, limited)


__all__ = ["ServerLimits", "StreamLimiter", "limits_from", "limits_from_env"]
