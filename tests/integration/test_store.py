"""The Redis stores on a real redis-server, without gRPC: pools, the labeling queue and leases, label rules, the
trainer's consumer group, and the version registry. The rules tested here are the ones documented at the top of
alloop/store/labeling.py."""

from __future__ import annotations

import json
import time

import pytest

from alloop.errors import AlreadyLabeled, NotQueued
from alloop.store.keys import item_member, parse_member
from alloop.store.labeling import LabelingStore, LabelSubmission, QueuedTask
from alloop.store.pool import PoolStore
from alloop.store.training import GROUP, TrainingSetStore
from alloop.store.versions import VersionRegistry
from tests.conftest import BACKENDS, dump_keys
from tests.integration.services import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("backend", BACKENDS, indirect=True)]

TASK = QueuedTask(score=0.5, model_version=1, strategy="least_confidence")


class Clock:
    """An injectable clock in unix ms, so lease expiry is exact instead of a race with a sleep."""

    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pools(redis_client, keys) -> PoolStore:
    return PoolStore(redis_client, keys)


@pytest.fixture
def labeling(redis_client, keys, clock) -> LabelingStore:
    return LabelingStore(redis_client, keys, clock=clock)


def fill(pools: PoolStore, labeling: LabelingStore, pool: str = "p", n: int = 5, queue: int | None = None) -> list[str]:
    """A pool of n items, the first ``queue`` (default all) of them queued for labeling, oldest first."""
    ids = [f"i{i}" for i in range(n)]
    pools.add(pool, [(i, f"text of {i}") for i in ids])
    labeling.enqueue(pool, [(i, TASK) for i in ids[: n if queue is None else queue]])
    return ids


# --- pools ---------------------------------------------------------------------------------------------------


def test_pool_submit_is_idempotent_and_keeps_the_first_text(pools):
    first = pools.add("p", [("a", "first text"), ("b", "bee")])
    assert (first.accepted, first.duplicate) == (2, 0)
    again = pools.add("p", [("a", "second text"), ("c", "sea")])
    assert (again.accepted, again.duplicate) == (1, 1)
    assert pools.texts("p", ["a", "b", "c"]) == ["first text", "bee", "sea"]
    assert pools.size("p") == 3 and pools.names() == ["p"]
    # The same id may live in another pool, independently.
    assert pools.add("q", [("a", "other pool")]).accepted == 1
    assert pools.texts("p", ["a"]) == ["first text"]


def test_a_pool_upload_is_written_in_chunks_that_add_up(pools, redis_client, keys):
    pools.add("p", [("b", "bee")])
    items = [(f"i{n}", f"text {n}") for n in range(7)] + [("b", "not stored")]
    added = pools.add("p", items, chunk=3)  # three transactions: 3, 3 and 2 items
    assert (added.accepted, added.duplicate) == (7, 1)
    assert pools.size("p") == 8 and pools.texts("p", ["b", "i6"]) == ["bee", "text 6"]
    assert redis_client.smembers(keys.pools) == {"p"}


def test_a_sample_is_every_text_while_the_pools_hold_at_most_its_size(pools):
    pools.add("p", [(f"i{n}", f"text {n}") for n in range(30)], chunk=7)
    pools.add("q", [("a", "a text")])
    assert pools.sample_texts(31, seed=0) == (pools.all_texts(), False)
    assert pools.sample_members(31, seed=0) == sorted(pools.members())


def test_a_sample_of_large_pools_is_seeded_and_in_proportion_to_their_sizes(pools):
    pools.add("big", [(f"b{n}", f"big {n}") for n in range(600)], chunk=20)
    pools.add("small", [(f"s{n}", f"small {n}") for n in range(200)], chunk=20)
    texts, sampled = pools.sample_texts(100, seed=3)
    assert sampled and len(texts) == len(set(texts)) == 100 and texts == sorted(texts)
    assert sum(t.startswith("big ") for t in texts) == 75 and sum(t.startswith("small ") for t in texts) == 25
    assert pools.sample_texts(100, seed=3) == (texts, True)  # the same pools and seed: the same sample
    assert pools.sample_texts(100, seed=4)[0] != texts
    # The members sampled for a stop set are the same items.
    members = [parse_member(m) for m in pools.sample_members(100, seed=3)]
    assert sorted(str(pools.texts(pool, [item_id])[0]) for pool, item_id in members) == texts


