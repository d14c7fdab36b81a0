"""The wire's Strategy enum and the strategy registry name the same strategies, and requests translate both ways."""

from __future__ import annotations

import datetime as dt

import pytest

from alloop.errors import InvalidRequest
from alloop.rpc.messages import duration, model_version_message, seconds, strategy_name, strategy_names, strategy_value
from alloop.strategies.selection import STRATEGIES
from alloop.v1 import common_pb2


def test_the_enum_carries_every_registered_strategy_and_nothing_else() -> None:
    assert sorted(strategy_names()) == sorted(STRATEGIES)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_name_survives_the_round_trip(name: str) -> None:
    assert strategy_name(strategy_value(name), "f") == name


def test_unspecified_takes_the_default_or_is_refused() -> None:
    assert strategy_name(common_pb2.STRATEGY_UNSPECIFIED, "f", default="least_confidence") == "least_confidence"
    with pytest.raises(InvalidRequest, match=r"QueryRequest.strategy is unset \(STRATEGY_UNSPECIFIED\)"):
        strategy_name(common_pb2.STRATEGY_UNSPECIFIED, "QueryRequest.strategy")


def test_an_unknown_number_is_refused_naming_the_choices() -> None:
    with pytest.raises(InvalidRequest, match="unknown Strategy number 99; choose one of STRATEGY_LEAST_CONFIDENCE"):
        strategy_name(99, "f", default="least_confidence")


def test_an_unknown_name_is_a_value_error_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'coin'; choose one of least_confidence"):
        strategy_value("coin")


def test_durations_and_version_times() -> None:
    assert seconds(duration(2.5)) == 2.5 and seconds(duration(-1)) == -1
    meta = {"version": 3, "created_at": "2026-12-01T00:10:00+00:00", "train_seconds": 1.25}
    message = model_version_message(meta)
    assert message.create_time.ToDatetime(dt.timezone.utc) == dt.datetime(2026, 12, 1, 0, 10, tzinfo=dt.timezone.utc)
    assert message.train_duration.ToMilliseconds() == 1250
    assert not model_version_message({"version": 1}).HasField("create_time")
