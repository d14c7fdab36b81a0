"""The key layout: every script's keys in one Redis Cluster slot, whatever the pool is called."""

from __future__ import annotations

import inspect

import pytest
from redis.crc import key_slot

from alloop.store.keys import Keys

POOLS = ["reviews", "a:b", "}x", "{y}", "a}b{c", "ünï 'q'", "x" * 200]


def slot(key: str) -> int:
    return key_slot(key.encode())


def control_keys(keys: Keys) -> list[str]:
    names = [n for n, v in inspect.getmembers(Keys) if isinstance(v, property) and n not in ("queue_prefix",)]
    return [getattr(keys, n) for n in names] + [keys.queue(p) for p in POOLS] + [keys.score_work(7)]


def pool_keys(keys: Keys, pool: str) -> list[str]:
    parts = ("least_confidence", "margin", "entropy", "probs", "done")
    return [
        keys.pool_items(pool),
        keys.pool_shards(pool),
        keys.pool_shard(pool, 1),
        keys.pool_shard(pool, 1000),
        keys.ranked_version(pool),
        keys.ranking_versions(pool),
        *(keys.ranking(pool, 3, part) for part in parts),
    ]


def test_every_control_key_is_in_one_slot() -> None:
    keys = Keys("alloop")
    assert {slot(k) for k in control_keys(keys) + [keys.posted(p, 3) for p in POOLS]} == {slot("{alloop}")}


@pytest.mark.parametrize("pool", POOLS)
def test_every_key_of_a_pool_is_in_the_pools_slot(pool: str) -> None:
    assert len({slot(k) for k in pool_keys(Keys("alloop"), pool)}) == 1


def test_pools_spread_over_slots_and_no_two_keys_collide() -> None:
    keys = Keys("alloop")
    assert len({slot(keys.pool_items(f"pool-{n}")) for n in range(100)}) > 90
    every = control_keys(keys) + [k for p in POOLS for k in pool_keys(keys, p)]
    assert len(every) == len(set(every))
    assert all(k.startswith("alloop:") for k in every)  # what an ACL of `~alloop:*` admits


def test_a_prefix_must_be_free_of_braces() -> None:
    for bad in ("", "a{", "b}", "{c}"):
        with pytest.raises(ValueError, match="no braces"):
            Keys(bad)