@pytest.mark.parametrize("limit", [100, 1000])
def test_a_corpus_comes_with_the_ids_whose_texts_it_holds(pools, limit):
    pools.add("big", [(f"b{n}", f"big {n}") for n in range(600)], chunk=20)
    pools.add("small", [(f"s{n}", f"small {n}") for n in range(200)], chunk=20)
    texts, sampled, ids = pools.sample_corpus(limit, seed=3)
    assert (texts, sampled) == pools.sample_texts(limit, seed=3) and sampled == (limit < 800)
    assert sorted(str(pools.texts(pool, [i])[0]) for pool, chosen in ids.items() for i in chosen) == texts


def test_a_sample_reads_a_bounded_number_of_shards_not_the_pool(pools, monkeypatch):
    pools.add("p", [(f"i{n:04}", f"text {n}") for n in range(1600)], chunk=20)  # 80 shards of 20
    read: list[int] = []
    shard_ids = pools.shard_ids

    def spy(pool, shards):
        read.extend(shards)
        return shard_ids(pool, shards)

    monkeypatch.setattr(pools, "shard_ids", spy)
    texts, sampled = pools.sample_texts(100, seed=0)
    assert sampled and len(texts) == 100
    # 4 x 100 ids are 20 shards, read 8 at a time: 24 of the 80, each once.
    assert len(read) == len(set(read)) == 24


def test_a_growing_pool_keeps_most_of_its_sample(pools):
    pools.add("p", [(f"i{n:04}", f"text {n}") for n in range(2000)], chunk=20)
    before = set(pools.sample_texts(100, seed=0)[0])
    pools.add("p", [(f"j{n:04}", f"new text {n}") for n in range(200)], chunk=20)
    after = set(pools.sample_texts(100, seed=0)[0])
    assert len(after) == 100 and len(before & after) >= 80


def test_candidates_leave_out_labeled_and_waiting_items(pools, labeling):
    ids = fill(pools, labeling, n=4, queue=2)
    labeling.submit([LabelSubmission("p", ids[0], 1)])
    candidates, texts = pools.candidates("p")
    assert sorted(candidates) == ids[2:] and sorted(texts) == [f"text of {i}" for i in ids[2:]]


# --- queue and leases --------------------------------------------------------------------------------------------


def test_enqueue_skips_labeled_and_already_waiting_items(pools, labeling, redis_client, keys):
    ids = fill(pools, labeling, n=3)
    assert labeling.waiting_count() == 3 and labeling.queue_length() == 3
    labeling.submit([LabelSubmission("p", ids[0], 0)])
    # ids[0] is labeled, ids[1] and ids[2] are waiting: only the new one is queued, and no member twice.
    assert labeling.enqueue("p", [(ids[0], TASK), (ids[1], TASK), (ids[2], TASK), ("new", TASK)]) == {"new"}
    assert redis_client.zrange(keys.queue("p"), 0, -1) == [item_member("p", i) for i in (ids[1], ids[2], "new")]
    assert labeling.enqueue("p", []) == set()
    # A leased item is still waiting, so it is not queued again either.
    leased = labeling.lease(1, 60)
    assert labeling.enqueue("p", [(leased[0].item_id, TASK)]) == set()
    assert labeling.waiting_count() == 3 and labeling.queue_length() == 2


def test_labeling_a_queued_item_takes_it_out_of_the_queue_without_a_lease(pools, labeling, redis_client, keys):
    ids = fill(pools, labeling, n=4)
    labeling.submit([LabelSubmission("p", ids[2], 1), LabelSubmission("p", ids[0], 0)])
    assert labeling.queue_length() == 2 and labeling.waiting_count() == 2
    assert [lease.item_id for lease in labeling.lease(5, 60)] == [ids[1], ids[3]]


