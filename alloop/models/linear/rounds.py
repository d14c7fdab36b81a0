"""The linear family's round: the vocabulary and corpus statistics (cached per pool text), one exact fit, the
evaluation every family reports. :func:`alloop.models.training.train_round` hands an exact family its whole round."""

from __future__ import annotations

import time
from collections.abc import Sequence

import keras
import numpy as np

from alloop.metrics import Evaluation, evaluate
from alloop.models.config import ModelConfig, TrainingConfig
from alloop.models.linear.corpus import CorpusCache
from alloop.models.linear.layer import TFIDF_LAYER, build_classifier, compile_classifier, vectorize
from alloop.models.linear.solver import class_shares, predict_proba, solve, uses_corpus
from alloop.models.text_model import assemble
from alloop.models.training import EpochCallback, LabeledData, RoundResult


def solve_round(
    train: LabeledData,
    val: LabeledData,
    test: LabeledData,
    corpus: Sequence[str],
    *,
    model_config: ModelConfig,
    training: TrainingConfig,
    cache: CorpusCache,
    vectorizer: keras.layers.Layer | None = None,
    on_epoch: EpochCallback | None = None,
) -> RoundResult:
    """A round on ``corpus`` (the labelled and the pools' texts, or a sample of the pools' alone; sorted, each once): ``vectorizer`` when given
    (the published one, kept while the pools' text is unchanged), else one adapted on ``corpus`` (from ``cache``
    when this corpus was seen), a fresh classifier, and the fit.

    There are no epochs to stop early or checkpoint: the fit is the optimum. It is reported as one epoch with its
    training and validation loss, so the event stream and ``WatchTraining`` look the same for every family.
    """
    started = time.monotonic()
    if vectorizer is None:
        vectorizer = cache.vectorizer(model_config, corpus)  # adapted once per corpus, kept on disk
    classifier = build_classifier(model_config, vectorizer)
    compile_classifier(classifier, model_config)
    order = sorted(range(len(train)), key=lambda i: (train.texts[i], train.labels[i]))  # the fit is order-sensitive
    train = LabeledData([train.texts[i] for i in order], [train.labels[i] for i in order])
    # The corpus' count vectors feed the naive-Bayes importance and the pseudo-labels; asked for first, the
    # statistics reuse them.
    corpus_counts = cache.counts(vectorizer, corpus) if uses_corpus(model_config) else None
    stats = cache.stats(vectorizer, corpus, model_config.linear_lsa_components, training.seed)
    unlabeled = None
    if corpus_counts is not None:
        labelled = set(train.texts)
        unlabeled = np.fromiter((text not in labelled for text in corpus), dtype=bool, count=len(corpus))
    # The validation split chooses the fit's blocks (ModelConfig.linear_select): its accuracy reported below is the
    # chosen fit's, so slightly optimistic; the test split never takes part.
    kernel, bias, train_loss = solve(
        vectorize(vectorizer, train.texts),
        train.labels,
        stats,
        model_config,
        training.seed,
        corpus_counts,
        unlabeled,
        class_shares(val.labels, model_config.n_classes),
        validation=(cache.counts(vectorizer, val.texts), val.labels),
    )
    classifier.get_layer(TFIDF_LAYER).idf.assign(stats.idf)
    classifier.layers[-1].set_weights([kernel, bias])
    model = assemble(vectorizer, classifier)

    # The same numbers the assembled model gives (tests/unit/test_linear_solve.py), from count vectors cached per
    # vocabulary: the validation and test splits are not re-tokenized every round.
    def score(data: LabeledData) -> Evaluation:
        return evaluate(data.labels, predict_proba(cache.counts(vectorizer, data.texts), stats.idf, kernel, bias))

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
