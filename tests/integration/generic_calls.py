"""Call any RPC of the proto's services generically, driven by the service descriptors (for the auth/TLS tests).

Every method is called with an empty request of its input type, with the call kind (unary/stream on either side)
taken from the descriptor, so a new RPC in the proto is covered without touching the tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import descriptor, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc

from alloop.config import CommonSettings
from alloop.store.connection import EmbeddedRedis
from alloop.v1 import query_pb2, trainer_pb2

SERVICES = (
    query_pb2.DESCRIPTOR.services_by_name["QueryService"],
    trainer_pb2.DESCRIPTOR.services_by_name["TrainerService"],
)
ADMITTED_STREAM_SECONDS = 1.0  # an admitted response stream (WatchModels, ...) waits for events; its deadline ends it


def all_methods() -> list[descriptor.MethodDescriptor]:
    return [method for service in SERVICES for method in service.methods]


def path(method: descriptor.MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    details: str

    @property
    def admitted(self) -> bool:
        """Past the auth check: it may still fail for other reasons (an empty request, no model yet, a deadline)."""
        return self.code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def call(
    channel: grpc.Channel,
    method: descriptor.MethodDescriptor,
    *,
    metadata: Sequence[tuple[str, str]] | None = None,
    timeout: float = 10.0,
) -> Outcome:
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    request = request_class()
    kwargs = {"request_serializer": request_class.SerializeToString, "response_deserializer": response_class.FromString}
    if method.server_streaming:
        timeout = min(timeout, ADMITTED_STREAM_SECONDS)
    try:
        if not method.client_streaming and not method.server_streaming:
            channel.unary_unary(path(method), **kwargs)(request, metadata=metadata, timeout=timeout)
        elif not method.client_streaming:
            list(channel.unary_stream(path(method), **kwargs)(request, metadata=metadata, timeout=timeout))
        elif not method.server_streaming:
            channel.stream_unary(path(method), **kwargs)(iter([request]), metadata=metadata, timeout=timeout)
        else:
            list(channel.stream_stream(path(method), **kwargs)(iter([request]), metadata=metadata, timeout=timeout))
    except grpc.RpcError as exc:
        return Outcome(exc.code(), exc.details() or "")  # type: ignore[attr-defined]
    return Outcome(grpc.StatusCode.OK, "")


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def health_status(channel: grpc.Channel, service: str = "", metadata: Sequence[tuple[str, str]] | None = None) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), metadata=metadata, timeout=10).status


SERVING = health_pb2.HealthCheckResponse.SERVING


def common_settings(redis_server: EmbeddedRedis, state_dir: Path) -> CommonSettings:
    """Settings with a prefix of their own, for module-scoped servers that outlive one test's fixtures."""
    return CommonSettings(redis_url=redis_server.url, redis_prefix=f"s{uuid.uuid4().hex[:6]}", state_dir=state_dir)


def methods_ids() -> Iterator[str]:
    for method in all_methods():
        yield f"{method.containing_service.name}.{method.name}"