def test_lease_hides_items_from_a_second_lease(pools, labeling):
    ids = fill(pools, labeling, n=5)
    first = labeling.lease(3, 60)
    assert [lease.item_id for lease in first] == ids[:3]  # oldest first
    assert first[0].text == "text of i0" and first[0].task == TASK and first[0].pool == "p"
    assert len({lease.lease_id for lease in first}) == 1
    second = labeling.lease(10, 60)
    assert [lease.item_id for lease in second] == ids[3:]
    assert labeling.lease(10, 60) == []
    assert labeling.leased_count() == 5 and labeling.queue_length() == 0 and labeling.waiting_count() == 5


def test_lease_expiry_returns_the_item_and_it_is_leased_again_exactly_once(pools, labeling, clock):
    ids = fill(pools, labeling, n=3)
    first = labeling.lease(1, 0.3)
    assert [lease.item_id for lease in first] == [ids[0]]
    assert first[0].expires_unix_ms == clock.now + 300
    clock.advance(0.2)
    assert [lease.item_id for lease in labeling.lease(1, 60)] == [ids[1]]  # not expired yet: ids[0] stays hidden
    clock.advance(0.1)  # exactly at the deadline: expired
    again = labeling.lease(5, 60)
    # The expired item goes back to the front of the queue, ahead of ids[2], and is handed out once.
    assert [lease.item_id for lease in again] == [ids[0], ids[2]]
    assert again[0].lease_id != first[0].lease_id and again[0].task == TASK
    assert labeling.lease(5, 60) == []
    assert labeling.leased_count() == 3 and labeling.waiting_count() == 3


def test_lease_expiry_with_a_real_short_lease(pools, redis_client, keys):
    real = LabelingStore(redis_client, keys)  # the default wall clock
    fill(pools, real, n=1)
    started = time.monotonic()
    assert len(real.lease(1, 0.5)) == 1
    # Poll until the item comes back: never before its lease ends, however fast or slow this machine is.
    back = wait_for(lambda: real.lease(1, 60), timeout=30, interval=0.02, what="the expired lease's item back")
    assert time.monotonic() - started >= 0.5, "an item came back before its lease ended"
    assert [lease.item_id for lease in back] == ["i0"]
    assert real.lease(1, 60) == []


def test_reclaim_expired_puts_expired_leases_back_in_order(pools, labeling, clock, redis_client, keys):
    ids = fill(pools, labeling, n=4)
    labeling.lease(2, 1)  # ids[0], ids[1]
    labeling.lease(1, 10)  # ids[2]
    assert labeling.reclaim_expired() == 0
    clock.advance(1)
    assert labeling.reclaim_expired() == 2
    assert redis_client.zrange(keys.queue("p"), 0, -1) == [item_member("p", i) for i in (ids[0], ids[1], ids[3])]
    assert set(redis_client.zrange(keys.leases, 0, -1)) == {item_member("p", ids[2])}
    assert set(redis_client.hkeys(keys.lease_ids)) == {item_member("p", ids[2])}
    assert labeling.reclaim_expired() == 0


def test_reclaim_does_not_requeue_an_item_labeled_after_its_lease_expired(pools, labeling, clock, redis_client, keys):
    ids = fill(pools, labeling, n=1)
    labeling.lease(1, 1)
    clock.advance(2)
    assert labeling.submit([LabelSubmission("p", ids[0], 1)]).accepted == 1  # late but first: accepted
    assert labeling.reclaim_expired() == 0  # the label already removed the lease
    assert labeling.queue_length() == 0 and labeling.lease(1, 60) == []


# --- label rules -------------------------------------------------------------------------------------------------


