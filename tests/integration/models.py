"""A tiny real model, trained once per test process, and helpers that write and publish it as a version.

The tests that need a served model do not run the trainer service: they train the tiny model once with
:func:`alloop.models.training.train_round` on the synthetic corpus, then write it with
:func:`alloop.artifacts.write_version` and publish it in the registry exactly as the trainer does.

Training is cached with ``lru_cache`` (not a session fixture) because a fixture imported into several test modules
is set up once per module; the cache makes it once per process.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import redis

from alloop import artifacts
from alloop.config import DEFAULT_CLASSES
from alloop.models.text_model import Predictor, parts
from alloop.models.training import LabeledData, RoundResult, train_round
from alloop.store.keys import Keys
from alloop.store.versions import VersionRegistry
from tests import synthetic
from tests.conftest import TINY_MODEL, TINY_TRAINING

TRAIN_SIZE = 120


def _data(n: int, seed: int, prefix: str) -> LabeledData:
    rows = synthetic.reviews(n, seed, prefix)
    return LabeledData([str(r["text"]) for r in rows], [int(r["label"]) for r in rows])  # type: ignore[call-overload]


@functools.lru_cache(maxsize=1)
def trained() -> RoundResult:
    """One tiny round on the same synthetic splits the ``corpus`` fixture writes (train 120, val 60, test 60)."""
    work_dir = Path(tempfile.mkdtemp(prefix="alloop-tiny-"))
    atexit.register(shutil.rmtree, work_dir, True)
    return train_round(
        _data(TRAIN_SIZE, 1, "init"),
        _data(60, 2, "val"),
        _data(60, 3, "test"),
        model_config=TINY_MODEL,
        training=TINY_TRAINING,
        work_dir=work_dir,
    )


@dataclass(frozen=True)
class Written:
    version: int
    path: Path
    metadata: dict[str, Any]  # what the registry gets: includes the sha256 write_version returned


def write(
    model_dir: Path, version: int, model: keras.Model | None = None, *, export_saved_model: bool = False
) -> Written:
    """Write ``version`` (the tiny model unless another is given) the way the trainer does, without publishing."""
    result = trained()
    metadata: dict[str, Any] = {
        "version": version,
        "round": version,
        "family": TINY_MODEL.family,
        "classes": list(DEFAULT_CLASSES),
        "metrics": result.test.to_dict(),
        "train_size": TRAIN_SIZE,
        "epochs": result.epochs,
        "model_config": TINY_MODEL.to_dict(),
    }
    path, digest = artifacts.write_version(
        model_dir, version, model or result.model, metadata, export_saved_model=export_saved_model
    )
    return Written(version, path, {**metadata, "sha256": digest})


def write_shifted(model_dir: Path, version: int, shift: float) -> Written:
    """Write ``version`` as the tiny model with its output bias moved by ``shift``: a version whose answers differ
    from the others', so a test can tell from a response's probabilities which version computed them."""
    output = parts(trained().model)[1].layers[-1]
    weights = output.get_weights()
    output.set_weights([*weights[:-1], weights[-1] + shift])
    try:
        return write(model_dir, version)
    finally:
        output.set_weights(weights)  # the cached model stays as trained


def answers(model_dir: Path, written: Written, texts: list[str]) -> Any:
    """What ``written`` answers for ``texts``, loaded from disk as a replica loads it."""
    return Predictor(artifacts.load_version(model_dir, written.version, written.metadata["sha256"])).predict_proba(
        texts
    )


def publish(client: redis.Redis, keys: Keys, written: Written, *, sha256: str | None = None) -> None:
    """Publish a written version (pointer + metadata + announcement); ``sha256`` overrides the recorded digest."""
    metadata = dict(written.metadata)
    if sha256 is not None:
        metadata["sha256"] = sha256
    VersionRegistry(client, keys).publish(written.version, metadata)


def write_and_publish(client: redis.Redis, keys: Keys, model_dir: Path, version: int, **kwargs: Any) -> Written:
    written = write(model_dir, version, **kwargs)
    publish(client, keys, written)
    return written
