"""Bearer-token authentication and per-method roles for both gRPC services.

Callers send ``authorization: Bearer <token>`` metadata. Each configured token has one role:

| role | may call |
|---|---|
| ``labeler`` | LeaseTasks, SubmitLabels, GetModel, WatchModels |
| ``client`` | SubmitPool, ScorePool, Query, Predict, GetModel, WatchModels |
| ``operator`` | every RPC (Train, GetStatus, ListModelVersions, WatchTraining are operator only) |

Tokens come from ``ALLOOP_AUTH_TOKENS`` (``token:role[:holder],...``) and/or ``ALLOOP_AUTH_TOKENS_FILE`` (one
``token role [holder]`` per line, ``#`` starts a comment). Authentication is on as soon as one token is configured.
A token may name its holder: that name is the caller's identity (:meth:`Credentials.identify`), recorded with every
label it submits; a token without one is known as ``<role>:<first 8 hex digits of its SHA-256>``.

The standard health service (``/grpc.health.v1.Health/*``) stays open without a token: orchestrators and load
balancers probe it, and it reveals only SERVING / NOT_SERVING. Every other method must be listed in
:data:`METHOD_ROLES`; a method that is not (a new RPC nobody gave roles yet) is refused for every caller.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from alloop.environment import ServerEnvironment
from alloop.errors import PermissionDenied
from alloop.identity import ANONYMOUS, CLIENT, LABELER, OPERATOR, ROLES, Caller

log = logging.getLogger(__name__)


HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_METHOD = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
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
    # Reflection describes the API (what the .proto files in the repository say) to any caller with a token.
    REFLECTION_METHOD: _roles(LABELER, CLIENT),
}

TOKENS_ENV = "ALLOOP_AUTH_TOKENS"
TOKENS_FILE_ENV = "ALLOOP_AUTH_TOKENS_FILE"
CLIENT_TOKEN_ENV = "ALLOOP_TOKEN"
METADATA_KEY = "authorization"
MISSING_TOKEN = f"missing bearer token: send metadata '{METADATA_KEY}: Bearer <token>'"
INVALID_TOKEN = "invalid token"
MAX_HOLDER_CHARS = 100


Entry = tuple[str, str, str]  # (token, role, holder name or "")


def _check_entry(token: str, role: str, where: str, holder: str = "") -> Entry:
    if not token:
        raise ValueError(f"{where}: empty token")
    if any(c.isspace() for c in token):
        raise ValueError(f"{where}: a token must not contain white space")
    if not role:
        raise ValueError(f"{where}: empty role (expected one of {', '.join(ROLES)})")
    if role not in ROLES:
        raise ValueError(f"{where}: unknown role {role!r} (expected one of {', '.join(ROLES)})")
    if holder != holder.strip() or len(holder) > MAX_HOLDER_CHARS or any(c in holder for c in ",#:"):
        raise ValueError(
            f"{where}: a holder name is at most {MAX_HOLDER_CHARS} characters, without ',', '#', ':' or "
            "white space around it"
        )
    return token, role, holder


@dataclass(frozen=True)
class Credentials:
    """The configured tokens, their roles and holders; empty means authentication is off.

    ``tokens`` holds ``(token, role)`` or ``(token, role, holder)`` entries. ``repr`` never shows a token.
    """

    tokens: tuple[tuple[str, ...], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        seen: dict[str, tuple[str, str]] = {}
        entries = []
        for raw in self.tokens:
            if len(raw) not in (2, 3):
                raise ValueError("an auth token entry is (token, role) or (token, role, holder)")
            token, role, holder = _check_entry(raw[0], raw[1], "auth token", raw[2] if len(raw) == 3 else "")
            if seen.setdefault(token, (role, holder)) != (role, holder):
                raise ValueError(f"a token is configured twice with different roles or holders ({role})")
            entries.append((token, role, holder))
        object.__setattr__(self, "tokens", tuple(entries))

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def identify(self, token: str) -> Caller | None:
        """The token's caller, or None; compares against every token in constant time per comparison."""
        presented = token.encode()
        found = None
        for known, role, holder in self.tokens:
            if hmac.compare_digest(presented, known.encode()):
                found = Caller(role, holder or f"{role}:{hashlib.sha256(known.encode()).hexdigest()[:8]}")
        return found

    def role_of(self, token: str) -> str | None:
        caller = self.identify(token)
        return caller.role if caller else None

    def caller(self, metadata: Iterable[tuple[str, Any]] | None) -> Caller:
        """The caller behind a call's metadata: :data:`ANONYMOUS` with auth off. With auth on, the interceptor
        has already refused a call without a valid token, so this only names who it is."""
        if not self.enabled:
            return ANONYMOUS
        token = bearer_token(metadata)
        found = self.identify(token) if token else None
        if found is None:  # unreachable behind the AuthInterceptor, which refuses such calls first
            raise PermissionDenied("no valid bearer token on an authenticated call")
        return found

    def __repr__(self) -> str:
        counts = collections.Counter(role for _, role, _ in self.tokens)
        return f"Credentials({dict(counts) if counts else 'auth off'})"