def test_label_for_a_never_queued_item_is_refused(pools, labeling, redis_client, keys):
    fill(pools, labeling, n=2, queue=1)
    before = dump_keys(redis_client, keys.prefix)
    with pytest.raises(NotQueued, match="never queued") as err:
        labeling.submit([LabelSubmission("p", "i1", 0)])
    assert "nothing in this batch was recorded" in str(err.value)
    with pytest.raises(NotQueued):
        labeling.submit([LabelSubmission("nosuchpool", "i0", 0)])
    assert dump_keys(redis_client, keys.prefix) == before


def test_same_label_again_is_a_counted_duplicate_and_a_different_one_is_refused(pools, labeling, redis_client, keys):
    ids = fill(pools, labeling, n=2)
    first = labeling.submit([LabelSubmission("p", ids[0], 1)], labeler="ann")
    assert (first.accepted, first.duplicate) == (1, 0)
    assert labeling.label_of("p", ids[0]) == 1
    again = labeling.submit([LabelSubmission("p", ids[0], 1), LabelSubmission("p", ids[1], 0)], labeler="bob")
    assert (again.accepted, again.duplicate) == (1, 1)
    before = dump_keys(redis_client, keys.prefix)
    with pytest.raises(AlreadyLabeled, match="already labeled 1") as err:
        labeling.submit([LabelSubmission("p", ids[0], 0)])
    assert "first label stands" in str(err.value)
    assert dump_keys(redis_client, keys.prefix) == before
    assert labeling.label_of("p", ids[0]) == 1
    assert redis_client.xlen(keys.label_stream) == 2  # duplicates add no stream entry


def test_a_batch_with_one_bad_label_records_nothing(pools, labeling, redis_client, keys):
    ids = fill(pools, labeling, n=4, queue=3)
    labeling.submit([LabelSubmission("p", ids[0], 1)])
    labeling.lease(1, 60)
    before = dump_keys(redis_client, keys.prefix)
    # Good labels first, then a conflicting one: the good ones must not be recorded either.
    with pytest.raises(AlreadyLabeled):
        labeling.submit(
            [LabelSubmission("p", ids[1], 0), LabelSubmission("p", ids[2], 1), LabelSubmission("p", ids[0], 0)]
        )
    assert dump_keys(redis_client, keys.prefix) == before
    # Good labels, then one for an item that was never queued.
    with pytest.raises(NotQueued):
        labeling.submit([LabelSubmission("p", ids[1], 0), LabelSubmission("p", ids[3], 1)])
    assert dump_keys(redis_client, keys.prefix) == before
    assert labeling.label_of("p", ids[1]) is None and labeling.label_of("p", ids[2]) is None


def test_a_batch_naming_one_item_twice_is_still_all_or_nothing(pools, labeling, redis_client, keys):
    """The store keeps its rules when one item appears twice in a batch: the same label twice counts once plus a
    duplicate; two different labels are refused and nothing is recorded (no partial write, no Lua error)."""
    ids = fill(pools, labeling, n=2)
    before = dump_keys(redis_client, keys.prefix)
    with pytest.raises(AlreadyLabeled, match="already labeled 1"):
        labeling.submit(
            [LabelSubmission("p", ids[1], 0), LabelSubmission("p", ids[0], 1), LabelSubmission("p", ids[0], 0)]
        )
    assert dump_keys(redis_client, keys.prefix) == before
    same = labeling.submit([LabelSubmission("p", ids[0], 1), LabelSubmission("p", ids[0], 1)])
    assert (same.accepted, same.duplicate) == (1, 1)
    assert labeling.label_of("p", ids[0]) == 1
    entries = redis_client.xrange(keys.label_stream)
    assert [(f["id"], f["label"]) for _sid, f in entries] == [(ids[0], "1")]
    assert QueuedTask.from_json(entries[0][1]["task"]) == TASK


