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
from alloop.models.linear.layer import (
    TFIDF_LAYER,
    EncodedTextVectorizer,
    build_classifier,
    build_vectorizer,
    compile_classifier,
    vectorize,
)
from alloop.models.linear.solver import Vectors, class_shares, predict_proba, solve, uses_corpus
from alloop.models.text_model import assemble
from alloop.models.training import EpochCallback, LabeledData, RoundResult, SentenceVectorSource


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
    sentence_vectors: SentenceVectorSource | None = None,
) -> RoundResult:
    """A round on ``corpus`` (the labelled and the pools' texts, or a sample of the pools' alone; sorted, each once): ``vectorizer`` when given
    (the published one, kept while the pools' text is unchanged), else one adapted on ``corpus`` (from ``cache``
    when this corpus was seen), a fresh classifier, and the fit.

    ``sentence_vectors`` offer the fit the encoder block (:func:`solve` decides whether it joins); a version with it
    takes raw strings as every version does, its input joining the encoder's vector to the counts
    (:class:`EncodedTextVectorizer`).

    There are no epochs to stop early or checkpoint: the fit is the optimum. It is reported as one epoch with its
    training and validation loss, so the event stream and ``WatchTraining`` look the same for every family.
    """
    started = time.monotonic()
    if vectorizer is None:
        vectorizer = cache.vectorizer(model_config, corpus)  # adapted once per corpus, kept on disk
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
    vectors = _vectors(sentence_vectors, model_config, train, val, corpus, corpus_counts is not None)
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
        vectors=vectors,
    )
    encoded = kernel.shape[0] > vectorizer.vocabulary_size()
    if encoded != isinstance(vectorizer, EncodedTextVectorizer):  # the fit chose; the served input follows
        sha256 = sentence_vectors.sha256 if encoded and sentence_vectors is not None else None
        vectorizer = build_vectorizer(model_config, (), vectorizer.get_vocabulary(), encoder_sha256=sha256)
    classifier = build_classifier(model_config, vectorizer)
    compile_classifier(classifier, model_config)
    classifier.get_layer(TFIDF_LAYER).idf.assign(stats.idf)
    classifier.layers[-1].set_weights([kernel, bias])
    model = assemble(vectorizer, classifier)

    # The same numbers the assembled model gives (tests/unit/test_linear_solve.py), from count vectors cached per
    # vocabulary: the validation and test splits are not re-tokenized every round.
    def score(data: LabeledData) -> Evaluation:
        rows = sentence_vectors(data.texts, embed_missing=True) if encoded and sentence_vectors is not None else None
        return evaluate(data.labels, predict_proba(cache.counts(vectorizer, data.texts), stats.idf, kernel, bias, rows))

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


def _vectors(
    source: SentenceVectorSource | None,
    config: ModelConfig,
    train: LabeledData,
    val: LabeledData,
    corpus: Sequence[str],
    with_corpus: bool,
) -> Vectors | None:
    """The encoder block's vectors for :func:`solve` (labelled rows in ``train``'s order, corpus rows where the fit
    uses the corpus, the validation rows), or None: no source, a weight of 0, or corpus items not embedded yet."""
    if source is None or config.linear_encoder_scale <= 0:
        return None
    labelled = source(train.texts, embed_missing=True)  # first: the corpus holds the labelled texts too
    corpus_vectors = source(corpus, embed_missing=False) if with_corpus and corpus else None
    if with_corpus and corpus and corpus_vectors is None:
        return None
    return Vectors(labelled, corpus_vectors, source(val.texts, embed_missing=True))
