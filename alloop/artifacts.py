"""The model store on disk: one directory per version, written whole or not at all, verified on load.

A version is written into a temporary directory beside its final place, every file fsynced, then renamed into place
(rename is atomic within a filesystem), so a crash leaves either a complete version or a ``.tmp-*`` directory that
:func:`remove_partial` deletes at the next start. ``MANIFEST`` lists each file's sha256; the sha256 of the manifest
is the version's digest, recorded in Redis, so a reader verifies the whole tree against one value.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import keras

from alloop.errors import IntegrityError
from alloop.models.families import register_keras_objects

MODEL_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "MANIFEST"


def version_dir(model_dir: Path, version: int) -> Path:
    return Path(model_dir) / f"v{version:06d}"


def file_sha256(path: Path) -> str:
    """A file's sha256 (hex), read a megabyte at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest(root: Path, known: dict[str, str] | None = None) -> str:
    """The tree's manifest; ``known`` gives digests already computed from bytes in memory (by relative path)."""
    known = known or {}
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_FILE):
        name = path.relative_to(root).as_posix()
        lines.append(f"{known[name] if name in known else file_sha256(path)}  {name}")
    return "\n".join(lines) + "\n"


def _fsync_tree(root: Path) -> None:
    for path in [*root.rglob("*"), root]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_version(
    model_dir: Path, version: int, model: keras.Model, metadata: dict[str, Any], *, export_saved_model: bool = True
) -> tuple[Path, str]:
    """Write a version atomically; returns its final directory and digest."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    final = version_dir(model_dir, version)
    if final.exists():
        raise FileExistsError(f"{final} already exists; versions are never overwritten")
    tmp = model_dir / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        model.save(tmp / MODEL_FILE)
        if export_saved_model:
            model.export(str(tmp / SAVED_MODEL_DIR), format="tf_saved_model", verbose=False)
        (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))
        manifest = _manifest(tmp)
        (tmp / MANIFEST_FILE).write_text(manifest)
        _fsync_tree(tmp)
        os.rename(tmp, final)
        _fsync_tree_dir(model_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, hashlib.sha256(manifest.encode()).hexdigest()


def _fsync_tree_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _recorded_manifest(root: Path, version: int, expected_sha256: str) -> str:
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        raise IntegrityError(f"model version {version} at {root} has no {MANIFEST_FILE}")
    recorded = manifest_path.read_bytes()
    if hashlib.sha256(recorded).hexdigest() != expected_sha256:
        raise IntegrityError(f"model version {version}: manifest digest differs from the registry's {expected_sha256}")
    return recorded.decode()


def verify_version(model_dir: Path, version: int, expected_sha256: str, known: dict[str, str] | None = None) -> Path:
    root = version_dir(model_dir, version)
    recorded = _recorded_manifest(root, version, expected_sha256)
    if _manifest(root, known) != recorded:
        raise IntegrityError(
            f"model version {version} at {root}: files differ from their manifest (corrupt or truncated)"
        )
    return root


def read_verified(model_dir: Path, version: int, expected_sha256: str, name: str = MODEL_FILE) -> bytes:
    """The bytes of one file of a version, read once and verified with the whole tree against the registry's digest.

    What the caller uses is exactly what was checked: a file swapped on disk after the check cannot be used in its
    place, because the check hashed these bytes, not the file.
    """
    data = (version_dir(model_dir, version) / name).read_bytes()  # OSError while a shared volume catches up
    verify_version(model_dir, version, expected_sha256, known={name: hashlib.sha256(data).hexdigest()})
    return data


def load_version(model_dir: Path, version: int, expected_sha256: str) -> keras.Model:
    """Load a version's model from the bytes that were verified, through a private copy only this process can
    open (Keras loads from a path), deleted once loaded."""
    data = read_verified(model_dir, version, expected_sha256)
    register_keras_objects()  # the families' layers and functions that a saved model names
    private = Path(tempfile.mkdtemp(prefix="alloop-load-"))  # mode 0700
    try:
        path = private / MODEL_FILE
        path.write_bytes(data)
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def remove_partial(model_dir: Path) -> list[Path]:
    """Delete temporary directories a crashed writer left behind."""
    removed = []
    if Path(model_dir).is_dir():
        for path in Path(model_dir).glob(".tmp-*"):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
