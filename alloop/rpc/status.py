"""The one place that maps domain errors to gRPC status codes.

Servicers wrap their methods with :func:`grpc_errors`; a domain error becomes ``context.abort`` with the code below
and the error's message (written for a person to act on). Anything unexpected becomes INTERNAL without leaking a
traceback to the caller, and is logged here with one.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

import grpc
import redis

from alloop import errors

log = logging.getLogger(__name__)

_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (errors.InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.RoundFailed, grpc.StatusCode.ABORTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.IntegrityError, grpc.StatusCode.DATA_LOSS),
    (redis.exceptions.ConnectionError, grpc.StatusCode.UNAVAILABLE),
    (redis.exceptions.TimeoutError, grpc.StatusCode.UNAVAILABLE),
)


def status_for(exc: BaseException) -> grpc.StatusCode:
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def message_for(exc: BaseException) -> str:
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return f"Redis is unreachable ({exc}); retry later"
    if status_for(exc) is grpc.StatusCode.INTERNAL:
        return "internal error; see the service log"
    return str(exc)


F = TypeVar("F", bound=Callable[..., Any])


def grpc_errors(method: F) -> F:
    """Decorate a servicer method (unary or streaming) so domain errors abort with their status code.

    Servicers raise domain errors and never call ``context.abort`` themselves, so this is the only abort.
    """

    def _abort(context: grpc.ServicerContext, exc: BaseException) -> None:
        if isinstance(exc, grpc.RpcError):
            # The client's request stream broke (cancelled, or over the size limit): gRPC already set the status.
            raise exc
        code = status_for(exc)
        if code is grpc.StatusCode.INTERNAL:
            log.exception("unexpected error in %s", method.__qualname__)
        context.abort(code, message_for(exc))

    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream_wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            try:
                yield from method(self, request, context)
            except Exception as exc:
                _abort(context, exc)

        return cast(F, stream_wrapper)

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as exc:
            _abort(context, exc)

    return cast(F, wrapper)
