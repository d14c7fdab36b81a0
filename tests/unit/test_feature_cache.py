"""The query service's feature cache: which rows it vectorizes, which it reuses, when it starts over.

The predictor is a stand-in whose "features" are derived from each text, so a row in the wrong place or a stale row
shows up as a wrong number. With real models: tests/integration/test_linear_family.py
(``test_a_round_through_the_services_with_the_linear_family``: a new version on the same vocabulary scores the pool
from the kept rows) and tests/integration/test_strategies_service.py (features score like the texts).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import scipy.sparse as sp

from query_service.features import FeatureCache


class FakePredictor:
    sentence_width = 0

    def __init__(self, fingerprint: str = "v1", sparse: bool = False) -> None:
        self.fingerprint = fingerprint
        self.sparse = sparse
        self.calls: list[int] = []

    def features(self, texts: Sequence[str]) -> np.ndarray | sp.csr_matrix:
        self.calls.append(len(texts))
        rows = np.array([[len(t), sum(map(ord, t)) % 97] for t in texts], dtype=np.float32).reshape(-1, 2)
        return sp.csr_matrix(rows) if self.sparse else rows


class FakeEncodedPredictor(FakePredictor):
    """A version whose input joins a sentence vector: features are the text's two numbers, then the vector."""

    sentence_width = 2

    def features(self, texts: Sequence[str]) -> np.ndarray | sp.csr_matrix:
        raise AssertionError("the encoder ran on pool items")

    def features_with_vectors(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        self.calls.append(len(texts))
        return np.hstack([expected(texts), vectors])


def test_a_version_that_joins_sentence_vectors_gets_the_stored_ones_for_new_rows_only():
    asked: list[tuple[str, list[str]]] = []

    def stored(pool: str, ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        asked.append((pool, list(ids)))
        return np.array([[ord(i), 1.0] for i in ids], dtype=np.float32)

    cache, predictor = FeatureCache(100, sentence_vectors=stored), FakeEncodedPredictor()
    got = cache.features(predictor, "p", ["a", "b"], ["one", "two"])
    np.testing.assert_array_equal(got[:, 2:], [[ord("a"), 1], [ord("b"), 1]])
    got = cache.features(predictor, "p", ["b", "c"], ["two", "three"])
    np.testing.assert_array_equal(got[:, 2:], [[ord("b"), 1], [ord("c"), 1]])
    assert asked == [("p", ["a", "b"]), ("p", ["c"])] and predictor.calls == [2, 1]
    uncached = FeatureCache(0, sentence_vectors=stored)  # no cache: still the stored vectors, never the encoder
    assert uncached.features(predictor, "q", ["z"], ["x"]).shape == (1, 4)


def expected(texts: Sequence[str]) -> np.ndarray:
    return FakePredictor().features(texts)


def dense(x: np.ndarray | sp.csr_matrix) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)


@pytest.mark.parametrize("sparse", [False, True])
def test_rows_are_vectorized_once_and_come_back_in_the_asked_order(sparse):
    cache, predictor = FeatureCache(100), FakePredictor(sparse=sparse)
    ids, texts = ["a", "b", "c"], ["one", "two words", "three"]
    np.testing.assert_array_equal(dense(cache.features(predictor, "p", ids, texts)), expected(texts))
    assert predictor.calls == [3] and cache.misses == 3
    # A later Query: two items left (one was labelled), in another order, plus a new item.
    got = cache.features(predictor, "p", ["c", "d", "a"], ["three", "four", "one"])
    np.testing.assert_array_equal(dense(got), expected(["three", "four", "one"]))
    assert predictor.calls == [3, 1] and cache.misses == 4
    assert sp.issparse(got) == sparse


def test_an_item_whose_text_changed_is_vectorized_again():
    cache, predictor = FeatureCache(100), FakePredictor()
    cache.features(predictor, "p", ["a"], ["old text"])
    np.testing.assert_array_equal(cache.features(predictor, "p", ["a"], ["new text!"]), expected(["new text!"]))
    assert predictor.calls == [1, 1]


def test_pools_are_separate_and_a_new_vectorizer_starts_over():
    cache, predictor = FeatureCache(100), FakePredictor("v1")
    cache.features(predictor, "p", ["a"], ["x"])
    np.testing.assert_array_equal(
        cache.features(predictor, "q", ["a"], ["yy"]), expected(["yy"])
    )  # same id, other pool
    assert predictor.calls == [1, 1]
    newer = FakePredictor("v2")
    cache.features(newer, "p", ["a"], ["x"])
    assert newer.calls == [1]  # another fingerprint: nothing of v1's features is used
    cache.features(newer, "p", ["a"], ["x"])
    assert newer.calls == [1]


def test_the_row_bound_holds_and_oversized_pools_bypass_the_cache():
    cache, predictor = FeatureCache(4), FakePredictor()
    cache.features(predictor, "p", ["a", "b", "c"], ["1", "2", "3"])
    # Two new items would make 5 rows: the pool starts over with its current items only.
    got = cache.features(predictor, "p", ["c", "d", "e"], ["3", "4", "5"])
    np.testing.assert_array_equal(got, expected(["3", "4", "5"]))
    assert predictor.calls == [3, 3]
    # Another pool that does not fit beside it evicts it.
    cache.features(predictor, "q", ["x", "y"], ["7", "8"])
    assert predictor.calls == [3, 3, 2]
    cache.features(predictor, "q", ["x", "y"], ["7", "8"])
    assert predictor.calls == [3, 3, 2]
    # More items than the bound: vectorized every time, never stored.
    big = [str(i) for i in range(5)]
    np.testing.assert_array_equal(cache.features(predictor, "r", big, big), expected(big))
    np.testing.assert_array_equal(cache.features(predictor, "r", big, big), expected(big))
    assert predictor.calls[-2:] == [5, 5] and cache.misses == 8


def test_a_zero_bound_turns_the_cache_off():
    cache, predictor = FeatureCache(0), FakePredictor()
    for _ in range(2):
        cache.features(predictor, "p", ["a"], ["x"])
    assert predictor.calls == [1, 1] and cache.misses == 0


def test_mismatched_ids_and_texts_are_refused():
    with pytest.raises(ValueError):
        FeatureCache(10).features(FakePredictor(), "p", ["a", "b"], ["x"])


def test_no_items_gives_an_empty_block_without_touching_the_cache():
    cache, predictor = FeatureCache(10), FakePredictor()
    assert cache.features(predictor, "p", [], []).shape == (0, 2)
    assert cache.misses == 0
