"""The trainer: label consumer, round scheduler, training, evaluation and publication.

Order of a round, chosen so a crash at any point leaves a consistent state:
1. take the round lock (one round at a time across replicas; renewed while the round runs, it expires within
   ALLOOP_ROUND_LOCK_SECONDS if the holder dies);
2. snapshot the training set and its untrained count in one MULTI;
3. train and evaluate (nothing persistent changes);
4. allocate a version number, write the artifact atomically (temp dir + rename);
5. publish in one MULTI: metadata, current pointer, and "the labels counted in 2 are trained".
A crash before 5 leaves at most an unreferenced version directory (or a ``.tmp-*`` one, removed at the next start)
and the labels still untrained, so the next round takes them; after 5 everything is recorded at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import redis

from alloop import artifacts
from alloop.config import TrainerSettings
from alloop.data import read_records
from alloop.data.records import texts_digest
from alloop.errors import NothingToTrain, RoundBusy, RoundFailed
from alloop.models.encoder import shared
from alloop.models.encoder.files import NAME as ENCODER_NAME
from alloop.models.families import get_family
from alloop.models.text_model import Predictor, parts
from alloop.models.training import LabeledData, train_round
from alloop.stopping import Stability, cohen_kappa, stabilizing_predictions
from alloop.store import layout
from alloop.store.connection import Client
from alloop.store.embeddings import EmbeddingStore
from alloop.store.keys import Keys, item_member
from alloop.store.pool import PoolStore, choose_stop_set
from alloop.store.training import TrainingSetStore
from alloop.store.versions import VersionRegistry
from alloop.telemetry import Metrics, gauge
from trainer_service.events import EventHub, TrainingEvent
from trainer_service.vectors import RoundVectors

log = logging.getLogger(__name__)


def _load(path: Path | None, classes: tuple[str, ...]) -> LabeledData:
    if path is None:
        return LabeledData([], [])
    records = read_records(path, classes=classes, require_label=True)
    return LabeledData([r.text for r in records], [r.known_label for r in records])


class _Phases:
    """Seconds per phase of a round: logged and kept in the registry's metadata of the version (``phase_seconds``;
    the copy written beside the model predates the write it would time), so a slow round says where."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - started, 3)


@dataclass(frozen=True)
class Status:
    labels_seen: int
    pending: int
    training: bool
    current_round: int
    current_version: int
    last_error: str


