"""kill -9 of Redis as docker-compose.yml runs it, while labels arrive: no accepted label is lost.

The compose stack runs as local processes (tests/integration/local_compose.py), Redis with the compose file's own
command line, so what is tested is the deployed persistence setting (AOF, ``appendfsync everysec``). A labeler
thread leases and labels through the query replica the whole time, retrying a batch that failed with UNAVAILABLE
as a real labeling system would; Redis is SIGKILLed at seeded moments (seed printed; ``ALLOOP_CRASH_SEED``
replays it) and restarted by the same command. Redis appends every write to its AOF file before it answers the
write, so a killed process loses nothing that was acknowledged; what ``everysec`` can still lose is the last second
of writes if the whole machine goes down (the OS had not flushed them to disk), which no process kill can show.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from urllib.parse import quote

import grpc
import pytest

from alloop.rpc.security import open_secure_channel
from alloop.store.connection import connect
from alloop.store.keys import Keys, item_member
from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc
from tests.integration.local_compose import LocalCompose, write_data
from tests.integration.services import wait_for

pytestmark = pytest.mark.integration

KILLS = 3
QUEUED = 120


class Labeler(threading.Thread):
    """Leases a few items at a time and labels them; a batch refused with UNAVAILABLE is sent again until it is
    answered. ``acknowledged`` holds every label the service accepted (or counted as a duplicate of itself)."""

    def __init__(self, stub: query_pb2_grpc.QueryServiceStub, truth: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.stub, self.truth = stub, truth
        self.acknowledged: dict[str, int] = {}
        self.errors: list[str] = []
        self.retries = 0
        self.stopping = threading.Event()

    def call(self, method, request):  # type: ignore[no-untyped-def]
        while not self.stopping.is_set():
            try:
                return method(request, timeout=10)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
                    self.errors.append(f"{exc.code()}: {exc.details()}")  # type: ignore[attr-defined]
                    self.stopping.set()
                    return None
                self.retries += 1
                time.sleep(0.1)
        return None

    def run(self) -> None:
        while not self.stopping.is_set():
            leased = self.call(self.stub.LeaseTasks, query_pb2.LeaseTasksRequest(max_items=3))
            if leased is None:
                return
            if not leased.tasks:
                time.sleep(0.1)
                continue
            labels = [query_pb2.Label(pool=t.pool, id=t.id, label=self.truth[t.id]) for t in leased.tasks]
            answer = self.call(self.stub.SubmitLabels, query_pb2.SubmitLabelsRequest(labels=labels))
            if answer is None:
                return
            if answer.accepted + answer.duplicate != len(labels):
                self.errors.append(f"{len(labels)} labels sent, {answer.accepted}+{answer.duplicate} answered")
            self.acknowledged.update({label.id: label.label for label in labels})
            time.sleep(0.05)


def test_no_accepted_label_is_lost_when_redis_is_killed(tmp_path):
    seed = int(os.environ.get("ALLOOP_CRASH_SEED") or random.randrange(1 << 30))
    print(f"seed {seed}")
    rng = random.Random(seed)
    stack = LocalCompose(tmp_path, replicas={"query": 1})
    try:
        data = write_data(stack.tmp / "bind" / "data")
        stack.up()
        tokens = stack.tokens()
        (redis_instance,) = stack.instances["redis"]
        (replica,) = stack.instances["query"]
        address = replica.env["ALLOOP_QUERY_ADDRESS"]
        stubs = {}
        for role in ("client", "labeler"):
            channel = open_secure_channel(address, env={"ALLOOP_TOKEN": tokens[role]})
            stack.channels.append(channel)
            stubs[role] = query_pb2_grpc.QueryServiceStub(channel)
        wait_for(lambda: _served(stubs["labeler"]) >= 1, timeout=120, what="the trainer's first version served")
        items = [json.loads(line) for line in data["pool"].read_text().splitlines()]
        truth = {r["id"]: int(r["label"]) for r in items}
        stubs["client"].SubmitPool(
            iter(
                [
                    query_pb2.SubmitPoolRequest(
                        pool="reviews", items=[query_pb2.PoolItem(id=r["id"], text=r["text"]) for r in items]
                    )
                ]
            ),
            timeout=60,
        )
        query = query_pb2.QueryRequest(pool="reviews", strategy=common_pb2.STRATEGY_ENTROPY, k=QUEUED)
        assert len(stubs["client"].Query(query, timeout=60).selected) == QUEUED

        labeler = Labeler(stubs["labeler"], truth)
        labeler.start()
        for kill in range(KILLS):
            wait_for(
                lambda kill=kill: len(labeler.acknowledged) >= 10 * (kill + 1) or labeler.errors,
                timeout=60,
                what="labels accepted between kills",
            )
            time.sleep(rng.uniform(0.0, 0.5))
            assert redis_instance.process is not None
            os.kill(redis_instance.process.pid, signal.SIGKILL)  # `sh -c` exec-ed redis-server: this is Redis
            redis_instance.process.wait()
            time.sleep(rng.uniform(0.2, 1.5))
            stack.start(redis_instance)
            stack.wait_healthy([redis_instance])
        wait_for(
            lambda: len(labeler.acknowledged) >= 10 * (KILLS + 1) or labeler.errors,
            timeout=60,
            what="labels accepted after the last restart",
        )
        labeler.stopping.set()
        labeler.join(timeout=30)
        assert not labeler.errors, labeler.errors
        assert labeler.retries > 0, "no call ever met the outage: the kills did not land while labels arrived"

        password = stack.secret_files["redis_password"].read_text().strip()
        port = redis_instance.ports[6379]
        client = connect(f"redis://alloop:{quote(password, safe='')}@127.0.0.1:{port}/0")
        keys = Keys(replica.env["ALLOOP_REDIS_PREFIX"])
        members = {item_member("reviews", item_id): label for item_id, label in labeler.acknowledged.items()}
        stored = dict(zip(members, client.hmget(keys.labels, list(members)), strict=True))
        lost = {m: v for m, v in stored.items() if v is None or int(v) != members[m]}
        assert not lost, f"{len(lost)} of {len(members)} accepted labels lost after {KILLS} kills: {sorted(lost)[:5]}"

        def trained() -> int:
            raw = client.hmget(keys.training_set, list(members))
            return sum(1 for m, rec in zip(members, raw, strict=True) if rec and json.loads(rec)["label"] == members[m])

        wait_for(lambda: trained() == len(members), timeout=60, what="every accepted label in the training set")
        wait_for(lambda: client.xlen(keys.label_stream) == 0, timeout=30, what="the label stream drained")
        labeled = client.hlen(keys.labels)
        waiting = client.hlen(keys.queued)
        assert labeled == len(members) and labeled + waiting == QUEUED, (labeled, waiting)
        stack.wait_healthy([i for group in stack.instances.values() for i in group], timeout=60)
        client.close()
    finally:
        stack.down()


def _served(stub: query_pb2_grpc.QueryServiceStub) -> int:
    try:
        return int(stub.GetModel(query_pb2.GetModelRequest(), timeout=5).version.version)
    except grpc.RpcError:
        return 0
