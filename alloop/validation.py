"""Checks on what callers send, shared by the services: each failure says what to fix."""

from __future__ import annotations

from collections.abc import Sequence

from alloop.errors import InvalidRequest, ResourceExhausted, quoted

MAX_NAME_CHARS = 200


def check_name(kind: str, value: str, limit: int = MAX_NAME_CHARS) -> str:
    if not value or not value.strip():
        raise InvalidRequest(f"{kind} must not be empty")
    if len(value) > limit:
        raise InvalidRequest(f"{kind} is {len(value)} characters long; the limit is {limit}")
    if value != value.strip():
        raise InvalidRequest(f"{kind} {quoted(value)} has leading or trailing white space")
    return value


def check_text(text: str, max_chars: int, where: str) -> str:
    if not text or not text.strip():
        raise InvalidRequest(f"{where}: text is empty or only white space")
    if len(text) > max_chars:
        raise InvalidRequest(f"{where}: text is {len(text)} characters long; the limit is {max_chars}")
    return text


def check_batch_size(count: int, limit: int, what: str) -> None:
    if count > limit:
        raise ResourceExhausted(f"{count} {what} in one request; the limit is {limit}: split the request")


def check_label(label: int, classes: Sequence[str], where: str) -> int:
    if not 0 <= label < len(classes):
        names = ", ".join(f"{i}={name}" for i, name in enumerate(classes))
        raise InvalidRequest(f"{where}: label {label} is not a class index ({names})")
    return label


def check_unique(ids: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for item_id in ids:
        if item_id in seen:
            raise InvalidRequest(f"{what} {quoted(item_id)} appears twice in one request")
        seen.add(item_id)
