"""Carving a labelled corpus into initial / val / test / pool, class-balanced and reproducible.

This is the protocol of the Keras example "Review Classification using Active Learning" (IMDB train+test pooled,
then per class 2,500 validation, 2,500 test and 7,500 initial reviews, the remaining 25,000 forming the pool),
generalised to any number of classes and with a seeded shuffle in place of the data set's fixed order.

Without ``initial_seed``, all random draws come from one ``numpy.random.default_rng(seed)`` in a fixed order: the
per-class shuffles first, then the split shuffles, the pool's last. So ``initial``, ``val`` and ``test`` do not
depend on ``pool_limit``, and a demo with a capped pool is evaluated on exactly the records the full run uses.

``initial_seed`` separates two questions a seed answers: which records are held out (``val``, ``test`` and the
candidates ``initial + pool``, all fixed by ``seed`` and ``pool_limit``) and which candidates start labelled (drawn
by a second generator seeded from both seeds). Repeating an experiment over initial draws must not also change the
test set, or a spread between seeds measures the test set as much as the method. The price: with ``initial_seed``
the initial set is drawn from the capped candidates, so it does depend on ``pool_limit`` (``val`` and ``test``
still do not).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alloop.data.records import IMDB_CLASSES, Record, Splits

SEED_VAL_PER_CLASS = 2_500
SEED_TEST_PER_CLASS = 2_500
SEED_INITIAL_PER_CLASS = 7_500
_INITIAL_STREAM = 1  # keeps the initial draw's generator apart from default_rng(seed) even when the seeds are equal


def balanced_splits(
    records: Sequence[Record],
    *,
    val_per_class: int,
    test_per_class: int,
    initial_per_class: int,
    pool_limit: int | None = None,
    seed: int = 0,
    initial_seed: int | None = None,
    classes: Sequence[str],
) -> Splits:
    """Take ``val``, ``test`` and ``initial`` records from every class; everything left is the pool.

    ``pool_limit`` caps the pool's total size, shared between classes in proportion to what each has left
    (largest remainders, so the counts add up exactly). Each split is shuffled so that classes interleave and a
    consumer reading a prefix still sees a mix. ``initial_seed`` (None: ``seed`` draws everything, as before it
    existed) draws the initial records from candidates that ``seed`` alone fixes; see the module's docstring.
    """
    class_names = _check_classes(classes)
    for name, value in (
        ("val_per_class", val_per_class),
        ("test_per_class", test_per_class),
        ("initial_per_class", initial_per_class),
    ):
        _check_count(name, value)
    if pool_limit is not None:
        _check_count("pool_limit", pool_limit)
    if initial_seed is not None:
        _check_count("initial_seed", initial_seed)

    by_class = _group_by_class(records, class_names)
    needed = val_per_class + test_per_class + initial_per_class
    for index, members in enumerate(by_class):
        if len(members) < needed:
            raise ValueError(
                f"class {class_names[index]!r} has {len(members)} records, but {needed} are needed "
                f"({val_per_class} val + {test_per_class} test + {initial_per_class} initial per class); "
                "lower the per-class sizes or add data"
            )

    quotas = _pool_quotas([len(members) - needed for members in by_class], pool_limit)
    rng = np.random.default_rng(seed)
    shuffled = [[members[i] for i in rng.permutation(len(members))] for members in by_class]
    if initial_seed is not None:
        shuffled = _redraw_initial(
            shuffled,
            val_per_class + test_per_class,
            initial_per_class,
            quotas,
            np.random.default_rng([seed, initial_seed, _INITIAL_STREAM]),
        )
    cuts = np.cumsum([0, val_per_class, test_per_class, initial_per_class])
    val, test, initial = (
        [record for members in shuffled for record in members[cuts[k] : cuts[k + 1]]] for k in range(3)
    )
    pool = [record for members, quota in zip(shuffled, quotas, strict=True) for record in members[needed:][:quota]]

    return Splits(
        initial=_shuffle(initial, rng),
        val=_shuffle(val, rng),
        test=_shuffle(test, rng),
        pool=_shuffle(pool, rng),
        classes=class_names,
    )


def _redraw_initial(
    shuffled: list[list[Record]], held_out: int, initial: int, quotas: list[int], rng: np.random.Generator
) -> list[list[Record]]:
    """Per class, reorder the candidates (what follows the ``held_out`` val and test records) with ``rng``.

    The candidates are the records ``seed`` alone would have given to ``initial`` and the pool (``quotas`` per
    class), so the reorder changes which of them start labelled and nothing else; records past the cap stay put.
    """
    redrawn = []
    for members, quota in zip(shuffled, quotas, strict=True):
        end = held_out + initial + quota
        candidates = members[held_out:end]
        reordered = [candidates[i] for i in rng.permutation(len(candidates))]
        redrawn.append([*members[:held_out], *reordered, *members[end:]])
    return redrawn


def seed_imdb_splits(train: Sequence[Record], test: Sequence[Record], seed: int = 0) -> Splits:
    """The seed project's configuration: 50,000 reviews give 15,000 initial, 5,000 val, 5,000 test, 25,000 pool."""
    return scaled_imdb_splits(
        train,
        test,
        val_per_class=SEED_VAL_PER_CLASS,
        test_per_class=SEED_TEST_PER_CLASS,
        initial_per_class=SEED_INITIAL_PER_CLASS,
        pool_limit=None,
        seed=seed,
    )


