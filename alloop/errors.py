"""Domain errors, one tree under :class:`AlloopError`.

Services raise these; one boundary (:mod:`alloop.rpc.status`) turns them into gRPC status codes, so the domain code
never imports grpc and every RPC reports the same failure the same way.
"""

from __future__ import annotations


def quoted(value: str, limit: int = 40) -> str:
    """A caller's string quoted for an error message, cut short: a message never repeats a whole bad input (a
    long one would not even fit in the status trailer)."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} characters)"


class AlloopError(Exception):
    """Base of every error alloop reports to a caller."""


class InvalidRequest(AlloopError, ValueError):
    """The request itself is wrong (empty text, k <= 0, label outside the class set...): fix it and resend."""


class NotFound(AlloopError):
    """Something the request names does not exist."""


class UnknownPool(NotFound):
    def __init__(self, pool: str) -> None:
        super().__init__(f"pool {quoted(pool)} does not exist: submit items to it with SubmitPool first")
        self.pool = pool


class UnknownVersion(NotFound):
    def __init__(self, version: int) -> None:
        super().__init__(f"model version {version} is not in the registry")
        self.version = version


class PermissionDenied(AlloopError):
    """The caller's token may not do this (label under another labeler's name, say)."""


class FailedPrecondition(AlloopError):
    """The request is well formed but the system is not in a state to accept it."""


class NotQueued(FailedPrecondition):
    """A label for an item that is not waiting for one (never queued, or no longer queued)."""


class AlreadyLabeled(FailedPrecondition):
    """A different label for an item that already has one: the first label stands."""


class RoundBusy(FailedPrecondition):
    """Another trainer replica holds the round lock."""


class ModelNotReady(FailedPrecondition):
    """No model version has been published yet, so nothing can be scored."""

    def __init__(self) -> None:
        super().__init__(
            "no model version is published yet: wait for the trainer's first round (GetModel / WatchModels)"
        )


class NothingToTrain(FailedPrecondition):
    """A training round was asked for without a training or validation set."""


class RoundFailed(AlloopError):
    """A training round that was waited for ended in an error; the trainer keeps the last published version."""


class ResourceExhausted(AlloopError):
    """The request is larger than the configured limits."""


class Unavailable(AlloopError):
    """A dependency (Redis) is down; the call can be retried."""


class IntegrityError(AlloopError, ValueError):
    """Stored bytes (a model artifact, a downloaded corpus) do not match their recorded checksum. Also a
    ValueError, so a command-line tool reports it as one line like any other bad input."""
