"""How a pool sample's size is split over the pools: in proportion, by largest remainders, never past a pool."""

from __future__ import annotations

from alloop.store.pool import _shares


def test_shares_add_up_to_the_limit_by_largest_remainders():
    shares = _shares({"a": 500, "b": 300, "c": 199, "d": 1}, 100)
    # Exact: 50.05, 30.03, 19.9, 0.1 -> floors 50, 30, 19, 0; the one left goes to c's remainder, the largest.
    assert shares == {"a": 50, "b": 30, "c": 20, "d": 0}
    assert sum(shares.values()) == 100


def test_equal_remainders_go_to_the_first_names_and_no_share_passes_its_pool():
    shares = _shares({"x": 1, "y": 1, "z": 1}, 2)
    assert shares == {"x": 1, "y": 1, "z": 0}
    assert all(shares[p] <= size for p, size in {"x": 1, "y": 1, "z": 1}.items())


def test_pools_within_the_limit_are_taken_whole():
    assert _shares({"a": 3, "b": 4}, 7) == {"a": 3, "b": 4}