class Trainer:
    def __init__(
        self,
        settings: TrainerSettings,
        client: Client,
        *,
        consumer: str,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.settings = settings
        keys = Keys(settings.common.redis_prefix)
        self.client = client
        self.keys = keys
        self.store = TrainingSetStore(client, keys, consumer=consumer)
        self.registry = VersionRegistry(client, keys)
        self.pools = PoolStore(client, keys)
        self.events = EventHub()
        self.classes = settings.common.classes
        self.val = _load(settings.val_data, self.classes)
        self.test = _load(settings.test_data, self.classes)
        self._lock = threading.Lock()
        self._round_future: Future[dict[str, Any]] | None = None
        self._round_thread: threading.Thread | None = None
        self._round = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.last_error = ""
        self._retry_after = 0.0
        self._family = get_family(settings.model.family)
        # What the family keeps between rounds (the linear family: vocabularies and corpus statistics, also on
        # disk, and the val/test count vectors, per pool text); None for a family that keeps nothing.
        self._family_cache = self._family.new_cache(settings.corpus_cache_path)
        self._published: tuple[int, keras.Model] | None = None  # the last version this replica published
        # The sentence encoder's vectors for the linear family's encoder block (ALLOOP_ENCODER_DIR): the pools'
        # are read from the store, where the query replicas put them; None without an encoder.
        self._vectors: RoundVectors | None = None
        shared.configure(settings.common.encoder_dir)  # before a published version loads: one may need it
        if settings.common.encoder_dir is not None and self._family.exact:
            sha256, encoder = shared.encoder()
            self._vectors = RoundVectors(
                EmbeddingStore(client, keys, ENCODER_NAME),
                self.pools,
                encoder.embed,  # type: ignore[attr-defined]
                sha256,
            )
        self._lock_ms = int(
            settings.round_lock_seconds * 1000
        )  # after a failed round, automatic rounds wait (Train still starts one)

    def state(self) -> list[Any]:
        """What a scrape reads now (alloop.metrics): the training set, the labels not yet trained, the version."""
        version = self.registry.current()
        metadata = self.registry.get(version) if version else None
        return [
            gauge("alloop_training_set_items", "Labeled items in the training set", self.store.size()),
            gauge("alloop_untrained_labels", "Labels taken in since the last round started", self.store.untrained()),
            gauge("alloop_published_version", "The current published model version (0: none)", version),
            gauge(
                "alloop_published_version_test_accuracy",
                "Test accuracy of the current published version",
                float((metadata or {}).get("metrics", {}).get("accuracy", 0.0)),
            ),
            gauge("alloop_training", "1 while a round runs in this trainer", 1.0 if self.is_training() else 0.0),
        ]

    # --- start-up ----------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        removed = artifacts.remove_partial(self.settings.common.models_path)
        if removed:
            log.warning("removed %d partial model directories left by a crash", len(removed))
        layout.migrate(self.client, self.keys)
        self.store.ensure_group()
        if self.store.take_over_own_lock():
            log.warning("freed the round lock this trainer (%s) held before it restarted", self.store.consumer)
        if self.settings.initial_data is not None:
            records = read_records(self.settings.initial_data, classes=self.classes, require_label=True)
            added = self.store.seed(self.settings.initial_pool, [(r.id, r.text, r.known_label) for r in records])
            log.info("initial labeled set: %d items (%d new)", len(records), added)

    def start(self) -> None:
        thread = threading.Thread(target=self._consume_loop, name="label-consumer", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in [*self._threads, self._round_thread]:
            if thread is not None:
                thread.join(timeout=60)

    # --- consuming and scheduling ------------------------------------------------------------------------------
    def _consume_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.store.consume(block_ms=500)
                self.maybe_train()
            except redis.exceptions.RedisError as exc:
                log.warning("label consumer: Redis error %s; retrying", exc)
                self._stop.wait(1.0)
            except Exception:
                log.exception("label consumer error")
                self._stop.wait(1.0)

    def should_train(self) -> bool:
        if self.store.size() == 0 or len(self.val) == 0 or len(self.test) == 0:
            return False
        if self.registry.current() == 0:
            return True  # the first version trains on the initial labeled set
        return self.store.untrained() >= self.settings.retrain_threshold

    def maybe_train(self) -> None:
        if time.monotonic() < self._retry_after:
            return
        if not self.is_training() and self.should_train():
            with contextlib.suppress(RoundBusy):  # another replica trains; its publication is seen like any other
                self.request_round()

    def is_training(self) -> bool:
        future = self._round_future
        return future is not None and not future.done()

    def request_round(self) -> tuple[int, bool, Future[dict[str, Any]]]:
        """Start a round unless one runs; returns (round, started, future of the published metadata)."""
        with self._lock:
            if self._round_future is not None and not self._round_future.done():
                return self._round, False, self._round_future
            if self.store.size() == 0:
                raise NothingToTrain("the training set is empty: load an initial labeled set or submit labels first")
            if len(self.val) == 0:
                raise NothingToTrain("no validation set is configured (ALLOOP_VAL_DATA): early stopping needs one")
            if len(self.test) == 0:
                raise NothingToTrain("no test set is configured (ALLOOP_TEST_DATA): every version is evaluated on it")
            token = f"{self.store.consumer}/{uuid.uuid4().hex}"  # whose lock it is, for take_over_own_lock
            if not self.store.acquire_round_lock(token, self._lock_ms):
                raise RoundBusy(
                    "another trainer replica is running a round; its version will be published when it ends"
                )
            self._round = self.store.next_round()
            future: Future[dict[str, Any]] = Future()
            self._round_future = future
            thread = threading.Thread(
                target=self._run_round, args=(self._round, token, future), name=f"round-{self._round}", daemon=True
            )
            self._round_thread = thread
            thread.start()
            return self._round, True, future

    # --- a round -------------------------------------------------------------------------------------------------
    def _previous(self, unlabeled_digest: str) -> tuple[keras.Model | None, keras.layers.Layer | None]:
        """What this round starts from: the published model (warm start), or only its vocabulary.

        A family that adapts its vocabulary on the pool keeps the published vocabulary while the pools' text is
        unchanged (same digest, not merely the same size), since adapting a large vocabulary costs more than the rest
        of an exact round. Exact families never warm-start.
        """
        version = self.registry.current()
        metadata = self.registry.get(version) if version else None
        if metadata is None:
            return None, None
        family = self._family
        same_vocabulary = (
            family.pool_text
            and metadata.get("family") == family.name
            and metadata.get("unlabeled_digest") == unlabeled_digest
            and metadata.get("model_config") == self.settings.model.to_dict()
        )
        warm = self.settings.training.warm_start and not family.exact
        if not (warm or same_vocabulary):
            return None, None
        if not warm and self._published is not None and self._published[0] == version:
            # This replica published it: its vectorizer is still in memory (never trained further, so the same as
            # on disk), and loading a 250,000-token version back costs a second or two every round.
            return None, parts(self._published[1])[0]
        model = artifacts.load_version(self.settings.common.models_path, version, metadata["sha256"])
        if warm:
            return model, None
        return None, parts(model)[0]

    def _pool_text(self) -> tuple[list[str], bool, dict[str, list[str]]]:
        """The round's pool text, whether it is a sample, and (for the encoder block: their vectors are read by
        id) the ids whose texts they are, per pool."""
        if not self._family.pool_text:
            return [], False, {}
        limit, seed = self.settings.pool_sample_items, self.settings.training.seed
        if self._vectors is not None:
            return self.pools.sample_corpus(limit, seed)
        texts, sampled = self.pools.sample_texts(limit, seed)
        return texts, sampled, {}

    def _hold_lock(self, token: str, done: threading.Event) -> None:
        """Renew the round lock while the round runs, so it outlives long epochs but not a dead process."""
        while not done.wait(self._lock_ms / 3000):
            if not self.store.renew_round_lock(token, self._lock_ms):
                log.error("lost the round lock; another replica may start a round")

    def _run_round(self, round_no: int, token: str, future: Future[dict[str, Any]]) -> None:
        done = threading.Event()
        threading.Thread(target=self._hold_lock, args=(token, done), name="round-lock", daemon=True).start()
        cleanup: list[Path] = []
        try:
            phases = _Phases()
            with phases("snapshot"):
                items, untrained = self.store.snapshot()
                train = LabeledData([i.text for i in items], [i.label for i in items])
            self.events.publish(TrainingEvent("round_started", round_no, train_size=len(train)))
            log.info("round %d: training on %d labels (%d new)", round_no, len(train), untrained)

            def on_epoch(epoch: int, logs: dict[str, float]) -> None:
                self.events.publish(
                    TrainingEvent("epoch_end", round_no, epoch=epoch, metrics=logs, train_size=len(train))
                )

            # Checkpoints stay in a private directory of this process, never on the model volume that replicas
            # (and whoever else can write it) share: the best epoch is reloaded from what this round wrote.
            work_dir = Path(tempfile.mkdtemp(prefix=f"alloop-round-{round_no}-"))
            cleanup.append(work_dir)
            with phases("pool_text"):
                unlabeled, sampled, corpus_ids = self._pool_text()
                unlabeled_digest = texts_digest(unlabeled)
            if self._vectors is not None:
                with phases("sentence_vectors"):
                    self._vectors.load([i.member for i in items], corpus_ids)
            with phases("previous"):
                previous, vocabulary = self._previous(unlabeled_digest)
            with phases("train"):
                result = train_round(
                    train,
                    self.val,
                    self.test,
                    model_config=self.settings.model,
                    training=self.settings.training,
                    work_dir=work_dir,
                    previous=previous,
                    vectorizer=vocabulary,
                    on_epoch=on_epoch,
                    unlabeled_texts=unlabeled,
                    unlabeled_is_sample=sampled,
                    cache=self._family_cache,
                    sentence_vectors=self._vectors,
                )
            version = self.registry.allocate()
            while artifacts.version_dir(self.settings.common.models_path, version).exists():
                # The model store outlived Redis' counter (Redis restored without AOF): never overwrite a version.
                log.warning("model version %d already exists on disk; allocating another number", version)
                version = self.registry.allocate()
            metrics = result.test.to_dict()
            metrics.update(val_accuracy=result.validation.accuracy, val_loss=result.validation.loss)
            metadata: dict[str, Any] = {
                "version": version,
                "round": round_no,
                "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "family": self.settings.model.family,
                "adapts_to_pool": self._family.pool_text,
                "classes": list(self.classes),
                "train_size": len(train),
                "epochs": result.epochs,
                "train_seconds": round(result.seconds, 3),
                "metrics": metrics,
                "model_config": self.settings.model.to_dict(),
                "unlabeled_size": len(unlabeled),
                "unlabeled_sampled": sampled,
                "unlabeled_digest": unlabeled_digest,
            }
            encoder_sha256 = getattr(parts(result.model)[0], "encoder_sha256", None)
            if encoder_sha256 is not None:  # the version's input joins the encoder's vector (docs/embeddings.md)
                metadata["sentence_encoder"] = {"name": ENCODER_NAME, "sha256": encoder_sha256}
            with phases("stability"):
                stability, stop_labels = self._stability(result.model)
            metadata["stability"] = stability.to_dict()
            with phases("write"):
                _path, digest = artifacts.write_version(
                    self.settings.common.models_path,
                    version,
                    result.model,
                    metadata,
                    export_saved_model=self.settings.export_saved_model,
                )
            metadata["sha256"] = digest
            metadata["phase_seconds"] = phases.seconds

            def bookkeeping(pipe: Any) -> None:
                self.store.mark_trained(pipe, untrained)
                if stop_labels is not None:
                    self.store.save_stop_predictions(pipe, version, stop_labels)

            self.registry.publish(version, metadata, also=bookkeeping)
            self._published = (version, result.model)
            log.info(
                "round %d: published version %d (test accuracy %.4f, FP %d, FN %d; seconds: %s)",
                round_no,
                version,
                metrics["accuracy"],
                metrics["false_positives"],
                metrics["false_negatives"],
                ", ".join(f"{name} {sec:.1f}" for name, sec in phases.seconds.items()),
                extra={"model_version": version},
            )
            self.last_error = ""
            self.events.publish(
                TrainingEvent(
                    "round_finished",
                    round_no,
                    version=version,
                    train_size=len(train),
                    metrics={"accuracy": result.test.accuracy, "loss": result.test.loss},
                )
            )
            self.metrics.rounds.labels("published").inc()
            for name, seconds in phases.seconds.items():
                self.metrics.round_phase_seconds.labels(name).set(seconds)
            future.set_result(metadata)
        except Exception as exc:
            log.exception("round %d failed", round_no)
            self.last_error = f"round {round_no}: {exc}"
            self._retry_after = time.monotonic() + 30.0
            self.events.publish(TrainingEvent("round_failed", round_no, message=str(exc)))
            self.metrics.rounds.labels("failed").inc()
            future.set_exception(RoundFailed(f"round {round_no} failed: {exc}"))
        finally:
            done.set()
            for path in cleanup:
                shutil.rmtree(path, ignore_errors=True)
            try:
                self.store.release_round_lock(token)
            except redis.exceptions.RedisError as exc:
                log.warning(
                    "round %d: could not release the round lock (%s); it expires in %.0f s",
                    round_no,
                    exc,
                    self._lock_ms / 1000,
                )

    def _stability(self, model: keras.Model) -> tuple[Stability, list[int] | None]:
        """Agreement of this round's model with the published one on the fixed stop set (stabilizing predictions)."""
        if not self.store.stop_set():
            members = choose_stop_set(
                self.pools.sample_members(self.settings.pool_sample_items, self.settings.training.seed),
                self.settings.stop_set_size,
                self.settings.training.seed,
            )
            self.store.fix_stop_set(members)
        stop_set = self.store.stop_set()
        if not stop_set:
            return stabilizing_predictions([]), None  # no pool yet
        # One HMGET per pool, not one round trip per stop-set item (1,000 by default) every round.
        by_pool: dict[str, list[str]] = {}
        for pool, item_id in stop_set:
            by_pool.setdefault(pool, []).append(item_id)
        found = {
            (pool, item_id): text or ""
            for pool, ids in by_pool.items()
            for item_id, text in zip(ids, self.pools.texts(pool, ids), strict=True)
        }
        texts = [found[item] for item in stop_set]
        predictor = Predictor(model)
        if predictor.sentence_width and self._vectors is not None:  # the stored vectors, not the encoder again
            self._vectors.add(item_member(pool, item_id) for pool, item_id in stop_set)
            features = predictor.features_with_vectors(texts, self._vectors.every(texts))
            labels = predictor.predict_proba_features(features).argmax(axis=1).tolist()
        else:
            labels = predictor.predict_proba(texts).argmax(axis=1).tolist()
        history = [
            m["stability"]["kappa"] for m in self.registry.all() if (m.get("stability") or {}).get("kappa") is not None
        ]
        previous = self.store.last_stop_predictions()
        if previous is None or previous[0] != self.registry.current() or len(previous[1]) != len(labels):
            return stabilizing_predictions(history), labels  # nothing comparable yet: the next version will be
        kappa = cohen_kappa(previous[1], labels, len(self.classes))
        return stabilizing_predictions([*history, kappa]), labels

    # --- read side -------------------------------------------------------------------------------------------
    def status(self) -> Status:
        return Status(
            labels_seen=self.store.size(),
            pending=self.store.untrained(),
            training=self.is_training(),
            current_round=self.store.current_round(),
            current_version=self.registry.current(),
            last_error=self.last_error,
        )
