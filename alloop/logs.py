"""Log set-up for both services: one variable for the level, one for the format, and request context on every line.

``ALLOOP_LOG_LEVEL`` (DEBUG, INFO, WARNING, ERROR; default INFO) and ``ALLOOP_LOG_FORMAT`` (``plain`` for a
terminal, the default; ``json`` for one JSON object per line, for log collectors). Each record carries the service
and, inside a call, the request id (the caller's ``x-request-id`` metadata, or one made up), the RPC method, and the
pool and model version where the code that logs knows them (:func:`context`).
"""

from __future__ import annotations

import contextvars
import logging
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from alloop.environment import LOG_FORMATS, LOG_LEVELS, LoggingEnvironment

LEVEL_ENV = "ALLOOP_LOG_LEVEL"
FORMAT_ENV = "ALLOOP_LOG_FORMAT"
LEVELS = LOG_LEVELS
FORMATS = LOG_FORMATS
FIELDS = ("request_id", "method", "pool", "model_version")

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "alloop_log_context",
    default={},  # noqa: B039 - never mutated: context() sets a new dict
)


@contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (request_id, method, pool, model_version) to every record logged inside the block."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v not in (None, "")}})
    try:
        yield
    finally:
        _context.reset(token)


def request_id(metadata: Any) -> str:
    """The caller's ``x-request-id``, or a new one."""
    for key, value in metadata or ():
        if key.lower() == "x-request-id" and value:
            return str(value)[:64]
    return uuid.uuid4().hex[:16]


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self._service
        current = _context.get()
        for name in FIELDS:
            if not hasattr(record, name) and name in current:
                setattr(record, name, current[name])
        return True


class _PlainFormatter(logging.Formatter):
    """``time service LEVEL message [key=value ...]``: the context fields a record has, after its message."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{name}={getattr(record, name)}" for name in FIELDS if hasattr(record, name))
        return f"{line} [{extra}]" if extra else line


def settings_from_env(env: Mapping[str, str]) -> tuple[str, str]:
    """(level, format) from the environment; ValueError naming the variable for a value it does not know."""
    e = LoggingEnvironment.read(env)
    return e.log_level, e.log_format


def configure(service: str, env: Mapping[str, str], stream: TextIO | None = None) -> None:
    """Send the root logger's records to ``stream`` (stderr) at the configured level and format."""
    level, style = settings_from_env(env)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_ContextFilter(service))
    if style == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(service)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(_PlainFormatter(f"%(asctime)s {service} %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


__all__ = ["FORMAT_ENV", "LEVEL_ENV", "configure", "context", "request_id", "settings_from_env"]
