"""Translations between the registry's records and API messages that both services send."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from alloop.errors import InvalidRequest
from alloop.models.families import FAMILIES
from alloop.v1 import common_pb2

_STRATEGY_PREFIX = "STRATEGY_"
UNSPECIFIED = common_pb2.STRATEGY_UNSPECIFIED


def _adapts_to_pool(meta: Mapping[str, Any]) -> bool:
    """The version's own word, or for a version published before it said so, its family's."""
    if "adapts_to_pool" in meta:
        return bool(meta["adapts_to_pool"])
    family = FAMILIES.get(str(meta.get("family", "")))
    return family is not None and family.pool_text


def strategy_names() -> list[str]:
    """The registry names the Strategy enum carries (every value but UNSPECIFIED), in enum order."""
    return [n.removeprefix(_STRATEGY_PREFIX).lower() for n in common_pb2.Strategy.keys() if n != "STRATEGY_UNSPECIFIED"]  # noqa: SIM118 - a protobuf enum, not a dict


def strategy_value(name: str) -> common_pb2.Strategy:
    """The Strategy enum value for a registry name (``least_confidence`` -> STRATEGY_LEAST_CONFIDENCE).

    Raises ValueError for a name the enum lacks, naming the ones it has: clients check a user's choice before they
    connect.
    """
    try:
        return common_pb2.Strategy.Value(_STRATEGY_PREFIX + name.upper())
    except ValueError:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(strategy_names())}") from None


def strategy_name(value: int, field: str, default: str | None = None) -> str:
    """The registry name a request's Strategy carries. UNSPECIFIED gives ``default``, or is refused when there is
    none; a number this version of the API does not know is refused (proto3 keeps unknown enum numbers as is)."""
    if value == UNSPECIFIED and default is not None:
        return default
    if value == UNSPECIFIED or value not in common_pb2.Strategy.values():
        what = "unset (STRATEGY_UNSPECIFIED)" if value == UNSPECIFIED else f"an unknown Strategy number {value}"
        choices = ", ".join(n for n in common_pb2.Strategy.keys() if n != "STRATEGY_UNSPECIFIED")  # noqa: SIM118 - a protobuf enum
        raise InvalidRequest(f"{field} is {what}; choose one of {choices}")
    return common_pb2.Strategy.Name(value).removeprefix(_STRATEGY_PREFIX).lower()


def timestamp(when: dt.datetime | None = None, unix_ms: int | None = None) -> Timestamp:
    message = Timestamp()
    if unix_ms is not None:
        message.FromMilliseconds(unix_ms)
    elif when is not None:
        message.FromDatetime(when.astimezone(dt.timezone.utc))
    return message


def duration(seconds: float) -> Duration:
    message = Duration()
    message.FromNanoseconds(round(seconds * 1e9))
    return message


def seconds(message: Duration) -> float:
    """A request's Duration in seconds (negative stays negative: the caller refuses it with its own message)."""
    return message.seconds + message.nanos / 1e9


def model_version_message(meta: Mapping[str, Any]) -> common_pb2.ModelVersion:
    """The registry's metadata of a version (as the trainer records it) as the API's ModelVersion."""
    metrics = meta.get("metrics", {})
    stability = meta.get("stability") or {}
    kappa = stability.get("kappa")
    message = common_pb2.ModelVersion(
        version=int(meta.get("version", 0)),
        sha256=str(meta.get("sha256", "")),
        metrics=common_pb2.ModelMetrics(
            accuracy=float(metrics.get("accuracy", 0.0)),
            false_positives=int(metrics.get("false_positives", 0)),
            false_negatives=int(metrics.get("false_negatives", 0)),
            loss=float(metrics.get("loss", 0.0)),
            test_size=int(metrics.get("test_size", 0)),
            val_accuracy=float(metrics.get("val_accuracy", 0.0)),
            val_loss=float(metrics.get("val_loss", 0.0)),
            missed_per_class=[int(v) for v in metrics.get("missed_per_class", [])],
            false_per_class=[int(v) for v in metrics.get("false_per_class", [])],
        ),
        train_size=int(meta.get("train_size", 0)),
        round=int(meta.get("round", 0)),
        family=str(meta.get("family", "")),
        classes=list(meta.get("classes", [])),
        epochs=int(meta.get("epochs", 0)),
        train_duration=duration(float(meta.get("train_seconds", 0.0))),
        stability_kappa=-1.0 if kappa is None else float(kappa),
        stop_recommended=bool(stability.get("stop", False)),
        adapts_to_pool=_adapts_to_pool(meta),
    )
    if meta.get("created_at"):  # RFC 3339 in the registry
        message.create_time.CopyFrom(timestamp(dt.datetime.fromisoformat(str(meta["created_at"]))))
    return message
