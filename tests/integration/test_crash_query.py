"""kill -9 a query replica before each kind of write a labeling workload makes it do; the other replica carries on.

A calibration run of a replica (``tests.integration.fault_service`` with ``ALLOOP_TEST_SERVICE=query_service.server``,
which counts every Redis write the unchanged service makes) through the workload (upload a pool, Query, LeaseTasks,
SubmitLabels) records the points it passes: each write of the request threads, and the first writes of its shard
scorer and its lease reaper. Then one cycle per point, each in a fresh key prefix so every cycle starts from the same
state: the workload runs against the faulty replica, which is SIGKILLed just before that write; the call that fails
is sent again to a second replica, as a client with two addresses would, and the workload goes on there. After each
cycle, with the killed replica still down:

- the pool holds every uploaded item once, with its text;
- the ranking converges on the surviving replica alone: every open item ranked by the served version;
- the labeling state is consistent: every queued or leased item waits for a label, no labeled item waits, the label
  stream has one entry per label, and every label the service acknowledged is recorded.

The run's seed (cycle order) is printed; ``ALLOOP_CRASH_SEED=<seed>`` replays it.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from alloop.store.connection import free_port
from alloop.store.keys import Keys, item_member
from alloop.store.pool import PoolStore
from alloop.store.scores import ScoreIndex
from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc
from query_service.server import create_server as create_query_server
from tests.conftest import LONG_BACKENDS
from tests.integration import models
from tests.integration.processes import spawn, wait_healthy
from tests.integration.services import channel, wait_for
from tests.synthetic import reviews

BACKGROUND_TRIES = 4


class _NotReached(AssertionError):
    """A cycle's kill point never came: the faulty replica did not pass it."""


pytestmark = [pytest.mark.integration, pytest.mark.parametrize("backend", LONG_BACKENDS, indirect=True)]

HARNESS = "tests.integration.fault_service"
ITEMS = 60
K = 6
LEASE_SECONDS = 2
BACKGROUND = ("shard-scorer", "watchdog")  # threads whose first write of each kind is a point, the rest is timing


def points_of(trace: list[str]) -> list[str]:
    """Every write of the request threads; the first of each kind from the background threads."""
    points, seen = [], set()
    for line in trace:
        kind, _n, named, k = line.split()
        thread = named.split("@", 1)[1]
        if kind != "redis":
            continue
        if thread.startswith("grpc-worker"):
            points.append(f"redis:{named}:{k}")
        elif thread in BACKGROUND and named not in seen:
            seen.add(named)
            points.append(f"redis:{named}:{k}")
    return points


