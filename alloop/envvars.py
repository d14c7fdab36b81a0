"""Typed reads of environment variables: a bad value is a ValueError whose one line names the variable.

The services' mains print that line and exit 2, so an operator sees ``ALLOOP_EPOCHS must be an integer, got 'ten'``
rather than a traceback from ``int()``.
"""

from __future__ import annotations

from collections.abc import Mapping


def _raw(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    return None if raw is None or not raw.strip() else raw.strip()


def integer(env: Mapping[str, str], name: str, default: int, minimum: int | None = None) -> int:
    """``name`` as an integer (``default`` when unset or blank), refused below ``minimum``."""
    raw = _raw(env, name)
    if raw is None:
        value = default
    else:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {raw[:40]!r}") from None
    if minimum is not None and value < minimum:
        bound = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def number(env: Mapping[str, str], name: str, default: float, minimum: float | None = None) -> float:
    """``name`` as a finite float (``default`` when unset or blank), refused below ``minimum``."""
    raw = _raw(env, name)
    if raw is None:
        value = float(default)
    else:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{name} must be a number, got {raw[:40]!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{name} must be a finite number, got {raw[:40]!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum:g}, got {value:g}")
    return value


def choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """``name`` as one of ``choices`` (``default`` when unset or blank)."""
    raw = _raw(env, name)
    value = default if raw is None else raw
    if value not in choices:
        raise ValueError(f"{name}={value[:40]!r}; choose one of {', '.join(choices)}")
    return value
