"""A store an older release left (untagged keys, one queue for every pool) is moved into today's layout."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from alloop.errors import AlreadyLabeled, IntegrityError
from alloop.store import layout
from alloop.store.connection import EmbeddedRedis, connect, free_port
from alloop.store.keys import Keys, item_member
from alloop.store.labeling import LabelingStore, LabelSubmission, QueuedTask
from alloop.store.pool import PoolStore
from alloop.store.training import GROUP, TrainingSetStore
from alloop.store.versions import VersionRegistry
from alloop.v1 import query_pb2, query_pb2_grpc
from query_service.server import create_server as create_query_server
from tests.integration.services import channel, wait_for
from tests.integration.test_store import Clock

pytestmark = pytest.mark.integration

TASK = QueuedTask(score=0.5, model_version=1, strategy="least_confidence").to_json()
IDS = [f"i{i}" for i in range(5)]


def old_store(client, prefix: str, *, list_queue: bool = False) -> None:
    """What the release before hash tags wrote: i0 leased, i1 labeled (its label on the stream, unread), i2..i4
    queued (as a sorted set, or as the list of the release before that, which still names i0 and i1)."""
    old = f"{prefix}:"
    client.sadd(old + "pools", "p")
    client.hset(old + "pool:p:items", mapping={i: f"text of {i}" for i in IDS})
    client.set(old + "pool:p:shards", 1)
    client.rpush(old + "pool:p:shard:1", *IDS)
    members = {i: item_member("p", i) for i in IDS}
    client.hset(old + "queued", mapping={members[i]: TASK for i in ("i0", "i2", "i3", "i4")})
    if list_queue:
        client.rpush(old + "queue", *(members[i] for i in ("i3", "i0", "i1", "i2", "i4")))
    else:
        client.zadd(old + "queue:order", {members["i2"]: 3, members["i3"]: 4, members["i4"]: 5})
    client.set(old + "queue:seq", 5)
    client.zadd(old + "leases", {members["i0"]: 1_700_000_060_000})
    client.hset(old + "lease_ids", members["i0"], "lease-1")
    client.hset(old + "labels", members["i1"], "1")
    client.xgroup_create(old + "labels:stream", GROUP, id="0", mkstream=True)
    client.xadd(old + "labels:stream", {"pool": "p", "id": "i1", "label": "1", "text": "text of i1", "task": TASK})
    client.hset(old + "models:versions", "1", json.dumps({"version": 1}))
    client.set(old + "models:current", 1)
    client.set(old + "models:next", 1)
    client.zadd(old + "index:p:1:least_confidence", {"i2": -0.5})


def test_an_old_store_is_moved_and_every_store_reads_it(redis_client, keys):
    old_store(redis_client, keys.prefix)
    done = layout.migrate(redis_client, keys)
    assert done.queued_moved == 3 and done.index_dropped == 1 and done.renamed == 13
    assert all(key.startswith(f"{keys.prefix}:{{") for key in redis_client.scan_iter(f"{keys.prefix}:*"))
    assert not layout.migrate(redis_client, keys)  # once

    pools = PoolStore(redis_client, keys)
    assert pools.names() == ["p"] and pools.texts("p", IDS) == [f"text of {i}" for i in IDS]
    assert pools.shard_ids("p", [1]) == [IDS]
    clock = Clock()
    labeling = LabelingStore(redis_client, keys, clock=clock)
    assert [lease.item_id for lease in labeling.lease(5, 600, pool="p")] == ["i2", "i3", "i4"]
    clock.now = 1_700_000_060_000  # i0's lease ends: back in front of its pool's queue
    assert [lease.item_id for lease in labeling.lease(5, 60)] == ["i0"]
    with pytest.raises(AlreadyLabeled):
        labeling.submit([LabelSubmission("p", "i1", 0)])
    assert labeling.submit([LabelSubmission("p", "i0", 0)]).accepted == 1
    trainer = TrainingSetStore(redis_client, keys, consumer="t")
    assert trainer.consume(block_ms=10) == 2  # the entry the old release left, and i0
    assert {item.member for item in trainer.snapshot()[0]} == {item_member("p", "i1"), item_member("p", "i0")}
    assert VersionRegistry(redis_client, keys).current() == 1


def test_the_list_queue_of_two_releases_ago_is_moved_in_order(redis_client, keys):
    old_store(redis_client, keys.prefix, list_queue=True)
    assert layout.migrate(redis_client, keys).queued_moved == 3  # i0 is leased, i1 labeled: left out
    labeling = LabelingStore(redis_client, keys, clock=Clock())
    assert [lease.item_id for lease in labeling.lease(5, 60)] == ["i3", "i2", "i4"]


def test_a_migration_cut_short_is_finished_by_the_next_start(redis_client, keys):
    old_store(redis_client, keys.prefix)
    # A first try that died after moving the labels and the first shard list, before the pool list moved.
    redis_client.rename(f"{keys.prefix}:labels", keys.labels)
    redis_client.rename(f"{keys.prefix}:pool:p:shard:1", keys.pool_shard("p", 1))
    assert layout.migrate(redis_client, keys)
    assert all(key.startswith(f"{keys.prefix}:{{") for key in redis_client.scan_iter(f"{keys.prefix}:*"))
    assert LabelingStore(redis_client, keys).label_of("p", "i1") == 1
    assert PoolStore(redis_client, keys).shard_ids("p", [1]) == [IDS]


def test_both_layouts_at_once_refuse_the_move_and_change_nothing(redis_client, keys):
    old_store(redis_client, keys.prefix)
    redis_client.set(keys.next_version, 4)  # as if a newer service had written before the move
    with pytest.raises(IntegrityError, match="may still be running"):
        layout.migrate(redis_client, keys)
    assert redis_client.get(f"{keys.prefix}:models:next") == "1" and redis_client.get(keys.next_version) == "4"


def test_a_prefix_holding_glob_characters_drops_only_its_own_old_index(redis_client):
    keys = Keys("t*")
    old_store(redis_client, keys.prefix)
    redis_client.set("tz:index:other", "another deployment's")
    assert layout.migrate(redis_client, keys).index_dropped == 1
    assert redis_client.get("tz:index:other") == "another deployment's"


def test_a_replica_that_started_while_redis_was_down_moves_the_keys_before_it_answers(query_settings, tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    settings = replace(query_settings, common=replace(query_settings.common, redis_url=url))
    running = create_query_server(settings, connect(url, timeout=0.5))  # nothing listens yet
    try:
        with EmbeddedRedis(tmp_path / "redis", port=port, appendonly=False):
            client = connect(url)
            wait_for(client.ping, timeout=10, what="Redis up")
            old_store(client, settings.common.redis_prefix)
            client.delete(f"{settings.common.redis_prefix}:models:current")  # no artifact behind it here
            with channel(running.port) as ch:
                leased = query_pb2_grpc.QueryServiceStub(ch).LeaseTasks(
                    query_pb2.LeaseTasksRequest(labeler="ann", max_items=5, pool="p"), timeout=10
                )
            # i0's lease (2023) has long expired: back in front; labeled i1 is not offered.
            assert [task.id for task in leased.tasks] == ["i0", "i2", "i3", "i4"]
    finally:
        running.stop(0)


def test_a_prefix_with_braces_is_refused():
    with pytest.raises(ValueError, match="no braces"):
        Keys("al{loop}")
