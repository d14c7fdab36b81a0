"""The version a replica serves, and the hot swap to the next one.

A request takes :meth:`ModelHolder.current` once and uses that snapshot to the end, so it never mixes versions.
A new version is loaded and verified on the watcher thread, off the request path, then installed by replacing one
reference; requests in flight keep the snapshot they took. A version that fails verification is skipped and the
last good one stays in service. A version that cannot be read (an OSError or ValueError: a shared volume still
catching up, say) is tried again at each poll, ``max_load_attempts`` times in all, then given up like a corrupt one;
:meth:`ModelHolder.refused` tells which versions were given up and why, for the health service.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from alloop import artifacts
from alloop.errors import IntegrityError, ModelNotReady, Unavailable
from alloop.models.text_model import Predictor
from alloop.store.versions import VersionRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    version: int
    metadata: dict[str, Any]
    predictor: Predictor

    @property
    def classes(self) -> list[str]:
        return list(self.metadata.get("classes", []))


class ModelHolder:
    def __init__(
        self,
        registry: VersionRegistry,
        model_dir: Path,
        *,
        batch_size: int = 512,
        max_load_attempts: int = 10,
    ) -> None:
        self._registry = registry
        self._model_dir = Path(model_dir)
        self._batch_size = batch_size
        self._max_attempts = max_load_attempts
        self._attempts: dict[int, int] = {}
        self._current: ServedModel | None = None
        self._changed = threading.Condition()
        self._failed: dict[int, str] = {}
        self._registry_error = ""  # why the last read of the registry failed; "" once it succeeds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- request side ------------------------------------------------------------------------------------------
    def current(self) -> ServedModel:
        served = self._current
        if served is None:
            if self._registry_error:
                raise Unavailable(
                    f"no model version is loaded: the model registry in Redis cannot be read ({self._registry_error}); "
                    "retry later"
                )
            raise ModelNotReady()
        return served

    def current_or_none(self) -> ServedModel | None:
        return self._current

    def registry_current(self) -> int:
        """The version the registry names as published now (0: none), whether or not this replica serves it."""
        return self._registry.current()

    def watch(self, active: Callable[[], bool], timeout: float = 0.5) -> Iterator[ServedModel]:
        """Yield the served version now (if any), then each new one, while ``active()`` holds."""
        last = 0
        while active() and not self._stop.is_set():
            served = self._current
            if served is not None and served.version != last:
                last = served.version
                yield served
                continue
            with self._changed:
                if self._current is served:
                    self._changed.wait(timeout)

    # --- swap side ---------------------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Install the registry's current version if it is newer than ours; True if a swap happened."""
        try:
            version = self._registry.current()
        except redis.exceptions.RedisError as exc:
            self._registry_error = f"{type(exc).__name__}: {exc}"
            raise
        self._registry_error = ""
        served = self._current
        if version == 0 or (served is not None and served.version >= version) or version in self._failed:
            return False
        metadata = self._registry.get(version)
        if metadata is None:
            log.error("registry names version %d but holds no metadata for it", version)
            self._failed[version] = "no metadata in the registry"
            return False
        try:
            model = artifacts.load_version(self._model_dir, version, metadata["sha256"])
        except IntegrityError as exc:
            self._failed[version] = str(exc)  # a checksum mismatch will not heal: never try this version again
            log.error("refusing model version %d: %s; still serving %s", version, exc, served and served.version)
            return False
        except (OSError, ValueError) as exc:
            # Possibly transient (a shared volume not yet in sync): the next polls try again, a bounded number of times.
            attempts = self._attempts[version] = self._attempts.get(version, 0) + 1
            if attempts >= self._max_attempts:
                self._failed[version] = f"could not be loaded in {attempts} attempts: {exc}"
                log.error(
                    "giving up on model version %d after %d attempts (%s); still serving %s",
                    version,
                    attempts,
                    exc,
                    served and served.version,
                )
            else:
                log.warning(
                    "cannot load model version %d yet (attempt %d of %d): %s; still serving %s",
                    version,
                    attempts,
                    self._max_attempts,
                    exc,
                    served and served.version,
                )
            return False
        predictor = Predictor(model, self._batch_size)
        try:
            # Trace the two graphs every request uses (texts to features, features to probabilities) and hash the
            # vocabulary here, before the version is installed, not in the first request that needs them.
            if predictor.vocabulary_size() <= 1:  # only the out-of-vocabulary token: the vocabulary did not load
                raise ValueError("its vocabulary loaded empty")
            predictor.predict_proba(["warm up"])
            _ = predictor.fingerprint
        except Exception as exc:
            self._failed[version] = f"loads but cannot score: {exc}"
            log.error(
                "refusing model version %d: it loads but cannot score (%s); still serving %s",
                version,
                exc,
                served and served.version,
            )
            return False
        self.install(ServedModel(version, metadata, predictor))
        return True

    def refused(self) -> dict[int, str]:
        """Versions this replica gave up on, with the reason (a copy)."""
        return dict(self._failed)

    def model_health(self) -> bool:
        """True while this replica serves the registry's current version or is still trying to load it; False when
        it serves nothing or gave the current version up (it may still serve an older one)."""
        if self._current is None:
            return False
        return self._registry.current() not in self._failed

    def install(self, served: ServedModel) -> None:
        with self._changed:
            self._current = served
            self._changed.notify_all()
        log.info("serving model version %d", served.version, extra={"model_version": served.version})

    def start(self, poll_seconds: float) -> None:
        """Watch the announcement channel, and poll the pointer as a fallback for missed messages."""
        self._thread = threading.Thread(target=self._run, args=(poll_seconds,), name="model-watcher", daemon=True)
        self._thread.start()

    def _run(self, poll_seconds: float) -> None:
        pubsub = None
        while not self._stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self._registry.subscribe()
                    self.refresh()
                # Wake on an announcement or after the poll interval, whichever comes first, then check the pointer.
                pubsub.get_message(timeout=poll_seconds)
                self.refresh()
            except redis.exceptions.RedisError as exc:  # one line, no traceback: the watchdog says the rest
                self._registry_error = f"{type(exc).__name__}: {exc}"
                log.warning("model watcher: Redis cannot be read (%s); retrying", self._registry_error)
                _closed(pubsub)
                pubsub = None
                self._stop.wait(min(poll_seconds, 1.0))
            except Exception:
                log.exception("model watcher error; retrying")
                _closed(pubsub)
                pubsub = None
                self._stop.wait(min(poll_seconds, 1.0))

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _closed(pubsub: Any) -> None:
    """Close a pub/sub connection that failed, ignoring how it fails; the watcher opens a new one."""
    if pubsub is not None:
        with contextlib.suppress(Exception):  # a broken connection may fail to close in any way
            pubsub.close()