def test_a_late_label_after_lease_expiry_is_accepted_once(pools, labeling, clock, redis_client, keys):
    ids = fill(pools, labeling, n=1)
    labeling.lease(1, 0.3)
    clock.advance(1)
    # Another labeler's lease reclaims the item and takes it...
    retaken = labeling.lease(1, 60)
    assert [lease.item_id for lease in retaken] == ids
    # ...but the first labeler's late label still counts, once: the first label wins.
    late = labeling.submit([LabelSubmission("p", ids[0], 1)], labeler="slow")
    assert (late.accepted, late.duplicate) == (1, 0)
    assert labeling.leased_count() == 0 and labeling.waiting_count() == 0 and labeling.queue_length() == 0
    assert redis_client.hlen(keys.lease_ids) == 0
    # The second labeler agrees (duplicate) or disagrees (refused); either way there is one stream entry.
    assert labeling.submit([LabelSubmission("p", ids[0], 1)], labeler="fast").duplicate == 1
    with pytest.raises(AlreadyLabeled):
        labeling.submit([LabelSubmission("p", ids[0], 0)], labeler="fast")
    assert redis_client.xlen(keys.label_stream) == 1


def test_accepted_labels_appear_on_the_label_stream(pools, labeling, clock, redis_client, keys):
    ids = fill(pools, labeling, n=2)
    labeling.submit([LabelSubmission("p", ids[1], 0), LabelSubmission("p", ids[0], 1)], labeler="ann")
    entries = redis_client.xrange(keys.label_stream)
    assert [fields["id"] for _sid, fields in entries] == [ids[1], ids[0]]
    _sid, fields = entries[1]
    assert fields["pool"] == "p" and fields["label"] == "1" and fields["text"] == "text of i0"
    assert fields["labeler"] == "ann" and int(fields["labeled_at_ms"]) == clock.now
    assert QueuedTask.from_json(fields["task"]) == TASK
    assert labeling.submit([]).accepted == 0


def test_ids_with_any_characters_and_the_same_id_in_two_pools(pools, labeling):
    odd = 'a:b "quoted" ["x"] ünï'
    for pool in ("p", "q"):
        pools.add(pool, [(odd, f"text in {pool}")])
        labeling.enqueue(pool, [(odd, TASK)])
    leased = labeling.lease(5, 60)
    assert sorted((lease.pool, lease.item_id, lease.text) for lease in leased) == [
        ("p", odd, "text in p"),
        ("q", odd, "text in q"),
    ]
    assert labeling.submit([LabelSubmission("p", odd, 0), LabelSubmission("q", odd, 1)]).accepted == 2
    assert labeling.label_of("p", odd) == 0 and labeling.label_of("q", odd) == 1


def test_a_labeler_leases_from_one_pool_or_from_every_pool_in_queue_order(pools, labeling, clock, redis_client, keys):
    for pool in ("p", "q", "a}b{"):  # a brace in a name cuts its hash tag short: still one slot per pool
        pools.add(pool, [(f"{pool}{i}", f"text {i}") for i in range(3)])
    labeling.enqueue("p", [("p0", TASK), ("p1", TASK)])
    labeling.enqueue("q", [("q0", TASK)])
    labeling.enqueue("a}b{", [("a}b{0", TASK)])
    labeling.enqueue("p", [("p2", TASK)])
    labeling.enqueue("q", [("q1", TASK)])
    assert [lease.item_id for lease in labeling.lease(1, 60, pool="q")] == ["q0"]
    assert labeling.queue_length("q") == 1 and labeling.queue_length() == 5
    first = labeling.lease(3, 1)  # every pool: the items queued first, whichever pool holds them
    assert [(lease.pool, lease.item_id) for lease in first] == [("p", "p0"), ("p", "p1"), ("a}b{", "a}b{0")]
    clock.advance(2)
    # Expired leases go back to the front of their own pool's queue.
    assert [lease.item_id for lease in labeling.lease(2, 60, pool="a}b{")] == ["a}b{0"]
    assert redis_client.zrange(keys.queue("p"), 0, -1) == [item_member("p", i) for i in ("p0", "p1", "p2")]
    assert [lease.item_id for lease in labeling.lease(10, 60)] == ["p0", "p1", "p2", "q1"]
    assert labeling.lease(1, 60, pool="p") == [] and labeling.queue_length() == 0


