"""One training round of any model family, evaluated on the validation and test splits.

Families trained by epochs (the seed's BiLSTM) warm-start and fit with best-only checkpointing and early stopping
on the validation split. Warm start is their documented default, as in the seed: round n+1 continues from round
n's weights and keeps its vocabulary (adapted once, on the first round's training texts); ``warm_start=False``
rebuilds from scratch each round. Exact families (``Family.exact``) run their own round (``solve_round`` in their
module): no epochs, nothing to stop early or to continue from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np
import tensorflow as tf

from alloop.metrics import Evaluation, evaluate
from alloop.models.config import ModelConfig, TrainingConfig
from alloop.models.families import Family, get_family
from alloop.models.text_model import Predictor, assemble, parts

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, float]], None]


class SentenceVectorSource(Protocol):
    """A frozen sentence encoder's vectors of a round's texts (``trainer_service.vectors.RoundVectors``)."""

    sha256: str  # of the encoder's weights: a version with the block records it

    def __call__(self, texts: Sequence[str], *, embed_missing: bool) -> Any:
        """One vector per text, or None where some text has no stored vector and ``embed_missing`` is False."""
        ...


@dataclass(frozen=True)
class LabeledData:
    texts: Sequence[str]
    labels: Sequence[int]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class RoundResult:
    model: keras.Model
    test: Evaluation
    validation: Evaluation
    epochs: int
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)


class _EpochReporter(keras.callbacks.Callback):
    def __init__(self, report: EpochCallback) -> None:
        super().__init__()
        self._report = report

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._report(epoch + 1, {k: float(v) for k, v in (logs or {}).items()})


def _dataset(
    family: Family, vectorizer: keras.layers.Layer, data: LabeledData, batch_size: int, shuffle_seed: int | None
) -> tf.data.Dataset:
    tokens = family.code.vectorize(vectorizer, data.texts)
    labels = tf.constant(np.asarray(data.labels, dtype=np.int64))
    ds = tf.data.Dataset.from_tensor_slices((tokens, labels))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(data), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _corpus(train: LabeledData, unlabeled: Sequence[str], is_sample: bool) -> list[str]:
    """The texts a family that adapts on the pools learns its vocabulary and statistics from. Sorted: a capped
    vocabulary breaks frequency ties by order, and the store's order is not stable. A set: labelled pool items are in
    both lists and must count once. A sample of the pools is the corpus alone (see ``train_round``)."""
    return sorted(set(unlabeled)) if is_sample else sorted({*train.texts, *unlabeled})


def train_round(
    train: LabeledData,
    val: LabeledData,
    test: LabeledData,
    *,
    model_config: ModelConfig,
    training: TrainingConfig,
    work_dir: Path,
    previous: keras.Model | None = None,
    on_epoch: EpochCallback | None = None,
    unlabeled_texts: Sequence[str] = (),
    unlabeled_is_sample: bool = False,
    vectorizer: keras.layers.Layer | None = None,
    cache: Any = None,
    sentence_vectors: SentenceVectorSource | None = None,
) -> RoundResult:
    """``unlabeled_texts`` (the pools' text) join the labeled texts when a family adapts its vocabulary on them.
    ``unlabeled_is_sample``: they are a sample that stands for the pools (:meth:`PoolStore.sample_texts`), and are
    the whole corpus without the labeled texts, so its statistics stay the same while labels arrive and an exact
    family reuses them from its cache instead of recounting the sample every round.
    ``vectorizer``, an adapted one to keep (with a fresh classifier), skips the adaptation. ``cache``, what
    :meth:`Family.new_cache` gave, keeps an exact family's statistics between rounds (None: a new one, in memory).
    An exact family is handed its whole round (``solve_round``), with ``sentence_vectors`` where a sentence encoder
    is configured (the linear family's encoder block)."""
    if len(train) == 0:
        raise ValueError("the training set is empty")
    if len(val) == 0:
        raise ValueError("the validation set is empty: early stopping and checkpointing need one")
    started = time.monotonic()
    keras.utils.set_random_seed(training.seed)
    family = get_family(model_config.family)
    if family.exact:
        # Built once: vocabulary and statistics share it.
        corpus = _corpus(train, unlabeled_texts, unlabeled_is_sample) if family.pool_text else sorted(set(train.texts))
        return family.code.solve_round(
            train,
            val,
            test,
            corpus,
            model_config=model_config,
            training=training,
            cache=cache if cache is not None else family.new_cache(None),
            vectorizer=vectorizer,
            on_epoch=on_epoch,
            sentence_vectors=sentence_vectors,
        )
    # Families fitted by epochs continue from the previous version when warm-starting.
    if previous is not None and training.warm_start:
        vectorizer, classifier = parts(previous)
    else:
        if vectorizer is None:
            texts = _corpus(train, unlabeled_texts, unlabeled_is_sample) if family.pool_text else list(train.texts)
            vectorizer = family.code.build_vectorizer(model_config, texts)
        classifier = family.code.build_classifier(model_config, vectorizer)
    family.code.compile_classifier(classifier, model_config)

    work_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = work_dir / "best.weights.h5"
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.ModelCheckpoint(
            str(checkpoint), monitor="val_loss", save_best_only=True, save_weights_only=True
        ),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=training.patience),
    ]
    if on_epoch is not None:
        callbacks.append(_EpochReporter(on_epoch))
    history = classifier.fit(
        _dataset(family, vectorizer, train, training.batch_size, training.seed),
        validation_data=_dataset(family, vectorizer, val, training.batch_size, None),
        epochs=training.epochs,
        callbacks=callbacks,
        shuffle=False,  # the dataset reshuffles itself each epoch
        verbose=0,
    )
    if checkpoint.exists():
        classifier.load_weights(str(checkpoint))
    model = assemble(vectorizer, classifier)
    predictor = Predictor(model)
    validation = evaluate(val.labels, predictor.predict_proba(val.texts))
    test_eval = evaluate(test.labels, predictor.predict_proba(test.texts)) if len(test) else validation
    return RoundResult(
        model=model,
        test=test_eval,
        validation=validation,
        epochs=len(history.history.get("loss", [])),
        seconds=time.monotonic() - started,
        history={k: [float(x) for x in v] for k, v in history.history.items()},
    )