def parse_tokens(text: str) -> list[Entry]:
    """``token:role[:holder],...`` (the value of ALLOOP_AUTH_TOKENS); white space around entries is ignored.

    A token may itself hold ':'; the role is the last field that names a role, and a holder may follow it."""
    entries = []
    for n, raw in enumerate(text.split(","), 1):
        entry = raw.strip()
        if not entry:
            continue
        where = f"{TOKENS_ENV} entry #{n}"
        token, sep, role = entry.rpartition(":")
        if not sep:
            raise ValueError(f"{where}: expected 'token:role' or 'token:role:holder', got no ':'")
        head, sep2, maybe_role = token.rpartition(":")
        if sep2 and maybe_role.strip() in ROLES:
            if role.strip() in ROLES:
                # "t:labeler:operator" could be token "t:labeler" as operator, or token "t" as labeler "operator".
                raise ValueError(
                    f"{where}: ambiguous, a holder named like a role; name the holder otherwise or use "
                    f"{TOKENS_FILE_ENV} ('token role holder')"
                )
            entries.append(_check_entry(head.strip(), maybe_role.strip(), where, role.strip()))
        else:
            entries.append(_check_entry(token.strip(), role.strip(), where))
    return entries


def parse_tokens_file(text: str, name: str = TOKENS_FILE_ENV) -> list[Entry]:
    """One ``token role [holder]`` per line; blank lines and ``#`` comments are ignored."""
    entries = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) not in (2, 3):
            raise ValueError(f"{name} line {n}: expected 'token role [holder]', got {len(parts)} field(s)")
        entries.append(_check_entry(parts[0], parts[1], f"{name} line {n}", parts[2] if len(parts) == 3 else ""))
    return entries


def credentials_from_env(env: Mapping[str, str]) -> Credentials:
    """Tokens from ALLOOP_AUTH_TOKENS and ALLOOP_AUTH_TOKENS_FILE together (either, both, or neither)."""
    e = ServerEnvironment.read(env)
    return credentials_from(e.auth_tokens, e.auth_tokens_file)


def credentials_from(tokens: str | None, path: Path | None) -> Credentials:
    """Tokens from ``tokens`` (ALLOOP_AUTH_TOKENS' form) and the file at ``path`` together."""
    entries = parse_tokens(tokens or "")
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
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
                continuation,
                handler_call_details,
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method} is not open to any role (no entry in METHOD_ROLES)",
            )
        if role not in allowed:
            return self._refuse(
                continuation,
                handler_call_details,
                grpc.StatusCode.PERMISSION_DENIED,
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
    collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
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
            details.method,
            details.timeout,
            [*metadata, *self._metadata],
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)


__all__ = [
    "ANONYMOUS",
    "CLIENT",
    "LABELER",
    "METHOD_ROLES",
    "OPERATOR",
    "ROLES",
    "AuthInterceptor",
    "BearerCallCredentials",
    "BearerInterceptor",
    "Caller",
    "Credentials",
    "bearer_token",
    "credentials_from_env",
    "parse_tokens",
    "parse_tokens_file",
]
