"""kill -9 the trainer at every point a round passes, with labels arriving, and show no label is lost or trained twice.

A calibration run of the trainer (``tests.integration.fault_service``, which counts every Redis write and every
fsync the unchanged service makes) records the points a round passes: start-up, the first polls of the label
consumer, reading and writing labels, taking the round lock, each renewal kind, allocating a version, every write of
the version directory, publishing, and what comes after. Then one cycle per point: new labels are submitted, a real
trainer starts, and it is SIGKILLed just before that write (the write never happens), while a second thread keeps
submitting labels through the labeling store (the query service's path). A few more cycles are killed from outside at
seeded random moments. After every kill the published pointer must name a complete artifact whose sha256 verifies
and every version directory must be complete, and every accepted label must be in the training set or still owed to
the trainer by the stream (undelivered, or delivered and pending): one the trainer can no longer find is lost at that
kill, not only at the end. At the end a clean trainer catches up, and the training set must equal the initial set
plus every accepted label, each exactly once.

The run's seed (cycle order, kill moments, label arrivals) is printed; ``ALLOOP_CRASH_SEED=<seed>`` replays it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import signal
import threading
import time
from pathlib import Path

import pytest

from alloop import artifacts
from alloop.store.connection import free_port
from alloop.store.keys import item_member
from alloop.store.labeling import LabelingStore, LabelSubmission, QueuedTask
from alloop.store.pool import PoolStore
from alloop.store.training import GROUP
from alloop.store.versions import VersionRegistry
from alloop.v1 import trainer_pb2, trainer_pb2_grpc
from tests import synthetic
from tests.conftest import LONG_BACKENDS
from tests.integration.processes import spawn, wait_healthy
from tests.integration.services import channel, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("backend", LONG_BACKENDS, indirect=True)]

HARNESS = "tests.integration.fault_service"
LABELS_PER_CYCLE = 12  # above the retrain threshold: every cycle's trainer starts a round
POLLS = {"XGROUP", "XAUTOCLAIM", "XREADGROUP"}  # the label consumer's idle loop: the first of each is a point
OUTSIDE_KILLS = 2


def check_store(client, keys, model_dir: Path) -> None:
    registry = VersionRegistry(client, keys)
    current = registry.current()
    if current:
        meta = registry.get(current)
        assert meta is not None, f"pointer names version {current} without metadata"
        artifacts.verify_version(model_dir, current, meta["sha256"])
    for meta in registry.all():
        artifacts.verify_version(model_dir, meta["version"], meta["sha256"])
    for directory in model_dir.glob("v*"):
        manifest = (directory / artifacts.MANIFEST_FILE).read_text()
        artifacts.verify_version(model_dir, int(directory.name[1:]), hashlib.sha256(manifest.encode()).hexdigest())


def stream_id(sid: str) -> tuple[int, int]:
    ms, _, seq = sid.partition("-")
    return int(ms), int(seq or 0)


def unaccounted(client, keys, submitted: dict[str, int]) -> list[str]:
    """Accepted labels that are neither in the training set nor still owed to the trainer by the stream (not yet
    delivered to the group, or delivered and pending): a label the trainer can no longer find is lost for good."""
    in_set = set(client.hkeys(keys.training_set))
    group = {g["name"]: g for g in client.xinfo_groups(keys.label_stream)}.get(GROUP)
    delivered = stream_id(group["last-delivered-id"]) if group else (0, 0)
    pending = (
        {p["message_id"] for p in client.xpending_range(keys.label_stream, GROUP, "-", "+", 100_000)}
        if group
        else set()
    )
    owed = {
        item_member(fields["pool"], fields["id"])
        for sid, fields in client.xrange(keys.label_stream)
        if sid in pending or stream_id(sid) > delivered
    }
    return sorted(m for m in (item_member("p", i) for i in submitted) if m not in in_set and m not in owed)


def round_points(trace: list[str], rng: random.Random) -> tuple[list[str], str]:
    """Kill points (``ALLOOP_TEST_KILL`` values) from a calibration trace, and the one right after publishing."""
    rows = [line.split() for line in trace]  # kind, n, NAME@THREAD, k
    last_round = max(i for i, (kind, _, named, _) in enumerate(rows) if kind == "redis" and named.endswith("@round"))
    points, after_publish = [], ""
    published = False
    for kind, _n, named, k in rows[: last_round + 1]:
        if kind != "redis":
            continue
        command = named.split("@")[0]
        if int(k) > 1 and (command in POLLS or named.endswith("@round-lock")):
            continue  # the consumer's idle polls and the lock's renewals: the first of each kind is enough
        points.append(f"redis:{named}:{k}")
        if published and not after_publish:
            after_publish = points[-1]
        published = published or "PUBLISH" in command
    fsyncs = sum(1 for row in rows if row[0] == "fsync")
    assert fsyncs >= 3 and published, f"calibration saw no version written and published: {trace}"
    # The first fsync: files written, none synced, the temporary directory in place (its cleanup must show);
    # the last: the version renamed into place but not yet published; one in between.
    points += [f"fsync:{n}" for n in sorted({1, rng.randint(2, fsyncs - 1), fsyncs})]
    return points, after_publish


class Labeler(threading.Thread):
    """Submits a few labels at seeded random intervals until stopped, as labelers do while a round runs."""

    def __init__(self, labeling: LabelingStore, rows: list[dict], rng: random.Random, submitted: dict) -> None:
        super().__init__(daemon=True)
        self.labeling, self.rows, self.rng, self.submitted = labeling, rows, rng, submitted
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.rng.uniform(0.5, 1.5)) and self.rows:
            batch, self.rows[:3] = self.rows[:3], []
            submit(self.labeling, batch, self.submitted)


def submit(labeling: LabelingStore, batch: list[dict], submitted: dict) -> None:
    labeling.enqueue("p", [(r["id"], QueuedTask(0.5, 0, "test")) for r in batch])
    result = labeling.submit([LabelSubmission("p", r["id"], r["label"]) for r in batch], "oracle")
    assert result.accepted == len(batch)
    submitted.update({r["id"]: r["label"] for r in batch})


def test_trainer_survives_kill_9_at_every_point(backend, keys, corpus, tmp_path):
    seed = int(os.environ.get("ALLOOP_CRASH_SEED") or secrets.randbelow(2**31))
    print(f"crash test seed {seed} (replay: ALLOOP_CRASH_SEED={seed})")
    rng = random.Random(seed)
    client = backend.connect()
    pools, labeling = PoolStore(client, keys), LabelingStore(client, keys)
    pool_rows = synthetic.reviews(1500, 4, "pool")
    pools.add("p", [(r["id"], r["text"]) for r in pool_rows])
    initial = {f'["initial","{r["id"]}"]': r for r in map(json.loads, corpus["initial"].read_text().splitlines())}
    model_dir = tmp_path / "state" / "models"
    address = f"127.0.0.1:{free_port()}"
    env = {
        **backend.env(),
        "ALLOOP_REDIS_PREFIX": keys.prefix,
        "ALLOOP_STATE_DIR": str(tmp_path / "state"),
        "ALLOOP_TRAINER_ADDRESS": address,
        "ALLOOP_RETRAIN_THRESHOLD": "10",
        "ALLOOP_ROUND_LOCK_SECONDS": "2",  # a killed round's lock frees itself quickly
        "ALLOOP_INITIAL_DATA": str(corpus["initial"]),
        "ALLOOP_VAL_DATA": str(corpus["val"]),
        "ALLOOP_TEST_DATA": str(corpus["test"]),
    }
    submitted: dict[str, int] = {}
    logs = tmp_path / "logs"

    def cycle(name: str, kill: str, outside: float | None = None) -> int:
        """One trainer, killed at ``kill`` (or from outside after ``outside`` seconds); returns the version after."""
        submit(labeling, [pool_rows.pop() for _ in range(LABELS_PER_CYCLE)], submitted)
        labeler = Labeler(labeling, pool_rows, random.Random(rng.random()), submitted)
        process = spawn(HARNESS, {**env, "ALLOOP_TEST_KILL": kill}, logs / f"{name}.log")
        labeler.start()
        try:
            if outside is not None:
                time.sleep(outside)
                process.send_signal(signal.SIGKILL)
            code = process.wait(timeout=90)
        finally:
            labeler.halt.set()
            labeler.join()
            if process.poll() is None:
                process.kill()
        assert code == -signal.SIGKILL, f"{name} ({kill or 'outside'}): exit {code}; seed {seed}; see {logs}"
        check_store(client, keys, model_dir)
        lost = unaccounted(client, keys, submitted)
        assert not lost, f"killed {kill or 'from outside'}: {len(lost)} labels lost, e.g. {lost[:3]}; seed {seed}"
        return VersionRegistry(client, keys).current()

    # Calibration: a first trainer seeds the initial set and publishes (a first start writes what later ones
    # find done); a second one, traced, runs one round to its end. Both are then killed. Its trace names the points.
    trace = tmp_path / "calibration.trace"
    for name, extra in (("first", {}), ("calibration", {"ALLOOP_TEST_TRACE": str(trace)})):
        before = VersionRegistry(client, keys).current()
        submit(labeling, [pool_rows.pop() for _ in range(LABELS_PER_CYCLE)], submitted)
        process = spawn(HARNESS, {**env, **extra}, logs / f"{name}.log")
        try:
            wait_for(lambda b=before: VersionRegistry(client, keys).current() > b, timeout=120, what=f"{name} version")
            wait_for(lambda: client.get(keys.round_lock) is None, timeout=30, what="the round lock released")
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
    points, after_publish = round_points(trace.read_text().splitlines(), rng)
    plan = [(point, None) for point in points] + [("", rng.uniform(1.0, 9.0)) for _ in range(OUTSIDE_KILLS)]
    rng.shuffle(plan)
    print(f"{len(plan)} kills: {[p or f'outside after {s:.1f} s' for p, s in plan]}")

    left_partial = []
    version = VersionRegistry(client, keys).current()
    for n, (point, outside) in enumerate(plan):
        before = version
        version = cycle(f"{n}-{point or 'outside'}".replace("@", "-").replace(":", "-"), point, outside)
        assert version >= before, f"the published version went back from {before} to {version}; seed {seed}"
        if point == after_publish:
            assert version > before, f"killed right after publishing, version {before} is still current"
        if point == "fsync:1":
            left_partial = list(model_dir.glob(".tmp-*"))
    assert left_partial, "the kill at the first fsync left no temporary version directory: it missed the write"

    # A clean trainer removes what the kills left, catches up, and one more round trains on everything.
    process = spawn("trainer_service.server", env, logs / "final.log")
    try:
        assert wait_healthy(address, process)
        assert not list(model_dir.glob(".tmp-*")), "partial version directories survived a restart"
        trainer = trainer_pb2_grpc.TrainerServiceStub(channel(int(address.rsplit(":", 1)[1])))
        expected = len(initial) + len(submitted)
        wait_for(
            lambda: trainer.GetStatus(trainer_pb2.GetStatusRequest()).status.labels_seen == expected,
            timeout=120,
            what=f"every label in the training set (seed {seed})",
        )
        wait_for(lambda: client.xpending(keys.label_stream, GROUP)["pending"] == 0, what="every label acked")
        wait_for(
            lambda: (
                trainer.GetStatus(trainer_pb2.GetStatusRequest()).status.state == trainer_pb2.TrainerStatus.STATE_IDLE
            ),
            timeout=120,
            what="trainer idle",
        )
        final = trainer.Train(trainer_pb2.TrainRequest(wait=True), timeout=180).version
        assert final.train_size == expected
        assert trainer.GetStatus(trainer_pb2.GetStatusRequest()).status.pending == 0
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)

    training_set = {m: json.loads(v) for m, v in client.hgetall(keys.training_set).items()}
    want = {m: r["label"] for m, r in initial.items()}
    want.update({item_member("p", i): label for i, label in submitted.items()})
    got = {m: v["label"] for m, v in training_set.items()}
    assert got == want, f"lost: {sorted(want.keys() - got.keys())[:5]}; seed {seed}"  # none lost, none twice
    assert client.xlen(keys.label_stream) == 0  # every entry taken in was deleted with its ack: the stream is drained
    check_store(client, keys, model_dir)