def test_a_replica_killed_at_any_write_leaves_state_the_other_replica_completes(
    backend, redis_client, query_settings, tmp_path
):
    seed = int(os.environ.get("ALLOOP_CRASH_SEED") or secrets.randbelow(2**31))
    print(f"crash test seed {seed} (replay: ALLOOP_CRASH_SEED={seed})")
    rng = random.Random(seed)
    model_dir = tmp_path / "models"
    rows = reviews(ITEMS, 6, "q")
    truth = {str(r["id"]): int(r["label"]) for r in rows}  # type: ignore[call-overload]
    upload = [query_pb2.PoolItem(id=str(r["id"]), text=str(r["text"])) for r in rows]
    written = models.write_and_publish(redis_client, Keys("calibration"), model_dir, 1)
    logs = tmp_path / "logs"

    def replica_env(keys: Keys, address: str, extra: dict[str, str]) -> dict[str, str]:
        return {
            **backend.env(),
            "ALLOOP_REDIS_PREFIX": keys.prefix,
            "ALLOOP_STATE_DIR": str(tmp_path / "state" / keys.prefix),
            "ALLOOP_MODEL_DIR": str(model_dir),
            "ALLOOP_QUERY_ADDRESS": address,
            "ALLOOP_SCORE_CLAIM_SECONDS": "1",
            "ALLOOP_TEST_SERVICE": "query_service.server",
            **extra,
        }

    def cycle(name: str, keys: Keys, extra: dict[str, str]) -> dict[str, int]:
        """The workload through a faulty replica, failing over to a clean one; returns the acknowledged labels."""
        if keys.prefix != "calibration":
            models.publish(redis_client, keys, written)
        address = f"127.0.0.1:{free_port()}"
        faulty = spawn(HARNESS, replica_env(keys, address, extra), logs / f"{name}.log")
        if not wait_healthy(address, faulty):  # killed at a point it passes while starting: fine, not otherwise
            assert faulty.returncode == -signal.SIGKILL, (logs / f"{name}.log").read_text()[-3000:]
        common = replace(query_settings.common, redis_prefix=keys.prefix, model_dir=model_dir)
        settings = replace(query_settings, common=common, score_claim_seconds=1)
        clean = create_query_server(settings, redis_client)
        stubs = [
            query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(address)),
            query_pb2_grpc.QueryServiceStub(channel(clean.port)),
        ]
        try:
            wait_for(clean.holder.current_or_none, timeout=30, what="the clean replica serving version 1")
            # Opened, uploads post their shards: the same writes in every cycle, whichever replica opened it.
            wait_for(lambda: ScoreIndex(redis_client, keys).is_open(1), timeout=30, what="version 1's work opened")
            acknowledged = workload(stubs, faulty, keys)
            if "ALLOOP_TEST_KILL" in extra:  # a background thread's point may come just after the last call
                deadline = time.monotonic() + 10
                while faulty.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.1)
                if faulty.poll() is None:
                    raise _NotReached(f"{name}: the kill point was not reached")
                assert faulty.returncode == -signal.SIGKILL, f"{name}: exit {faulty.returncode}"
            assert_consistent(keys, acknowledged, name)
            return acknowledged
        finally:
            if faulty.poll() is None:
                faulty.kill()
            faulty.wait()
            clean.stop(0)

    def workload(stubs: list[Any], faulty: Any, keys: Keys) -> dict[str, int]:
        def call(rpc: Callable[[Any], Any]) -> Any:
            """The call on the faulty replica; if that replica is dead or dies in it, the same call on the other."""
            if faulty.poll() is None:
                try:
                    return rpc(stubs[0])
                except grpc.RpcError as exc:
                    try:
                        code = faulty.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        code = None
                    if code != -signal.SIGKILL:
                        raise AssertionError(f"the faulty replica failed a call (exit {code}): {exc}") from exc
            return rpc(stubs[1])

        submitted = call(
            lambda s: s.SubmitPool(iter([query_pb2.SubmitPoolRequest(pool="p", items=upload)]), timeout=30)
        )
        assert submitted.pool_size == ITEMS
        index = ScoreIndex(redis_client, keys)
        wait_for(
            lambda: index.progress("p", 1).complete and index.size("p", 1) == ITEMS,
            timeout=30,
            what=f"every uploaded item ranked (posted/done {index.progress('p', 1)}, ranked {index.size('p', 1)})",
        )
        request = query_pb2.QueryRequest(pool="p", strategy=common_pb2.STRATEGY_LEAST_CONFIDENCE, k=K)
        assert len(call(lambda s: s.Query(request, timeout=30)).selected) == K
        held: dict[str, query_pb2.Task] = {}
        lease = query_pb2.LeaseTasksRequest(labeler="l", max_items=K, lease_duration=Duration(seconds=LEASE_SECONDS))
        deadline = time.monotonic() + 30
        while len(held) < K:  # leases a dead call took come back after LEASE_SECONDS
            assert time.monotonic() < deadline, f"only {len(held)} of {K} queued items could be leased"
            held.update({t.id: t for t in call(lambda s: s.LeaseTasks(lease, timeout=30)).tasks})
            time.sleep(0.1 if len(held) < K else 0)
        labels = [query_pb2.Label(pool="p", id=i, label=truth[i]) for i in sorted(held)]
        answer = call(lambda s: s.SubmitLabels(query_pb2.SubmitLabelsRequest(labels=labels), timeout=30))
        assert answer.accepted + answer.duplicate == len(labels)
        return {label.id: label.label for label in labels}

    def assert_consistent(keys: Keys, acknowledged: dict[str, int], name: str) -> None:
        pools = PoolStore(redis_client, keys)
        texts = dict(zip(truth, pools.texts("p", list(truth)), strict=True))
        assert texts == {item.id: item.text for item in upload}, f"{name}: the pool differs from the upload"
        queued = set(redis_client.hkeys(keys.queued))
        waiting = set(redis_client.zrange(keys.queue("p"), 0, -1)) | set(redis_client.zrange(keys.leases, 0, -1))
        labeled = redis_client.hgetall(keys.labels)
        assert waiting <= queued, f"{name}: queue or leases name items that wait for nothing: {waiting - queued}"
        assert not queued & set(labeled), f"{name}: labeled items still wait: {queued & set(labeled)}"
        expected = {item_member("p", i): str(label) for i, label in acknowledged.items()}
        assert labeled == expected, f"{name}: recorded labels differ from the acknowledged ones"
        assert redis_client.xlen(keys.label_stream) == len(labeled), f"{name}: one stream entry per label"

    trace = tmp_path / "calibration.trace"
    cycle("calibration", Keys("calibration"), {"ALLOOP_TEST_TRACE": str(trace)})
    points = points_of(trace.read_text().splitlines())
    assert sum("grpc-worker" in p for p in points) >= 4, points
    rng.shuffle(points)
    print(f"{len(points)} kills: {points}")
    for n, point in enumerate(points):
        # A point on the background scorer is reached only if this replica, not the clean one, records a shard:
        # a race, so such a point gets more cycles (each on fresh keys) before it counts as never reached.
        tries = BACKGROUND_TRIES if "@shard-scorer" in point else 1
        for attempt in range(tries):
            try:
                cycle(
                    f"{n}-{attempt}-{point}".replace("@", "-").replace(":", "-"),
                    Keys(f"q{n}a{attempt}x{seed % 1000}"),
                    {"ALLOOP_TEST_KILL": point},
                )
                break
            except _NotReached:
                if attempt == tries - 1:
                    raise
