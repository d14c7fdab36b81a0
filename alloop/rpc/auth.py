"""Bearer-token authentication and per-method roles for both gRPC services.

Callers send ``authorization: Bearer <token>`` metadata. Each configured token has one role:

| role | may call |
|---|---|
| ``labeler`` | LeaseTasks, SubmitLabels, GetModel, WatchModels |
| ``client`` | SubmitPool, ScorePool, Query, Predict, GetModel, WatchModels |
| ``operator`` | every RPC (Train, GetStatus, ListModelVersions, WatchTraining are operator only) |

Tokens come from ``ALLOOP_AUTH_TOKENS`` (``token:role,token:role``) and/or ``ALLOOP_AUTH_TOKENS_FILE`` (one
``token role`` per line, ``#`` starts a comment). Authentication is on as soon as one token is configured.

The standard health service (``/grpc.health.v1.Health/*``) stays open without a token: orchestrators and load
balancers probe it, and it reveals only SERVING / NOT_SERVING. Every other method must be listed in
:data:`METHOD_ROLES`; a method that is not (a new RPC nobody gave roles yet) is refused for every caller.
"""

from __future__ import annotations

import collections
import hmac
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

log = logging.getLogger(__name__)

LABELER = "labeler"
CLIENT = "client"
OPERATOR = "operator"
ROLES = (LABELER, CLIENT, OPERATOR)

HEALTH_PREFIX = "/grpc.health.v1.Health/"
_QUERY = "/alloop.v1.QueryService/"
_TRAINER = "/alloop.v1.TrainerService/"


def _roles(*roles: str) -> frozenset[str]:
    return frozenset({*roles, OPERATOR})  # the operator is the admin: it may call every RPC


METHOD_ROLES: dict[str, frozenset[str]] = {
    _QUERY + "LeaseTasks": _roles(LABELER),
    _QUERY + "SubmitLabels": _roles(LABELER),
    _QUERY + "SubmitPool": _roles(CLIENT),
    _QUERY + "ScorePool": _roles(CLIENT),
    _QUERY + "Query": _roles(CLIENT),
    _QUERY + "Predict": _roles(CLIENT),
    _QUERY + "GetModel": _roles(LABELER, CLIENT),
    _QUERY + "WatchModels": _roles(LABELER, CLIENT),
    _TRAINER + "Train": _roles(),
    _TRAINER + "GetStatus": _roles(),
    _TRAINER + "ListModelVersions": _roles(),
    _TRAINER + "WatchTraining": _roles(),
}

TOKENS_ENV = "ALLOOP_AUTH_TOKENS"
TOKENS_FILE_ENV = "ALLOOP_AUTH_TOKENS_FILE"
CLIENT_TOKEN_ENV = "ALLOOP_TOKEN"
METADATA_KEY = "authorization"
MISSING_TOKEN = f"missing bearer token: send metadata '{METADATA_KEY}: Bearer <token>'"
INVALID_TOKEN = "invalid token"


def _check_entry(token: str, role: str, where: str) -> tuple[str, str]:
    if not token:
        raise ValueError(f"{where}: empty token")
    if any(c.isspace() for c in token):
        raise ValueError(f"{where}: a token must not contain white space")
    if not role:
        raise ValueError(f"{where}: empty role (expected one of {', '.join(ROLES)})")
    if role not in ROLES:
        raise ValueError(f"{where}: unknown role {role!r} (expected one of {', '.join(ROLES)})")
    return token, role


@dataclass(frozen=True)
class Credentials:
    """The configured tokens and their roles; empty means authentication is off. ``repr`` never shows a token."""

    tokens: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for token, role in self.tokens:
            _check_entry(token, role, "auth token")
            if seen.setdefault(token, role) != role:
                raise ValueError(f"a token is configured twice with different roles ({seen[token]} and {role})")

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def role_of(self, token: str) -> str | None:
        """The token's role, or None; compares against every token in constant time per comparison."""
        presented = token.encode()
        found = None
        for known, role in self.tokens:
            if hmac.compare_digest(presented, known.encode()):
                found = role
        return found

    def __repr__(self) -> str:
        counts = collections.Counter(role for _, role in self.tokens)
        return f"Credentials({dict(counts) if counts else 'auth off'})"


def parse_tokens(text: str) -> list[tuple[str, str]]:
    """``token:role,token:role`` (the value of ALLOOP_AUTH_TOKENS); white space around entries is ignored."""
    entries = []
    for n, raw in enumerate(text.split(","), 1):
        entry = raw.strip()
        if not entry:
            continue
        token, sep, role = entry.rpartition(":")
        if not sep:
            raise ValueError(f"{TOKENS_ENV} entry #{n}: expected 'token:role', got no ':'")
        entries.append(_check_entry(token.strip(), role.strip(), f"{TOKENS_ENV} entry #{n}"))
    return entries


