"""Settings from the labels: stratified folds that never lack a class, and the grid point the folds prefer."""

from __future__ import annotations

import numpy as np
import pytest

from alloop.models import linear_selection as selection


def test_folds_are_stratified_disjoint_and_cover_the_sample() -> None:
    y = np.array([0] * 30 + [1] * 10 + [2] * 6)
    splits = selection.folds(y, 3, max_rows=1000, seed=0)
    assert len(splits) == 3
    held = np.concatenate([h for _, h in splits])
    assert sorted(held) == list(range(len(y)))  # every row held out exactly once
    for train, out in splits:
        assert not set(train) & set(out)
        assert set(y[out]) == {0, 1, 2} and set(y[train]) == {0, 1, 2}


def test_folds_sample_large_sets_per_class_and_give_up_on_tiny_classes() -> None:
    y = np.array([0] * 9000 + [1] * 1000)
    splits = selection.folds(y, 4, max_rows=1000, seed=1)
    sample = np.concatenate([h for _, h in splits])
    assert len(sample) == 1000 and (y[sample] == 1).sum() == 100
    assert selection.folds(np.array([0] * 10 + [1] * 2), 3, 100, 0) == []  # a class with fewer labels than folds


def test_choose_takes_the_best_held_out_accuracy_and_the_simplest_on_a_tie() -> None:
    y = np.array([0, 1] * 10)
    splits = selection.folds(y, 2, 100, 0)
    grid = selection.candidates(2.0, 300)
    assert grid[0] == selection.Choice(2.0, 0.0, False) and len(grid) == 12

    def perfect_for(wanted: selection.Choice) -> selection.Predict:
        return lambda choice, _train, held: y[held] if choice == wanted else 1 - y[held]

    chosen = selection.choose(grid, splits, y, perfect_for(grid[7]))
    assert (chosen.c, chosen.nb_scale, chosen.lsa) == (grid[7].c, grid[7].nb_scale, grid[7].lsa)
    assert chosen.cv_accuracy == 1.0
    tie = selection.choose(grid, splits, y, lambda _c, _t, held: y[held])
    assert (tie.c, tie.nb_scale, tie.lsa) == (2.0, 0.0, False)
    assert selection.choose(grid, [], y, perfect_for(grid[7])) == grid[0]  # no folds: nothing to choose with


def test_the_grid_leaves_out_blocks_the_configuration_lacks() -> None:
    assert {(c.nb_scale, c.lsa) for c in selection.candidates(0.0, 0)} == {(0.0, False)}
    with pytest.raises(ValueError):
        from alloop.models.config import ModelConfig

        ModelConfig(linear_select_folds=1)
