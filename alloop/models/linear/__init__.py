"""The linear family: logistic regression on sublinear TF-IDF 1-2-grams, with blocks learned from the pool's text.

What a round fits (:func:`solve`), and why each part is there; which parts join is decided per round from the data
(``ModelConfig.linear_select``, :func:`choose_settings`), because what pays on one corpus costs on another:

- *Sublinear, L2-normalized TF-IDF* (scikit-learn's ``TfidfVectorizer(sublinear_tf=True)``), not Keras' raw
  ``tf_idf`` mode: text length otherwise swamps the weights.
- *LSA from unlabeled text* (Deerwester et al., 1990): unlabeled text is free, so the vocabulary, the IDF weights
  and a truncated SVD of the pool's TF-IDF matrix are learned from the pool. Fitting on ``[tfidf, w * lsa]`` lets a
  few hundred labels move along the corpus' main directions instead of along single bigrams. The block's weight
  ``w = min(1, sqrt(pivot / labels))`` fades as labels accumulate and the bigrams alone become enough.
- *A naive-Bayes-scaled copy of the TF-IDF block* (:func:`nb_importance`, NBSVM's idea): columns the data call
  discriminative are penalized less.
- *Pseudo-labelled pool rows* (:func:`pseudo_labels`): active learning leaves the easy items unlabelled, so a fit on
  the labels alone lacks their mass.
- *A convex fit, solved exactly* (liblinear / L-BFGS), not SGD with early stopping: the problem has one optimum, and
  a few hundred rows give early stopping nothing to work with. The validation split still reports ``val_loss``.

The served version stays a plain ``text -> counts -> TF-IDF -> Dense`` Keras model: the LSA term is linear in the
TF-IDF vector (``lsa = tfidf @ basis``) and the scaled copy is too, so their weights fold into the Dense kernel
(``kernel = a + s * importance * c + w * basis @ b``) and the basis never ships with a version. It lives only in
the trainer, cached per vocabulary, and spans the :data:`LSA_COLUMNS` most frequent tokens: the rarer ones carry no
corpus structure worth a basis row each.
"""

from __future__ import annotations

from alloop.models.linear.corpus import LSA_COLUMNS, CorpusCache, CorpusStats, corpus_stats, tfidf
from alloop.models.linear.layer import (
    TFIDF_LAYER,
    SublinearTfIdf,
    build_classifier,
    build_vectorizer,
    compile_classifier,
    frequent_columns,
    vectorize,
)
from alloop.models.linear.rounds import solve_round
from alloop.models.linear.solver import (
    PseudoRows,
    Vectors,
    choose_settings,
    class_shares,
    join,
    lsa_weight,
    nb_importance,
    nb_uses_corpus,
    predict_proba,
    prior_shift,
    probabilities,
    pseudo_labels,
    solve,
    uses_corpus,
)

Cache = CorpusCache  # what alloop.models.families asks an exact family for

__all__ = [
    "LSA_COLUMNS",
    "TFIDF_LAYER",
    "Cache",
    "CorpusCache",
    "CorpusStats",
    "PseudoRows",
    "SublinearTfIdf",
    "Vectors",
    "build_classifier",
    "build_vectorizer",
    "choose_settings",
    "class_shares",
    "compile_classifier",
    "corpus_stats",
    "frequent_columns",
    "join",
    "lsa_weight",
    "nb_importance",
    "nb_uses_corpus",
    "predict_proba",
    "prior_shift",
    "probabilities",
    "pseudo_labels",
    "solve",
    "solve_round",
    "tfidf",
    "uses_corpus",
    "vectorize",
]
