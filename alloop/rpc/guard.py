"""Malformed requests become INVALID_ARGUMENT instead of gRPC's default INTERNAL.

grpcio answers a request it cannot deserialize (truncated bytes, a wrong wire type, invalid UTF-8 in a string
field) with INTERNAL "Exception deserializing request!", which tells the caller nothing and looks like our bug.
This interceptor wraps each method's deserializer so a parse failure yields a :class:`Malformed` marker, and the
method's behaviour refuses it with INVALID_ARGUMENT before any servicer code runs, so nothing is changed. For
streaming requests the marker is turned into :class:`alloop.errors.InvalidRequest` where the servicer reads it,
and the servicer's one error mapping (alloop.rpc.status) reports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from alloop.errors import InvalidRequest

NON_BLOCKING = "experimental_non_blocking"  # grpcio's marker for a behaviour that returns at once (health Watch)


@dataclass(frozen=True)
class Malformed:
    method: str
    reason: str

    def message(self) -> str:
        return (
            f"the request to {self.method} is not a valid protobuf message ({self.reason}); "
            "check that the client uses the alloop.v1 stubs and sends UTF-8 text"
        )


def _safe(deserializer: Callable[[bytes], Any] | None, method: str) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        if deserializer is None:
            return data
        try:
            return deserializer(data)
        except Exception as exc:
            return Malformed(method, f"{type(exc).__name__}: {exc}")

    return deserialize


def _checked_iterator(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        if isinstance(request, Malformed):
            raise InvalidRequest(request.message())
        yield request


def keep_markers(behavior: Callable[..., Any], wrapped: Callable[..., Any]) -> Callable[..., Any]:
    """Carry grpcio's behaviour markers over to the wrapper.

    The health service's ``Watch`` is marked ``experimental_non_blocking``: grpcio then calls it with a
    ``send_response_callback`` and it returns at once, holding no worker thread while the stream stays open. A
    wrapper without the marker turns it into a blocking stream that holds a worker per open Watch, so a caller
    without a token could take every worker by opening that many streams.
    """
    for attr in (NON_BLOCKING, "experimental_thread_pool"):
        if hasattr(behavior, attr):
            setattr(wrapped, attr, getattr(behavior, attr))
    return wrapped


def behavior_of(handler: grpc.RpcMethodHandler) -> Callable[..., Any]:
    """The one behaviour a method handler has, whichever its kind."""
    return handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream


def rewrap(handler: grpc.RpcMethodHandler, behavior: Callable[..., Any]) -> grpc.RpcMethodHandler:
    """A handler of the same kind and serializers as ``handler``, running ``behavior`` (its markers kept)."""
    keep_markers(behavior_of(handler), behavior)
    if handler.unary_unary:
        factory = grpc.unary_unary_rpc_method_handler
    elif handler.unary_stream:
        factory = grpc.unary_stream_rpc_method_handler
    elif handler.stream_unary:
        factory = grpc.stream_unary_rpc_method_handler
    else:
        factory = grpc.stream_stream_rpc_method_handler
    return factory(behavior, handler.request_deserializer, handler.response_serializer)


class MalformedRequestGuard(grpc.ServerInterceptor):
    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        deserializer = _safe(handler.request_deserializer, method)
        serializer = handler.response_serializer

        def unary_behavior(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def wrapped(request: Any, context: grpc.ServicerContext, *args: Any, **kwargs: Any) -> Any:
                if isinstance(request, Malformed):
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message())
                return behavior(request, context, *args, **kwargs)

            return keep_markers(behavior, wrapped)

        def stream_behavior(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def wrapped(requests: Iterator[Any], context: grpc.ServicerContext, *args: Any, **kwargs: Any) -> Any:
                return behavior(_checked_iterator(requests), context, *args, **kwargs)

            return keep_markers(behavior, wrapped)

        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(unary_behavior(handler.unary_unary), deserializer, serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(unary_behavior(handler.unary_stream), deserializer, serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(stream_behavior(handler.stream_unary), deserializer, serializer)
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                stream_behavior(handler.stream_stream), deserializer, serializer
            )
        return handler
