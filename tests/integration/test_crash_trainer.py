"""kill -9 the trainer at random points, many times, and show that no label is lost or trained twice.

Each cycle submits new labels through the labeling store (the query service's path), starts a real trainer process,
and kills it with SIGKILL: half the cycles at a named point inside the round (while consuming, mid-epoch, after the
artifact is written but before it is published, right after publishing), half at a random moment from outside.
After every kill the published pointer must name a complete artifact whose sha256 verifies, and every version
directory must be complete. At the end a clean trainer catches up, and the training set must equal the initial set
plus every accepted label, each exactly once.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import time
from pathlib import Path

import pytest

from alloop import artifacts
from alloop.store.connection import connect, free_port
from alloop.store.labeling import LabelingStore, LabelSubmission, QueuedTask
from alloop.store.pool import PoolStore
from alloop.store.training import GROUP
from alloop.store.versions import VersionRegistry
from alloop.v1 import trainer_pb2, trainer_pb2_grpc
from tests.integration.processes import spawn, wait_healthy
from tests.integration.services import channel, wait_for

pytestmark = pytest.mark.integration

FAULT_POINTS = ["consume", "epoch", "written", "published"]
KILLS = 12
LABELS_PER_CYCLE = 12


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


def test_trainer_survives_repeated_kill_9(redis_server, keys, corpus, tmp_path):
    client = connect(redis_server.url)
    rng = random.Random(7)
    pools, labeling = PoolStore(client, keys), LabelingStore(client, keys)
    pool_rows = [json.loads(line) for line in corpus["pool"].read_text().splitlines()]
    pools.add("p", [(r["id"], r["text"]) for r in pool_rows])
    initial = {f'["initial","{r["id"]}"]': r for r in map(json.loads, corpus["initial"].read_text().splitlines())}
    model_dir = tmp_path / "state" / "models"
    address = f"127.0.0.1:{free_port()}"
    env = {
        "REDIS_URL": redis_server.url,
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
    plan = [FAULT_POINTS[(i // 2) % 4] if i % 2 == 0 else None for i in range(KILLS)]
    outcomes = []
    for cycle, point in enumerate(plan):
        batch = pool_rows[cycle * LABELS_PER_CYCLE : (cycle + 1) * LABELS_PER_CYCLE]
        labeling.enqueue("p", [(r["id"], QueuedTask(0.5, 0, "test")) for r in batch])
        result = labeling.submit([LabelSubmission("p", r["id"], r["label"]) for r in batch], "oracle")
        assert result.accepted == len(batch)
        submitted.update({r["id"]: r["label"] for r in batch})

        process = spawn(
            "trainer_service.server", {**env, "ALLOOP_FAULT_POINTS": point or ""}, tmp_path / "logs" / f"{cycle}.log"
        )
        if point is None:
            time.sleep(rng.uniform(1.0, 9.0))  # from outside, at a moment the process does not choose
            process.send_signal(signal.SIGKILL)
        code = process.wait(timeout=180)
        assert code == -signal.SIGKILL, f"cycle {cycle} ({point}): exit {code}; see {tmp_path / 'logs'}"
        outcomes.append((point or "random", VersionRegistry(client, keys).current()))
        check_store(client, keys, model_dir)

    # A clean trainer catches up: every label consumed and acked, then one more round trains on everything.
    process = spawn("trainer_service.server", env, tmp_path / "logs" / "final.log")
    try:
        assert wait_healthy(address, process)
        assert not list(model_dir.glob(".tmp-*")), "partial version directories survived a restart"
        trainer = trainer_pb2_grpc.TrainerServiceStub(channel(int(address.rsplit(":", 1)[1])))
        expected = len(initial) + len(submitted)
        wait_for(
            lambda: trainer.GetStatus(trainer_pb2.GetStatusRequest()).status.labels_seen == expected,
            timeout=120,
            what="every label in the training set",
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
    want.update({json.dumps(["p", i], separators=(",", ":")): label for i, label in submitted.items()})
    assert {m: v["label"] for m, v in training_set.items()} == want  # none lost, none twice (keyed by item)
    assert client.xlen(keys.label_stream) == 0  # every entry taken in was deleted with its ack: the stream is drained
    check_store(client, keys, model_dir)
    # A trainer armed at a point exits by SIGKILL only if it reaches that point (else wait() times out); and a kill
    # right after publishing leaves the new version published.
    versions = [v for _, v in outcomes]
    for cycle, (point, version) in enumerate(outcomes):
        if point == "published":
            assert version > (versions[cycle - 1] if cycle else 0)
