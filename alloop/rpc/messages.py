"""Translations between the registry's records and API messages that both services send."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alloop.v1 import common_pb2


def model_version_message(meta: Mapping[str, Any]) -> common_pb2.ModelVersion:
    """The registry's metadata of a version (as the trainer records it) as the API's ModelVersion."""
    metrics = meta.get("metrics", {})
    stability = meta.get("stability") or {}
    kappa = stability.get("kappa")
    return common_pb2.ModelVersion(
        version=int(meta.get("version", 0)),
        created_at=str(meta.get("created_at", "")),
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
        train_seconds=float(meta.get("train_seconds", 0.0)),
        stability_kappa=-1.0 if kappa is None else float(kappa),
        stop_recommended=bool(stability.get("stop", False)),
    )
