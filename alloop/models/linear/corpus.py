"""What the linear family learns from unlabeled text and keeps per vocabulary: the IDF weights and an LSA basis
(Deerwester et al., 1990), and :class:`CorpusCache`, which keeps vocabularies, statistics and count vectors between
rounds (in memory, and on disk when given a directory)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import keras
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from alloop.atomic_file import TEMP_PREFIX, atomic_file
from alloop.data.records import texts_digest
from alloop.models.config import ModelConfig
from alloop.models.linear.layer import build_vectorizer, vectorize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CorpusStats:
    idf: npt.NDArray[np.float32]  # (vocabulary,)
    documents: int  # the corpus size the IDF was computed on (reported, and a sanity check for tests)
    columns: npt.NDArray[np.int64]  # the vocabulary columns the LSA basis spans (the most frequent ones)
    basis: npt.NDArray[np.float32]  # (len(columns), components): corpus rows projected on it have mean norm 1

    def project(self, x: sp.csr_matrix) -> npt.NDArray[np.float64]:
        """LSA coordinates of TF-IDF rows."""
        return np.asarray(x[:, self.columns] @ self.basis, dtype=np.float64)

    def unproject(self, weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """(classes, components) weights on the LSA coordinates as (classes, vocabulary) weights on TF-IDF."""
        full = np.zeros((weights.shape[0], len(self.idf)), dtype=np.float64)
        full[:, self.columns] = weights @ self.basis.T.astype(np.float64)
        return full


def tfidf(counts: sp.csr_matrix, idf: npt.NDArray[np.float32]) -> sp.csr_matrix:
    """What :class:`SublinearTfIdf` computes, on a sparse matrix."""
    out = counts.astype(np.float32, copy=True).tocsr()
    out.eliminate_zeros()  # a stored zero is no occurrence (the layer masks counts > 0 too)
    out.data = (1.0 + np.log(np.maximum(out.data, 1.0))) * idf[out.indices]
    norms = np.sqrt(np.asarray(out.multiply(out).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ out, dtype=np.float32)


LSA_COLUMNS = 100_000


def corpus_stats(counts: sp.csr_matrix, components: int, seed: int) -> CorpusStats:
    """IDF (scikit-learn's smooth form) and a truncated-SVD basis of the corpus' TF-IDF matrix, over the
    :data:`LSA_COLUMNS` tokens found in most documents (memory: 100,000 x 300 floats, whatever the vocabulary)."""
    from sklearn.utils.extmath import randomized_svd

    n = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
    columns = np.sort(np.argsort(-df, kind="stable")[:LSA_COLUMNS]).astype(np.int64)
    matrix = tfidf(counts, idf)[:, columns]
    k = min(components, min(matrix.shape) - 1)
    if k < 1:
        return CorpusStats(idf, n, columns, np.zeros((len(columns), 0), dtype=np.float32))
    _, _, vt = randomized_svd(matrix, k, n_iter=4, random_state=seed)
    scale = float(np.mean(np.linalg.norm(np.asarray(matrix @ vt.T), axis=1))) or 1.0
    return CorpusStats(idf, n, columns, (vt.T / scale).astype(np.float32))


class CorpusCache:
    """What a pool's text teaches once and the trainer reuses every round while the pool is unchanged: the
    vocabulary (adapting 1-2-grams on 40,000 reviews takes ~30 s), the corpus statistics (the SVD, ~30 s more), and
    the count vectors of text sets that come back every round (the validation and test splits, and the corpus
    itself for the naive-Bayes importance), re-vectorized every round otherwise.

    Owned by the trainer and passed in. With a ``directory``, vocabularies and statistics are also kept on disk
    (the :data:`KEEP_ON_DISK` most recently used of each, ~120 MB per statistics file), so a restarted trainer, or a new
    stack on the same corpus, starts its first pool round in seconds. A file that cannot be read is recomputed.
    In memory only the latest vocabulary's statistics are kept.
    """

    KEEP_ON_DISK = 2
    STALE_TEMP_SECONDS = 600.0
    FORMAT = 1
    """In every file name: bump it when what a file holds would change for the same text (the standardization, the
    LSA columns), so an upgraded trainer never reads a stale file."""

    def __init__(self, directory: Path | None = None) -> None:
        self._lock = threading.Lock()
        self.directory = directory
        if directory is not None and directory.is_dir():
            # Left by a process killed mid-write. Only old ones: trainer replicas may share the directory, and a
            # young temp file is another replica's write in progress (one takes seconds).
            for partial in directory.glob(f"{TEMP_PREFIX}*"):
                try:
                    if time.time() - partial.stat().st_mtime > self.STALE_TEMP_SECONDS:
                        partial.unlink(missing_ok=True)
                except OSError:
                    pass
        self._vocabulary: str | None = None
        self._stats: dict[tuple[str, int, int], CorpusStats] = {}
        self._counts: dict[str, sp.csr_matrix] = {}
        self._seen: tuple[keras.layers.Layer, str] | None = None  # the last vectorizer object and its digest
        self.computed = 0  # vocabularies adapted and statistics computed here, not found: what tests read

    def vectorizer(self, config: ModelConfig, corpus: Sequence[str]) -> keras.layers.TextVectorization:
        """A vectorizer adapted on ``corpus`` with ``config``'s settings: from disk when this corpus was seen."""
        settings = f"{config.linear_max_tokens}-{config.ngrams}" + (
            f"-df{config.linear_min_df}" if config.linear_min_df > 1 else ""
        )
        path = self._path("vocabulary", f"{texts_digest(corpus)[:24]}-{settings}", ".json")
        if path is not None and path.exists():
            try:
                vectorizer = build_vectorizer(config, (), json.loads(path.read_text()))
                _touch(path)
                return vectorizer
            except (OSError, ValueError) as exc:
                log.warning("cached vocabulary %s is unreadable (%s); adapting again", path, exc)
        vectorizer = build_vectorizer(config, corpus)
        self.computed += 1
        if path is not None:
            self._write(path, lambda f: f.write(json.dumps(vectorizer.get_vocabulary()).encode()))
        return vectorizer

    def _switch(self, vectorizer: keras.layers.TextVectorization) -> None:
        if self._seen is not None and self._seen[0] is vectorizer:
            digest = self._seen[1]  # the trainer keeps one vectorizer object across rounds: hash its vocabulary once
        else:
            words = "\n".join(vectorizer.get_vocabulary()).encode("utf-8", "surrogatepass")  # ~1 s for 250,000
            digest = hashlib.sha256(words).hexdigest()
            self._seen = (vectorizer, digest)
        if digest != self._vocabulary:
            self._vocabulary, self._stats, self._counts = digest, {}, {}

    def stats(
        self, vectorizer: keras.layers.TextVectorization, corpus: Sequence[str], components: int, seed: int
    ) -> CorpusStats:
        """Keyed by the corpus' content too: another pool of the same size must not reuse these statistics."""
        key = (texts_digest(corpus), components, seed)
        with self._lock:
            self._switch(vectorizer)
            if key not in self._stats:
                name = f"{(self._vocabulary or '')[:24]}-{key[0][:24]}-{components}-{seed}"
                path = self._path("stats", name, ".npz")
                stats = self._read_stats(path, vectorizer.vocabulary_size())
                if stats is None:
                    counts = self._counts.get(key[0])  # the corpus' vectors, when a round has asked for them
                    stats = corpus_stats(vectorize(vectorizer, corpus) if counts is None else counts, components, seed)
                    self.computed += 1
                    if path is not None:
                        self._write(
                            path,
                            lambda f: np.savez(
                                f, idf=stats.idf, documents=stats.documents, columns=stats.columns, basis=stats.basis
                            ),
                        )
                self._stats[key] = stats
            return self._stats[key]

    # --- on disk ---------------------------------------------------------------------------------------------------
    def _path(self, kind: str, name: str, suffix: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{kind}-v{self.FORMAT}-{name}{suffix}"

    def _read_stats(self, path: Path | None, width: int) -> CorpusStats | None:
        if path is None or not path.exists():
            return None
        try:
            with np.load(path) as f:
                stats = CorpusStats(f["idf"], int(f["documents"]), f["columns"], f["basis"])
            if stats.idf.shape != (width,) or stats.basis.shape[0] != len(stats.columns):
                raise ValueError(
                    f"shapes {stats.idf.shape} / {stats.basis.shape} do not fit a {width}-token vocabulary"
                )
            _touch(path)
            return stats
        except (OSError, ValueError, KeyError) as exc:
            log.warning("cached corpus statistics %s are unreadable (%s); computing them again", path, exc)
            return None

    def _write(self, path: Path, write: Callable[[BinaryIO], object]) -> None:
        """Atomically (temp file + rename), then drop all but the :data:`KEEP_ON_DISK` most recently used files of
        its kind.
        A cache that cannot be written costs time, not correctness: it is logged, not raised."""
        try:
            with atomic_file(path) as f:
                write(f)
            kind = path.name.split("-", 1)[0]
            older = sorted(path.parent.glob(f"{kind}-*"), key=lambda p: p.stat().st_mtime, reverse=True)
            for stale in older[self.KEEP_ON_DISK :]:
                stale.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot keep %s on disk: %s", path.name, exc)

    KEEP_COUNTS = 4
    """Count-vector sets kept in memory, least recently used dropped first: a round asks for three (the corpus,
    validation, test); a bound keeps a pool that changes under one vocabulary from piling up corpora."""

    def counts(self, vectorizer: keras.layers.TextVectorization, texts: Sequence[str]) -> sp.csr_matrix:
        """Count vectors of a text set that comes back every round, keyed by its content."""
        digest = texts_digest(texts)
        with self._lock:
            self._switch(vectorizer)
            counts = self._counts.pop(digest, None)
            self._counts[digest] = vectorize(vectorizer, texts) if counts is None else counts  # now the newest
            while len(self._counts) > self.KEEP_COUNTS:
                del self._counts[next(iter(self._counts))]
            return self._counts[digest]


def _touch(path: Path) -> None:
    """Mark a cache file used, so the newest-kept rule keeps what is read, not only what was written last."""
    with contextlib.suppress(OSError):
        os.utime(path)
