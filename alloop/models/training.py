"""One training round of any model family, evaluated on the validation and test splits.

Families trained by epochs (the seed's BiLSTM) warm-start and fit with best-only checkpointing and early stopping
on the validation split. Warm start is their documented default, as in the seed: round n+1 continues from round
n's weights and keeps its vocabulary (adapted once, on the first round's training texts); ``warm_start=False``
rebuilds from scratch each round. Convex families (``linear``) are solved exactly instead: no epochs, nothing to
stop early or to continue from; their vocabulary follows the pools' text and is kept while that text is unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from alloop.metrics import Evaluation, evaluate
from alloop.models import linear
from alloop.models.config import ModelConfig, TrainingConfig
from alloop.models.families import Family, get_family
from alloop.models.text_model import Predictor, assemble, parts

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, float]], None]


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
    tokens = family.vectorize(vectorizer, data.texts)
    labels = tf.constant(np.asarray(data.labels, dtype=np.int64))
    ds = tf.data.Dataset.from_tensor_slices((tokens, labels))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(data), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


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
    vectorizer: keras.layers.Layer | None = None,
    corpus_cache: linear.CorpusCache | None = None,
) -> RoundResult:
    """``unlabeled_texts`` (the pools' text) join the labeled texts when a family adapts its vocabulary on them;
    ``vectorizer``, an adapted one to keep (with a fresh classifier), skips the adaptation. ``corpus_cache`` keeps
    a convex family's corpus statistics between rounds on the same vocabulary."""
    if len(train) == 0:
        raise ValueError("the training set is empty")
    if len(val) == 0:
        raise ValueError("the validation set is empty: early stopping and checkpointing need one")
    started = time.monotonic()
    keras.utils.set_random_seed(training.seed)
    family = get_family(model_config.family)
    # Sorted: a capped vocabulary breaks frequency ties by order, and the store's order is not stable. A set:
    # labelled pool items are in both lists and must count once. Built once: vocabulary and statistics share it.
    pooled = sorted({*train.texts, *unlabeled_texts}) if family.adapt_on_unlabeled or family.convex else None
    if family.convex:
        corpus_cache = corpus_cache or linear.CorpusCache()
    # An exact fit has nothing to continue from: convex families ignore warm start and build a fresh classifier.
    if previous is not None and training.warm_start and not family.convex:
        vectorizer, classifier = parts(previous)
    else:
        if vectorizer is None:
            corpus = pooled if family.adapt_on_unlabeled and pooled is not None else list(train.texts)
            if corpus_cache is not None and family.convex:
                vectorizer = corpus_cache.vectorizer(model_config, corpus)  # adapted once per corpus, kept on disk
            else:
                vectorizer = family.build_vectorizer(model_config, corpus)
        classifier = family.build_classifier(model_config, vectorizer)
    family.compile_classifier(classifier, model_config)
    if family.convex:
        assert pooled is not None and corpus_cache is not None
        order = sorted(range(len(train)), key=lambda i: (train.texts[i], train.labels[i]))  # the fit is order-sensitive
        train = LabeledData([train.texts[i] for i in order], [train.labels[i] for i in order])
        return _solve_round(
            family,
            vectorizer,
            classifier,
            train,
            val,
            test,
            pooled,
            model_config,
            training,
            started,
            corpus_cache,
            on_epoch,
        )

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


def _solve_round(
    family: Family,
    vectorizer: keras.layers.Layer,
    classifier: keras.Model,
    train: LabeledData,
    val: LabeledData,
    test: LabeledData,
    corpus: Sequence[str],
    model_config: ModelConfig,
    training: TrainingConfig,
    started: float,
    cache: linear.CorpusCache,
    on_epoch: EpochCallback | None,
) -> RoundResult:
    """A convex family's round: corpus statistics (cached per vocabulary), one exact fit, the same evaluation.

    There are no epochs to stop early or checkpoint: the fit is the optimum. It is reported as one epoch with its
    training and validation loss, so the event stream and ``WatchTraining`` look the same for every family.
    """
    # The corpus' count vectors feed the naive-Bayes importance and the pseudo-labels; asked for first, the
    # statistics reuse them.
    corpus_counts = cache.counts(vectorizer, corpus) if linear.uses_corpus(model_config) else None
    stats = cache.stats(vectorizer, corpus, model_config.linear_lsa_components, training.seed)
    unlabeled = None
    if corpus_counts is not None:
        labelled = set(train.texts)
        unlabeled = np.fromiter((text not in labelled for text in corpus), dtype=bool, count=len(corpus))
    # The validation split chooses the fit's blocks (ModelConfig.linear_select): its accuracy reported below is the
    # chosen fit's, so slightly optimistic; the test split never takes part.
    kernel, bias, train_loss = linear.solve(
        family.vectorize(vectorizer, train.texts),
        train.labels,
        stats,
        model_config,
        training.seed,
        corpus_counts,
        unlabeled,
        linear.class_shares(val.labels, model_config.n_classes),
        validation=(cache.counts(vectorizer, val.texts), val.labels),
    )
    classifier.get_layer(linear.TFIDF_LAYER).idf.assign(stats.idf)
    classifier.layers[-1].set_weights([kernel, bias])
    model = assemble(vectorizer, classifier)

    # The same numbers the assembled model gives (tests/unit/test_linear_solve.py), from count vectors cached per
    # vocabulary: the 10,000 validation and test reviews are not re-tokenized every round.
    def score(data: LabeledData) -> Evaluation:
        return evaluate(
            data.labels, linear.predict_proba(cache.counts(vectorizer, data.texts), stats.idf, kernel, bias)
        )

    validation = score(val)
    test_eval = score(test) if len(test) else validation
    logs = {"loss": train_loss, "val_loss": validation.loss, "val_accuracy": validation.accuracy}
    if on_epoch is not None:
        on_epoch(1, logs)
    return RoundResult(
        model=model,
        test=test_eval,
        validation=validation,
        epochs=1,
        seconds=time.monotonic() - started,
        history={name: [value] for name, value in logs.items()},
    )
