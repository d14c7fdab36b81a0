"""The round lock across trainer restarts and Redis outages."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from alloop.errors import RoundBusy
from alloop.store.connection import EmbeddedRedis, connect
from alloop.store.training import TrainingSetStore
from trainer_service.trainer import Trainer

pytestmark = pytest.mark.integration


def test_a_restarted_trainer_frees_its_own_lock_and_no_other(trainer_settings, redis_client, keys):
    # What a trainer named "t1" left when it was killed mid-round: its lock, with most of a minute to run.
    redis_client.set(keys.round_lock, "t1/0123abcd", px=60_000)
    other = Trainer(trainer_settings, redis_client, consumer="t2")
    other.prepare()
    with pytest.raises(RoundBusy):
        other.request_round()  # another trainer's lock is respected
    again = Trainer(trainer_settings, redis_client, consumer="t1")
    again.prepare()  # the same name, restarted: the lock is its own, freed at once
    _, started, future = again.request_round()
    assert started
    assert future.result(timeout=180)["version"] >= 1
    again._round_thread.join(timeout=30)  # type: ignore[union-attr]  # the lock is released after the result
    assert not redis_client.exists(keys.round_lock)
    assert TrainingSetStore(redis_client, keys, consumer="t3").take_over_own_lock() is False


def test_a_round_that_loses_redis_ends_without_an_unhandled_error(trainer_settings, tmp_path):
    errors: list[BaseException] = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)  # type: ignore[assignment,union-attr]
    try:
        with EmbeddedRedis(tmp_path / "redis", appendonly=False) as server:
            client = connect(server.url, timeout=1.0)
            settings = replace(trainer_settings, common=replace(trainer_settings.common, redis_url=server.url))
            trainer = Trainer(settings, client, consumer="outage")
            trainer.prepare()
            _, started, future = trainer.request_round()
            assert started
            server.stop()  # Redis goes away while the round trains; releasing the lock at its end fails too
            with pytest.raises(Exception):  # noqa: B017 - the round fails, reported on its future
                future.result(timeout=180)
            trainer._round_thread.join(timeout=30)  # type: ignore[union-attr]
    finally:
        threading.excepthook = previous_hook
    assert errors == []
