from __future__ import annotations

import numpy as np
import pytest

from alloop.stopping import cohen_kappa, stabilizing_predictions


def test_kappa_known_values():
    assert cohen_kappa([0, 1, 0, 1], [0, 1, 0, 1], 2) == 1.0
    assert cohen_kappa([0, 1, 0, 1], [1, 0, 1, 0], 2) == pytest.approx(-1.0)
    # observed 0.75, expected 0.5*0.5 + 0.5*0.5 = 0.5 -> kappa 0.5
    assert cohen_kappa([0, 0, 1, 1], [0, 1, 1, 1], 2) == pytest.approx((0.75 - 0.5) / 0.5)
    assert cohen_kappa([2, 2, 2], [2, 2, 2], 3) == 1.0  # constant and identical: full agreement
    assert cohen_kappa([0, 1, 2, 0, 1, 2], [0, 1, 2, 0, 1, 1], 3) == pytest.approx(
        (5 / 6 - 1 / 3 * 1 / 3 - 1 / 3 * 1 / 2 - 1 / 3 * 1 / 6) / (1 - 1 / 3)
    )


def test_kappa_refuses_mismatched_or_empty_vectors():
    with pytest.raises(ValueError, match="one length"):
        cohen_kappa([0, 1], [0], 2)
    with pytest.raises(ValueError, match="empty"):
        cohen_kappa([], [], 2)


def test_stop_needs_a_full_window_above_the_threshold():
    assert not stabilizing_predictions([]).stop and stabilizing_predictions([]).kappa is None
    assert not stabilizing_predictions([0.995, 0.999]).stop  # window of 3 not full yet
    assert stabilizing_predictions([0.5, 0.995, 0.999, 0.992]).stop
    dip = stabilizing_predictions([0.999, 0.95, 0.999])
    assert not dip.stop and dip.window_mean == pytest.approx(np.mean([0.999, 0.95, 0.999]))
    with pytest.raises(ValueError):
        stabilizing_predictions([1.0], window=0)


def test_stop_set_is_a_fixed_sample():
    from alloop.store.pool import choose_stop_set

    members = [f'["p","{i}"]' for i in range(50)]
    first = choose_stop_set(members, 10, seed=0)
    assert len(first) == 10 and len(set(first)) == 10 and set(first) <= set(members)
    assert choose_stop_set(list(reversed(members)), 10, seed=0) == first  # order of arrival does not matter
    assert choose_stop_set(members, 10, seed=1) != first
    assert choose_stop_set(members[:3], 10, seed=0) == sorted(members[:3])
    assert choose_stop_set([], 10, seed=0) == []
