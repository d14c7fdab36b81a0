from __future__ import annotations

import pytest

from alloop.data.records import IMDB_CLASSES, SPLIT_NAMES, Record, Splits
from alloop.data.splits import balanced_splits, scaled_imdb_splits, seed_imdb_splits


def corpus(per_class: list[int], prefix: str = "r") -> list[Record]:
    return [
        Record(f"{prefix}{label}-{i}", f"text {label} {i}", label)
        for label, count in enumerate(per_class)
        for i in range(count)
    ]


def ids(splits: Splits, name: str) -> list[str]:
    return [record.id for record in splits.split(name)]


def split(records: list[Record], classes: tuple[str, ...] = ("a", "b"), **overrides: object) -> Splits:
    sizes: dict[str, object] = {"val_per_class": 3, "test_per_class": 4, "initial_per_class": 5, "seed": 0}
    sizes.update(overrides)
    return balanced_splits(records, classes=classes, **sizes)  # type: ignore[arg-type]


def test_sizes_balance_and_disjointness() -> None:
    records = corpus([30, 40])
    splits = split(records)
    assert splits.sizes() == {"initial": 10, "val": 6, "test": 8, "pool": 70 - 24}
    counts = splits.class_counts()
    assert counts["val"] == [3, 3] and counts["test"] == [4, 4] and counts["initial"] == [5, 5]
    assert counts["pool"] == [30 - 12, 40 - 12]
    all_ids = [i for name in SPLIT_NAMES for i in ids(splits, name)]
    assert len(all_ids) == len(set(all_ids)) == len(records)  # disjoint, and nothing lost without a pool cap
    assert {r.id: r for r in records} == {r.id: r for name in SPLIT_NAMES for r in splits.split(name)}
    assert splits.classes == ("a", "b")


def test_splits_interleave_classes() -> None:
    splits = split(corpus([200, 200]), initial_per_class=50)
    labels = [r.label or 0 for r in splits.initial]
    assert set(labels[:20]) == {0, 1}
    assert labels != sorted(labels)


def test_same_seed_same_splits_other_seed_differs() -> None:
    records = corpus([50, 50])
    first, again, other = split(records, seed=7), split(records, seed=7), split(records, seed=8)
    assert first == again
    assert ids(first, "initial") != ids(other, "initial")
    assert set(ids(first, "val")) != set(ids(other, "val"))


def test_without_initial_seed_the_splits_are_unchanged() -> None:
    """Pinned from the code before ``initial_seed`` existed: prepared directories and published runs stay valid."""
    splits = split(corpus([30, 40]), pool_limit=9)
    assert ids(splits, "initial") == [
        "r1-4",
        "r1-20",
        "r0-25",
        "r1-35",
        "r0-23",
        "r0-18",
        "r0-6",
        "r0-16",
        "r1-23",
        "r1-7",
    ]
    assert ids(splits, "test")[:4] == ["r0-10", "r0-28", "r0-21", "r1-9"]
    assert ids(splits, "pool")[:5] == ["r0-8", "r1-31", "r1-5", "r0-29", "r1-19"]


def test_initial_seed_redraws_only_the_initial_set() -> None:
    records = corpus([60, 80])
    alone = split(records, seed=3)
    base = split(records, seed=3, initial_seed=0)
    other = split(records, seed=3, initial_seed=1)
    assert base == split(records, seed=3, initial_seed=0)
    for name in ("val", "test"):  # the same records in the same order: one test set for every initial draw
        assert ids(base, name) == ids(other, name) == ids(alone, name)
    candidates = set(ids(alone, "initial")) | set(ids(alone, "pool"))
    for draw in (base, other):
        assert set(ids(draw, "initial")) | set(ids(draw, "pool")) == candidates
        assert set(ids(draw, "initial")) & set(ids(alone, "pool"))  # drawn from all candidates, not reordered
        assert draw.class_counts() == alone.class_counts()
    assert set(ids(base, "initial")) != set(ids(other, "initial"))
    # Equal seeds do not make the initial draw repeat seed's own shuffle.
    assert set(ids(split(records, seed=3, initial_seed=3), "initial")) != set(ids(alone, "initial"))
    # Another split seed still moves the held-out records.
    assert set(ids(split(records, seed=4, initial_seed=0), "test")) != set(ids(base, "test"))


