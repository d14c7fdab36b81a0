"""Who makes a call: roles and the caller's identity, free of gRPC (the app and the auth layer share them)."""

from __future__ import annotations

from dataclasses import dataclass

LABELER = "labeler"
CLIENT = "client"
OPERATOR = "operator"
ROLES = (LABELER, CLIENT, OPERATOR)


@dataclass(frozen=True)
class Caller:
    """A call's role and identity (a token's holder); both None when authentication is off."""

    role: str | None = None
    identity: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.role == OPERATOR


ANONYMOUS = Caller()
