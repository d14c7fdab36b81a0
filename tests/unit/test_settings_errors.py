"""The environment classes: every variable declared once, refused with its name when malformed, documented."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from alloop.config import QuerySettings, TrainerSettings, query_from_env, trainer_from_env
from alloop.environment import SECTIONS, ClientEnvironment, QueryEnvironment, TrainerEnvironment

ROOT = Path(__file__).resolve().parents[2]
READERS = {QueryEnvironment: query_from_env, TrainerEnvironment: trainer_from_env}
TEST_ONLY = {"ALLOOP_CRASH_SEED"}  # read by the crash tests, not by alloop


def declared() -> set[str]:
    return {str(f.validation_alias) for _, cls in SECTIONS for f in cls.model_fields.values()}


def numeric(cls: type) -> list[str]:
    return [str(f.validation_alias) for f in cls.model_fields.values() if f.annotation in (int, float)]


def test_every_variable_the_product_or_its_docs_name_is_declared() -> None:
    """A variable read somewhere else, or written into compose, the manifests or a doc, would be undocumented."""
    named: set[str] = set()
    for folder in ("alloop", "query_service", "trainer_service", "clients", "docs", "deploy"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".md", ".yaml", ".yml"):
                named |= set(re.findall(r"\b(?:ALLOOP_[A-Z0-9_]*[A-Z0-9]|REDIS_URL)\b", path.read_text()))
    for path in ("README.md", "docker-compose.yml", "Dockerfile"):
        named |= set(re.findall(r"\b(?:ALLOOP_[A-Z0-9_]*[A-Z0-9]|REDIS_URL)\b", (ROOT / path).read_text()))
    assert named - TEST_ONLY - declared() == set()
    assert {"ALLOOP_LEASE_SECONDS", "ALLOOP_EPOCHS", "ALLOOP_GRPC_WORKERS", "REDIS_URL", "ALLOOP_TOKEN"} <= named


@pytest.mark.parametrize(
    ("cls", "variable"),
    [(cls, name) for cls in READERS for name in numeric(cls)],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_a_malformed_number_names_its_variable(cls: type, variable: str) -> None:
    with pytest.raises(ValueError, match=rf"^{variable} must be (an integer|a number), got 'twelve'$"):
        READERS[cls]({variable: "twelve"})


def test_the_numeric_scan_covers_the_bounds() -> None:
    assert len(numeric(QueryEnvironment)) >= 25 and len(numeric(TrainerEnvironment)) >= 30


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ALLOOP_MAX_POOLS": "0"}, "^ALLOOP_MAX_POOLS must be a positive integer, got 0$"),
        ({"ALLOOP_FEATURE_CACHE_ROWS": "-1"}, "^ALLOOP_FEATURE_CACHE_ROWS must be at least 0, got -1$"),
        ({"ALLOOP_LEASE_SECONDS": "inf"}, "^ALLOOP_LEASE_SECONDS must be a finite number, got 'inf'$"),
        ({"ALLOOP_SCORE_CLAIM_SECONDS": "0"}, "^ALLOOP_SCORE_CLAIM_SECONDS must be positive, got 0$"),
        ({"ALLOOP_ALLOW_INSECURE": "maybe"}, "^ALLOOP_ALLOW_INSECURE must be 1 or 0, got 'maybe'$"),
        ({"ALLOOP_REDIS_CLUSTER": "1"}, "^ALLOOP_REDIS_CLUSTER needs REDIS_URL"),
        ({"ALLOOP_REDIS_PREFIX": "a{b}"}, "^ALLOOP_REDIS_PREFIX must hold no braces"),
        (
            {"ALLOOP_MAX_QUERY_K": "9" * 39 + "x" * 100},
            "^ALLOOP_MAX_QUERY_K must be an integer, got '" + "9" * 39 + "x'$",
        ),
    ],
)
def test_bounds_are_refused_with_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        query_from_env(env)


def test_blank_and_padded_values() -> None:
    assert trainer_from_env({"ALLOOP_EPOCHS": " 7 "}).training.epochs == 7
    assert trainer_from_env({"ALLOOP_EPOCHS": "  "}).training.epochs == TrainerSettings().training.epochs
    assert query_from_env({"ALLOOP_LEASE_SECONDS": "0.5"}).lease_seconds == 0.5


def test_unset_variables_give_the_settings_defaults() -> None:
    """The environment classes and the settings dataclasses name each default; they must agree."""
    assert query_from_env({}) == QuerySettings()
    trainer = trainer_from_env({})
    # The one computed default: warm start follows the family (linear: off).
    assert trainer == replace(TrainerSettings(), training=replace(TrainerSettings().training, warm_start=False))
    assert trainer_from_env({"ALLOOP_MODEL_FAMILY": "bilstm"}).training.warm_start is True


def test_the_class_reads_os_environ_as_read_reads_a_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"ALLOOP_EPOCHS": "3", "ALLOOP_LINEAR_C": "4.5", "ALLOOP_MODEL_FAMILY": "bilstm", "ALLOOP_SEED": " "}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert TrainerEnvironment() == TrainerEnvironment.read(env)


def test_a_mapping_is_read_alone_whatever_the_process_environment_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOOP_EPOCHS", "3")
    monkeypatch.setenv("ALLOOP_MAX_MESSAGE_BYTES", "not a number")
    assert trainer_from_env({}).training.epochs == TrainerSettings().training.epochs
    assert ClientEnvironment.read({}).max_message_bytes == 64 * 1024 * 1024
    assert TrainerEnvironment().epochs == 3  # the class itself does read the process environment


def test_secrets_stay_out_of_reprs() -> None:
    env: dict[str, Any] = {"REDIS_URL": "redis://u:hunter2@h/0", "ALLOOP_AUTH_TOKENS": "s3cret:operator"}
    assert "hunter2" not in repr(QueryEnvironment.read(env)) and "s3cret" not in repr(QueryEnvironment.read(env))
    assert "tok" not in repr(ClientEnvironment.read({"ALLOOP_TOKEN": "tok"}))


def test_the_configuration_doc_lists_every_declared_variable() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert {name for name in declared() if f"| `{name}` |" not in doc} == set()
