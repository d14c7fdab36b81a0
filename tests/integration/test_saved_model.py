"""Model artifacts on disk: a version takes raw strings (the tokenizer is inside), its TF SavedModel export serves the
same predictions, and the integrity rules (manifest digest, atomic write, never overwrite) hold."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from alloop import artifacts
from alloop.errors import IntegrityError
from alloop.models.text_model import Predictor, text_tensor, to_probabilities
from tests.integration import models

pytestmark = pytest.mark.integration

TEXTS = ["a wonderful superb film <br /> I loved it!", "dull, awful mess.", "the plot and the cast", "great"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Version 1 written once with its SavedModel export (the slow part), shared by the read-only tests."""
    model_dir = tmp_path_factory.mktemp("models")
    return model_dir, models.write(model_dir, 1, export_saved_model=True)


@pytest.fixture(scope="module")
def expected() -> np.ndarray:
    return Predictor(models.trained().model).predict_proba(TEXTS)


def test_a_saved_version_loads_and_predicts_from_raw_strings(saved, expected):
    model_dir, written = saved
    loaded = artifacts.load_version(model_dir, 1, written.metadata["sha256"])
    assert loaded is not models.trained().model
    # The loaded model takes a (n, 1) string tensor directly: no separate tokenizer to ship or to mismatch.
    direct = to_probabilities(loaded(text_tensor(TEXTS), training=False).numpy())
    assert direct.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(direct, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(Predictor(loaded, batch_size=3).predict_proba(TEXTS), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, rtol=1e-6)


def test_the_saved_model_export_serves_the_same_predictions(saved, expected):
    model_dir, written = saved
    exported = tf.saved_model.load(str(written.path / artifacts.SAVED_MODEL_DIR))
    assert "serve" in exported.signatures or hasattr(exported, "serve")
    one = exported.serve(tf.constant([[TEXTS[0]]]))
    assert tuple(one.shape) == (1, 1) and one.dtype == tf.float32
    np.testing.assert_allclose(to_probabilities(one.numpy()), expected[:1], rtol=1e-5, atol=1e-6)
    batch = to_probabilities(exported.serve(tf.constant([[t] for t in TEXTS])).numpy())
    np.testing.assert_allclose(batch, expected, rtol=1e-5, atol=1e-6)
    # The signature that TF Serving and friends call by name gives the same numbers.
    outputs = exported.signatures["serving_default"](tf.constant([[t] for t in TEXTS]))
    (tensor,) = outputs.values()
    np.testing.assert_allclose(to_probabilities(tensor.numpy()), expected, rtol=1e-5, atol=1e-6)


def test_the_version_directory_holds_its_manifest_and_metadata(saved):
    model_dir, written = saved
    assert written.path == artifacts.version_dir(model_dir, 1) and written.path.name == "v000001"
    names = {p.relative_to(written.path).as_posix() for p in written.path.rglob("*") if p.is_file()}
    assert {artifacts.MODEL_FILE, artifacts.METADATA_FILE, artifacts.MANIFEST_FILE} <= names
    assert any(name.startswith(artifacts.SAVED_MODEL_DIR + "/") for name in names)
    manifest = (written.path / artifacts.MANIFEST_FILE).read_text()
    listed = {line.split("  ", 1)[1] for line in manifest.splitlines()}
    assert listed == names - {artifacts.MANIFEST_FILE}
    assert artifacts.verify_version(model_dir, 1, written.metadata["sha256"]) == written.path
    assert list(model_dir.glob(".tmp-*")) == []


@pytest.mark.parametrize("target", [artifacts.METADATA_FILE, artifacts.MODEL_FILE, "saved_model"])
def test_verify_version_raises_integrity_error_when_a_file_is_modified(tmp_path, target):
    written = models.write(tmp_path, 1, export_saved_model=target == "saved_model")
    digest = written.metadata["sha256"]
    assert artifacts.verify_version(tmp_path, 1, digest) == written.path
    if target == "saved_model":
        path = next(p for p in sorted((written.path / target).rglob("*")) if p.is_file() and p.stat().st_size)
    else:
        path = written.path / target
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="differ from their manifest"):
        artifacts.verify_version(tmp_path, 1, digest)
    with pytest.raises(IntegrityError):
        artifacts.load_version(tmp_path, 1, digest)


def test_verify_version_refuses_a_wrong_digest_a_missing_version_and_an_edited_manifest(tmp_path):
    written = models.write(tmp_path, 1)
    digest = written.metadata["sha256"]
    with pytest.raises(IntegrityError, match="manifest digest differs"):
        artifacts.verify_version(tmp_path, 1, "0" * 64)
    with pytest.raises(IntegrityError, match="has no MANIFEST"):
        artifacts.verify_version(tmp_path, 2, digest)
    # Rewriting the manifest to match modified files does not help: the registry holds the manifest's digest.
    (written.path / artifacts.METADATA_FILE).write_text("{}")
    (written.path / artifacts.MANIFEST_FILE).write_text(artifacts._manifest(written.path))
    with pytest.raises(IntegrityError, match="manifest digest differs"):
        artifacts.verify_version(tmp_path, 1, digest)
    # A file added to the version directory is caught too.
    other = models.write(tmp_path, 3)
    (other.path / "extra.bin").write_bytes(b"x")
    with pytest.raises(IntegrityError, match="differ from their manifest"):
        artifacts.verify_version(tmp_path, 3, other.metadata["sha256"])


def test_remove_partial_removes_only_temporary_directories(tmp_path):
    assert artifacts.remove_partial(tmp_path / "missing") == []
    written = models.write(tmp_path, 1)
    partial = tmp_path / ".tmp-v000002-deadbeef"
    (partial / "saved_model").mkdir(parents=True)
    (partial / artifacts.MODEL_FILE).write_bytes(b"half a model")
    removed = artifacts.remove_partial(tmp_path)
    assert removed == [partial] and not partial.exists()
    assert written.path.is_dir()
    assert artifacts.verify_version(tmp_path, 1, written.metadata["sha256"]) == written.path
    assert artifacts.remove_partial(tmp_path) == []


def test_writing_the_same_version_twice_raises_and_leaves_the_first_intact(tmp_path):
    written = models.write(tmp_path, 1)
    before = {p: p.read_bytes() for p in written.path.rglob("*") if p.is_file()}
    with pytest.raises(FileExistsError, match="never overwritten"):
        models.write(tmp_path, 1)
    assert {p: p.read_bytes() for p in written.path.rglob("*") if p.is_file()} == before
    assert list(tmp_path.glob(".tmp-*")) == []
    assert artifacts.verify_version(tmp_path, 1, written.metadata["sha256"]) == written.path
