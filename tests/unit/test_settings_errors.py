"""Every numeric setting, given a value that is not a number, is refused with a message naming its variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alloop.config import query_from_env, trainer_from_env
from alloop.envvars import integer, number

ROOT = Path(__file__).resolve().parents[2]


def numeric_variables() -> list[str]:
    """The variables alloop/config.py and alloop/rpc/limits.py read through the typed readers."""
    names: set[str] = set()
    for path in ("alloop/config.py", "alloop/rpc/limits.py"):
        text = (ROOT / path).read_text()
        names |= set(
            re.findall(r'(?:integer|number|_positive_int|_non_negative_int)\(env, "(ALLOOP_[A-Z0-9_]+)"', text)
        )
        names |= set(re.findall(r'number\(\s*"(ALLOOP_[A-Z0-9_]+)"', text))
    return sorted(names)


def test_the_scan_finds_the_numeric_settings() -> None:
    found = numeric_variables()
    assert {"ALLOOP_LEASE_SECONDS", "ALLOOP_EPOCHS", "ALLOOP_GRPC_WORKERS", "ALLOOP_MAX_POOLS"} <= set(found)
    assert len(found) >= 40


@pytest.mark.parametrize("variable", numeric_variables())
def test_a_malformed_value_names_its_variable(variable: str) -> None:
    env = {variable: "twelve"}
    with pytest.raises(ValueError, match=rf"^{variable} must be (an integer|a number), got 'twelve'$"):
        query_from_env(env)
        trainer_from_env(env)


def test_readers_keep_defaults_and_bounds() -> None:
    assert integer({}, "X", 3) == 3 and integer({"X": " 7 "}, "X", 3) == 7 and integer({"X": ""}, "X", 3) == 3
    assert number({"X": "0.5"}, "X", 1.0) == 0.5
    with pytest.raises(ValueError, match="^X must be a positive integer, got 0$"):
        integer({"X": "0"}, "X", 3, minimum=1)
    with pytest.raises(ValueError, match="^X must be a finite number, got 'inf'$"):
        number({"X": "inf"}, "X", 1.0)
    with pytest.raises(ValueError, match="^X must be an integer, got '" + "9" * 40 + "'$"):
        integer({"X": "9" * 39 + "9x" * 1000}, "X", 3)
