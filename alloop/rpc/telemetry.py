"""The RPC side of :mod:`alloop.telemetry`: every call counted by method and final status code, and timed, and its
log lines tagged with its request id and method (:mod:`alloop.logs`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from alloop import logs
from alloop.rpc.guard import NON_BLOCKING, behavior_of, rewrap
from alloop.telemetry import Metrics


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts every RPC by method and final status code and times it (a stream: until its last response)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        behavior = behavior_of(handler)
        if getattr(behavior, NON_BLOCKING, False):
            return handler  # health Watch: returns at once and streams for as long as the watcher stays
        metrics = self._metrics

        def record(context: grpc.ServicerContext, started: float, failed: bool) -> None:
            code = context.code() if hasattr(context, "code") else None
            if code is None:
                code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
            metrics.rpcs.labels(method, code.name).inc()
            metrics.rpc_seconds.labels(method).observe(time.perf_counter() - started)

        def timed(request: Any, context: grpc.ServicerContext, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            fields = {"request_id": logs.request_id(context.invocation_metadata()), "method": method}
            try:
                with logs.context(**fields):
                    result = behavior(request, context, *args, **kwargs)
            except BaseException:
                record(context, started, True)
                raise
            if not handler.response_streaming:
                record(context, started, False)
                return result
            return _timed_stream(result, fields, lambda failed: record(context, started, failed))

        return rewrap(handler, timed)


def _timed_stream(responses: Iterator[Any], fields: dict[str, str], done: Callable[[bool], None]) -> Iterator[Any]:
    failed = True
    try:
        while True:
            with logs.context(**fields):  # each response is produced in this context (and no other)
                try:
                    response = next(responses)
                except StopIteration:
                    break
            yield response
        failed = False
    finally:
        done(failed)


__all__ = ["MetricsInterceptor"]
