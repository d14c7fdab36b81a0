"""The process's sentence encoder: configured once at start-up from ``ALLOOP_ENCODER_DIR``, loaded once, shared by
every model version that has the encoder block and by the embedding worker.

A version does not carry the encoder's 90 MB of weights in its ``model.keras``: it names the encoder and the
sha256 of its weights file, and loading it resolves that name here. A process with no encoder configured, or with
other weights, cannot load such a version, and says why. (The version's SavedModel export does hold the weights:
it stands alone.)
"""

from __future__ import annotations

import threading
from pathlib import Path

from alloop.artifacts import file_sha256
from alloop.errors import IntegrityError
from alloop.models.encoder.files import NAME

WEIGHTS = "model.safetensors"


class _Process:
    """What this process has configured and loaded (one per process: :data:`_process`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.directory: Path | None = None
        self.loaded: tuple[str, object] | None = None  # (weights sha256, the SentenceEncoder)


_process = _Process()


def configure(directory: Path | None) -> None:
    """Where this process's encoder files are (None: no encoder); loading waits for the first use."""
    with _process.lock:
        if directory != _process.directory:
            _process.directory, _process.loaded = directory, None


def configured() -> bool:
    return _process.directory is not None


def encoder(expected_sha256: str | None = None) -> tuple[str, object]:
    """(the weights' sha256, the loaded :class:`alloop.models.encoder.SentenceEncoder`); ``expected_sha256``, a
    version's record of the weights it was fitted with, must match them."""
    with _process.lock:
        if _process.directory is None:
            raise IntegrityError(
                f"this model uses the sentence encoder {NAME}, and this process has none: set ALLOOP_ENCODER_DIR "
                "(alloop-fetch-encoder fetches it)"
            )
        if _process.loaded is None:
            from alloop.models.encoder import SentenceEncoder

            directory = _process.directory
            _process.loaded = (file_sha256(directory / WEIGHTS), SentenceEncoder(directory))
        sha256, loaded = _process.loaded
    if expected_sha256 is not None and expected_sha256 != sha256:
        raise IntegrityError(
            f"this model was fitted with {NAME} weights of sha256 {expected_sha256}, and ALLOOP_ENCODER_DIR holds "
            f"weights of sha256 {sha256}"
        )
    return sha256, loaded