def test_a_batch_across_pools_is_all_or_nothing(pools, labeling, redis_client, keys):
    """Pools live in different slots of a cluster; their labels still go through one script."""
    for pool in ("p", "q"):
        fill(pools, labeling, pool=pool, n=2)
    labeling.submit([LabelSubmission("q", "i1", 1)])
    before = dump_keys(redis_client, keys.prefix)
    with pytest.raises(AlreadyLabeled):
        labeling.submit([LabelSubmission("p", "i0", 0), LabelSubmission("q", "i0", 1), LabelSubmission("q", "i1", 0)])
    assert dump_keys(redis_client, keys.prefix) == before
    assert labeling.submit([LabelSubmission("p", "i0", 0), LabelSubmission("q", "i0", 1)]).accepted == 2
    assert labeling.queue_length("p") == 1 and labeling.queue_length("q") == 0
    entries = redis_client.xrange(keys.label_stream)
    assert [(f["pool"], f["id"], f["text"]) for _sid, f in entries][1:] == [
        ("p", "i0", "text of i0"),
        ("q", "i0", "text of i0"),
    ]


# --- the trainer's consumer group --------------------------------------------------------------------------------


def _label_all(pools, labeling, n: int, pool: str = "p") -> list[str]:
    ids = fill(pools, labeling, pool=pool, n=n)
    labeling.submit([LabelSubmission(pool, i, k % 2) for k, i in enumerate(ids)])
    return ids


def test_consume_writes_the_training_set_and_acks(pools, labeling, redis_client, keys):
    ids = _label_all(pools, labeling, 4)
    store = TrainingSetStore(redis_client, keys, consumer="c1")
    assert store.consume(block_ms=10) == 4
    assert store.size() == 4 and store.untrained() == 4
    assert redis_client.xpending(keys.label_stream, GROUP)["pending"] == 0
    items, untrained = store.snapshot()
    snapshot = {item.member: (item.text, item.label) for item in items}
    assert snapshot == {item_member("p", i): (f"text of {i}", k % 2) for k, i in enumerate(ids)} and untrained == 4
    assert store.consume(block_ms=10) == 0  # nothing new
    # Publishing a version marks the round's labels trained in the same MULTI.
    VersionRegistry(redis_client, keys).publish(1, {"version": 1}, also=lambda pipe: store.mark_trained(pipe, 4))
    assert store.untrained() == 0 and VersionRegistry(redis_client, keys).current() == 1


def test_a_redelivered_entry_does_not_duplicate(pools, labeling, redis_client, keys):
    _label_all(pools, labeling, 3)
    store = TrainingSetStore(redis_client, keys, consumer="c1")
    assert store.consume(block_ms=10) == 3
    before = store.snapshot()
    assert redis_client.xlen(keys.label_stream) == 0  # taken-in entries leave the stream with their ack
    # Deliver the same labels again, as a replayed AOF or a repeated XADD would: writing them again changes nothing.
    for item in before[0]:
        pool, item_id = parse_member(item.member)
        redis_client.xadd(keys.label_stream, {"pool": pool, "id": item_id, "label": str(item.label), "text": item.text})
    assert store.consume(block_ms=10) == 0
    assert store.snapshot() == before and store.untrained() == 3
    assert redis_client.xpending(keys.label_stream, GROUP)["pending"] == 0
    assert redis_client.xlen(keys.label_stream) == 0


def test_only_acknowledged_entries_leave_the_stream(pools, labeling, redis_client, keys):
    _label_all(pools, labeling, 3)
    store = TrainingSetStore(redis_client, keys, consumer="c1")
    store.ensure_group()
    # Another consumer reads every entry and dies before taking them in: they stay, pending, until claimed.
    redis_client.xreadgroup(GROUP, "dead", {keys.label_stream: ">"}, count=10)
    assert store.consume(block_ms=10, claim_idle_ms=60_000) == 0
    assert redis_client.xlen(keys.label_stream) == 3
    assert store.consume(block_ms=10, claim_idle_ms=0) == 3
    assert redis_client.xlen(keys.label_stream) == 0