def test_initial_seed_with_a_pool_cap_keeps_the_candidates() -> None:
    records = corpus([40, 40])
    alone = split(records, seed=0, pool_limit=10)
    candidates = set(ids(alone, "initial")) | set(ids(alone, "pool"))
    draws = [split(records, seed=0, initial_seed=k, pool_limit=10) for k in range(4)]
    for draw in draws:
        assert set(ids(draw, "initial")) | set(ids(draw, "pool")) == candidates  # 10 initial + 10 pool
        assert draw.class_counts() == alone.class_counts()
        assert ids(draw, "test") == ids(alone, "test") and ids(draw, "val") == ids(alone, "val")
    assert len({frozenset(ids(d, "initial")) for d in draws}) == 4


def test_pool_limit_keeps_proportions_and_leaves_other_splits_alone() -> None:
    records = corpus([22, 32, 42], prefix="p")  # 10, 20 and 30 left for the pool
    classes = ("x", "y", "z")
    full = split(records, classes=classes, val_per_class=3, test_per_class=4, initial_per_class=5)
    capped = split(records, classes=classes, pool_limit=12)
    assert capped.class_counts()["pool"] == [2, 4, 6]
    assert set(ids(capped, "pool")) <= set(ids(full, "pool"))
    for name in ("initial", "val", "test"):
        assert ids(capped, name) == ids(full, name)
    uneven = split(records, classes=classes, pool_limit=7)  # 7/60 of 10, 20, 30 = 1.17, 2.33, 3.5
    assert uneven.class_counts()["pool"] == [1, 2, 4]
    assert split(records, classes=classes, pool_limit=1000).sizes()["pool"] == 60
    assert split(records, classes=classes, pool_limit=0).pool == []


def test_three_classes() -> None:
    splits = split(
        corpus([20, 25, 30]), classes=("neg", "neutral", "pos"), val_per_class=2, test_per_class=2, initial_per_class=6
    )
    assert splits.class_counts() == {
        "initial": [6, 6, 6],
        "val": [2, 2, 2],
        "test": [2, 2, 2],
        "pool": [10, 15, 20],
    }


def test_too_few_records_names_the_class() -> None:
    with pytest.raises(ValueError, match=r"class 'b' has 11 records, but 12 are needed"):
        split(corpus([30, 11]))
    with pytest.raises(ValueError, match=r"class 'c' has 0 records"):
        split(corpus([30, 30]), classes=("a", "b", "c"))


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="has no label"):
        split([*corpus([20, 20]), Record("u", "unlabelled")])
    with pytest.raises(ValueError, match=r"label 2, but there are 2 classes"):
        split(corpus([20, 20, 20]))
    with pytest.raises(ValueError, match="occurs twice"):
        split([*corpus([20, 20]), Record("r0-0", "again", 0)])
    with pytest.raises(ValueError, match="val_per_class must be a non-negative integer"):
        split(corpus([20, 20]), val_per_class=-1)
    with pytest.raises(ValueError, match="pool_limit must be a non-negative integer"):
        split(corpus([20, 20]), pool_limit=-5)
    with pytest.raises(ValueError, match="initial_seed must be a non-negative integer"):
        split(corpus([20, 20]), initial_seed=-1)
    with pytest.raises(ValueError, match="class names must be unique"):
        split(corpus([20, 20]), classes=("a", "a"))


def test_seed_imdb_splits_match_the_keras_protocol() -> None:
    train = corpus([12_500, 12_500], prefix="train")
    test = corpus([12_500, 12_500], prefix="test")
    splits = seed_imdb_splits(train, test)
    assert splits.classes == IMDB_CLASSES
    assert splits.sizes() == {"initial": 15_000, "val": 5_000, "test": 5_000, "pool": 25_000}
    assert splits.class_counts()["pool"] == [12_500, 12_500]
    assert any(r.id.startswith("test") for r in splits.initial)  # IMDB's own train/test split is pooled


def test_scaled_imdb_splits() -> None:
    train, test = corpus([300, 300], prefix="train"), corpus([300, 300], prefix="test")
    splits = scaled_imdb_splits(
        train, test, val_per_class=50, test_per_class=50, initial_per_class=20, pool_limit=100, seed=1
    )
    assert splits.sizes() == {"initial": 40, "val": 100, "test": 100, "pool": 100}
    assert splits.class_counts()["pool"] == [50, 50]