def scaled_imdb_splits(
    train: Sequence[Record],
    test: Sequence[Record],
    *,
    val_per_class: int,
    test_per_class: int,
    initial_per_class: int,
    pool_limit: int | None,
    seed: int = 0,
    initial_seed: int | None = None,
) -> Splits:
    """The same protocol with smaller numbers, so a demo can run in minutes on a CPU.

    IMDB's own train/test split is deliberately ignored, as in the Keras example: both halves are pooled first.
    """
    return balanced_splits(
        [*train, *test],
        val_per_class=val_per_class,
        test_per_class=test_per_class,
        initial_per_class=initial_per_class,
        pool_limit=pool_limit,
        seed=seed,
        initial_seed=initial_seed,
        classes=IMDB_CLASSES,
    )


def _check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    if isinstance(classes, str):
        raise ValueError(f"classes must be a sequence of names, not the string {classes!r}")
    names = tuple(str(name) for name in classes)
    if not names:
        raise ValueError("classes is empty; give at least one class name")
    if len(set(names)) != len(names):
        raise ValueError(f"class names must be unique, got {list(names)}")
    return names


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _group_by_class(records: Sequence[Record], classes: tuple[str, ...]) -> list[list[Record]]:
    groups: list[list[Record]] = [[] for _ in classes]
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            raise ValueError(f"record id {record.id!r} occurs twice; ids must be unique to keep splits disjoint")
        seen.add(record.id)
        if record.label is None:
            raise ValueError(f"record {record.id!r} has no label; every record needs one to be split by class")
        if isinstance(record.label, bool) or not 0 <= record.label < len(classes):
            raise ValueError(
                f"record {record.id!r} has label {record.label!r}, but there are {len(classes)} classes "
                f"({', '.join(classes)})"
            )
        groups[record.label].append(record)
    return groups


def _pool_quotas(available: list[int], limit: int | None) -> list[int]:
    """Split ``limit`` over classes in proportion to ``available`` (Hamilton's largest-remainder method)."""
    total = sum(available)
    if limit is None or limit >= total:
        return list(available)
    quotas = [limit * count // total for count in available]
    remainders = [limit * count % total for count in available]  # integers, so ties are exact
    by_remainder = sorted(range(len(available)), key=lambda i: (-remainders[i], i))
    for i in by_remainder[: limit - sum(quotas)]:
        quotas[i] += 1
    return quotas


def _shuffle(records: list[Record], rng: np.random.Generator) -> list[Record]:
    return [records[i] for i in rng.permutation(len(records))]