def test_a_dead_consumers_entries_are_claimed_once(pools, labeling, redis_client, keys):
    _label_all(pools, labeling, 2)
    store = TrainingSetStore(redis_client, keys, consumer="alive")
    store.ensure_group()
    # A consumer reads the entries and dies before writing or acking them.
    read = redis_client.xreadgroup(GROUP, "dead", {keys.label_stream: ">"}, count=10)
    assert len(read[0][1]) == 2
    assert redis_client.xpending(keys.label_stream, GROUP)["pending"] == 2
    assert store.consume(block_ms=10, claim_idle_ms=60_000) == 0  # not idle long enough to be claimed yet
    assert store.consume(block_ms=10, claim_idle_ms=0) == 2
    # Claimed once: consuming again finds nothing (the entries left the stream with their ack).
    assert store.consume(block_ms=10, claim_idle_ms=0) == 0
    assert store.size() == 2 and store.untrained() == 2
    assert redis_client.xpending(keys.label_stream, GROUP)["pending"] == 0


def test_seed_is_idempotent_and_agrees_with_the_stream(pools, labeling, redis_client, keys):
    store = TrainingSetStore(redis_client, keys, consumer="c1")
    rows = [(f"s{i}", f"seed text {i}", i % 2) for i in range(5)]
    assert store.seed("initial", rows) == 5
    before = dump_keys(redis_client, keys.prefix)
    assert store.seed("initial", rows) == 0
    assert dump_keys(redis_client, keys.prefix) == before
    assert store.size() == 5 and store.untrained() == 5


# --- versions ----------------------------------------------------------------------------------------------------


def test_version_registry_publish_current_all(redis_client, keys):
    registry = VersionRegistry(redis_client, keys)
    assert registry.current() == 0 and registry.all() == [] and registry.get(1) is None
    assert [registry.allocate() for _ in range(3)] == [1, 2, 3]
    pubsub = registry.subscribe()
    try:
        # Versions 2 and 10: the listing is in numeric order, not string order.
        for version in (2, 10):
            registry.publish(version, {"version": version, "sha256": f"digest{version}", "train_size": version * 10})
        assert registry.current() == 10
        assert registry.get(2) == {"version": 2, "sha256": "digest2", "train_size": 20}
        assert [meta["version"] for meta in registry.all()] == [2, 10]
        announced = []
        deadline = time.monotonic() + 5
        while len(announced) < 2 and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
            if message:
                announced.append(message["data"])
        assert announced == ["2", "10"]
    finally:
        pubsub.close()
    raw = redis_client.hget(keys.versions, "10")
    assert json.loads(raw)["sha256"] == "digest10"


def test_round_lock_admits_one_holder_and_expires(redis_client, keys):
    first = TrainingSetStore(redis_client, keys, consumer="a")
    second = TrainingSetStore(redis_client, keys, consumer="b")
    assert first.acquire_round_lock("a:1", 60_000)
    assert 0 < redis_client.pttl(keys.round_lock) <= 60_000  # it expires if its holder dies
    assert not second.acquire_round_lock("b:1", 60_000)
    assert not second.renew_round_lock("b:1", 60_000)  # only the holder renews
    second.release_round_lock("b:1")  # ... or releases
    assert redis_client.get(keys.round_lock) == "a:1"
    started = time.monotonic()
    assert first.renew_round_lock("a:1", 300)  # then the holder dies: its lock frees itself
    wait_for(lambda: second.acquire_round_lock("b:1", 60_000), timeout=30, interval=0.02, what="the lock expired")
    assert time.monotonic() - started >= 0.29, "the lock was taken before it expired"
    second.release_round_lock("b:1")
    assert redis_client.get(keys.round_lock) is None