def parse_tokens_file(text: str, name: str = TOKENS_FILE_ENV) -> list[tuple[str, str]]:
    """One ``token role`` per line; blank lines and ``#`` comments are ignored."""
    entries = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{name} line {n}: expected 'token role', got {len(parts)} field(s)")
        entries.append(_check_entry(parts[0], parts[1], f"{name} line {n}"))
    return entries


def credentials_from_env(env: Mapping[str, str]) -> Credentials:
    """Tokens from ALLOOP_AUTH_TOKENS and ALLOOP_AUTH_TOKENS_FILE together (either, both, or neither)."""
    entries = parse_tokens(env.get(TOKENS_ENV, ""))
    path = env.get(TOKENS_FILE_ENV, "").strip()
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{TOKENS_FILE_ENV}: cannot read {path}: {exc.strerror or exc}") from None
        entries += parse_tokens_file(text, f"{TOKENS_FILE_ENV} {path}")
    return Credentials(tuple(dict.fromkeys(entries)))


def bearer_token(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The token in ``authorization: Bearer <token>``, or None when the header is missing or not a bearer."""
    for key, value in metadata or ():
        if key.lower() != METADATA_KEY:
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def _refusal(code: grpc.StatusCode, details: str, response_streaming: bool) -> grpc.RpcMethodHandler:
    """A handler that refuses without reading the request.

    The handler always takes a request *stream* that it never iterates, so no request message is received or
    deserialized (a unary-request handler would read the whole message before running). The response kind
    matches the method's, so the refusal looks the same to any client.
    """

    def abort(_requests: object, context: grpc.ServicerContext) -> Any:
        context.abort(code, details)

    if response_streaming:
        def abort_stream(requests: object, context: grpc.ServicerContext) -> Any:
            abort(requests, context)
            yield  # pragma: no cover - a generator, so it is served as a response stream

        return grpc.stream_stream_rpc_method_handler(abort_stream)
    return grpc.stream_unary_rpc_method_handler(abort)


class AuthInterceptor(grpc.ServerInterceptor):
    """Checks the bearer token and the caller's role before a method runs; the health service stays open."""

    def __init__(self, credentials: Credentials, method_roles: Mapping[str, frozenset[str]] = METHOD_ROLES) -> None:
        if not credentials.enabled:
            raise ValueError("AuthInterceptor needs at least one token")
        self._credentials = credentials
        self._method_roles = dict(method_roles)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if method.startswith(HEALTH_PREFIX):
            return continuation(handler_call_details)
        token = bearer_token(handler_call_details.invocation_metadata)
        if token is None:
            return self._refuse(continuation, handler_call_details, grpc.StatusCode.UNAUTHENTICATED, MISSING_TOKEN)
        role = self._credentials.role_of(token)
        if role is None:
            return self._refuse(continuation, handler_call_details, grpc.StatusCode.UNAUTHENTICATED, INVALID_TOKEN)
        allowed = self._method_roles.get(method)
        if allowed is None:
            log.warning("refused %s: the method has no roles in METHOD_ROLES (denied by default)", method)
            return self._refuse(
                continuation, handler_call_details, grpc.StatusCode.PERMISSION_DENIED,
                f"{method} is not open to any role (no entry in METHOD_ROLES)",
            )
        if role not in allowed:
            return self._refuse(
                continuation, handler_call_details, grpc.StatusCode.PERMISSION_DENIED,
                f"role '{role}' may not call {method}; roles that may: {', '.join(sorted(allowed))}",
            )
        return continuation(handler_call_details)

    @staticmethod
    def _refuse(
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
        code: grpc.StatusCode,
        message: str,
    ) -> grpc.RpcMethodHandler:
        # Looking the handler up only tells whether it streams responses; it reads nothing from the call.
        handler = continuation(details)
        return _refusal(code, message, bool(handler and handler.response_streaming))


# --- client side ------------------------------------------------------------------------------------------------


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return ((METADATA_KEY, f"Bearer {token}"),)


class BearerCallCredentials(grpc.AuthMetadataPlugin):
    """Per-call credentials for TLS channels (gRPC sends call credentials only over secure channels)."""

    def __init__(self, token: str) -> None:
        self._metadata = bearer_metadata(token)

    def __call__(self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
        callback(self._metadata, None)


class _CallDetails(
    collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


class BearerInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the bearer metadata to every call on a plaintext channel (for loopback use)."""

    def __init__(self, token: str) -> None:
        self._metadata = bearer_metadata(token)

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [(k, v) for k, v in (details.metadata or ()) if k.lower() != METADATA_KEY]
        return _CallDetails(
            details.method, details.timeout, [*metadata, *self._metadata], details.credentials,
            getattr(details, "wait_for_ready", None), getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):  # type: ignore[no-untyped-def]
        return continuation(self._details(client_call_details), request_iterator)


__all__ = [
    "CLIENT",
    "LABELER",
    "METHOD_ROLES",
    "OPERATOR",
    "ROLES",
    "AuthInterceptor",
    "BearerCallCredentials",
    "BearerInterceptor",
    "Credentials",
    "bearer_token",
    "credentials_from_env",
    "parse_tokens",
    "parse_tokens_file",
]
