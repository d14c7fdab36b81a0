"""The clients against the real services: the simulated oracle's rounds, the pool CLI, the terminal labeler."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from alloop.models.config import ModelConfig
from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc
from clients import labeler, oracle, pool
from query_service.server import create_server as create_query_server
from tests.integration.services import channel, wait_for
from trainer_service.server import create_server as create_trainer_server

pytestmark = pytest.mark.integration


@pytest.fixture
def services(trainer_settings, query_settings, redis_client):
    trainer = create_trainer_server(trainer_settings, redis_client)
    query = create_query_server(query_settings, redis_client)
    wait_for(lambda: query.holder.current_or_none(), timeout=120, what="version 1 served")
    yield trainer, query
    query.stop(0)
    trainer.stop(0)


def oracle_args(query, trainer, corpus, *extra: str):  # type: ignore[no-untyped-def]
    """The oracle's command line against these services and the corpus' pool, quiet, with ``extra`` flags."""
    return oracle.build_parser().parse_args(
        [
            *("--query-address", f"127.0.0.1:{query.port}", "--trainer-address", f"127.0.0.1:{trainer.port}"),
            *("--pool-file", str(corpus["pool"]), "--pool", "p", "--quiet", "--timeout", "120"),
            *extra,
        ]
    )


def test_oracle_runs_rounds_and_writes_the_learning_curve(services, corpus, tmp_path, capsys):
    trainer, query = services
    out = tmp_path / "run"
    args = oracle_args(query, trainer, corpus, "-k", "15", "--rounds", "2", "--out", str(out))
    rows = oracle.run(args)
    # Threshold is 20 and k is 15: the oracle asks for each round itself, and every round adds exactly k labels.
    assert [r.labels for r in rows] == [120, 135, 150]
    assert [r.version for r in rows] == [1, 2, 3]
    # Stopping criterion: v1 predates the pool, v2 fixes the stop set, v3 is the first to compare with its predecessor.
    assert rows[0].kappa == -1 and rows[1].kappa == -1 and -1 <= rows[2].kappa <= 1 and rows[2].kappa != -1
    curve = json.loads((out / "learning_curve.json").read_text())
    assert [r["labels"] for r in curve["rounds"]] == [120, 135, 150]
    assert (out / "learning_curve.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "test acc" in printed and "FP" in printed and "FN" in printed


def test_pool_cli_submits_and_queries(services, corpus, capsys):
    _, query = services
    address = f"127.0.0.1:{query.port}"
    assert pool.main(["--query-address", address, "submit", str(corpus["pool"]), "--pool", "cli"]) == 0
    assert "200 accepted" in capsys.readouterr().out
    assert pool.main(["--query-address", address, "submit", str(corpus["pool"]), "--pool", "cli"]) == 0
    assert "0 accepted, 200 duplicate" in capsys.readouterr().out
    assert pool.main(["--query-address", address, "query", "--pool", "cli", "-k", "3"]) == 0
    assert "queued 3 of 200" in capsys.readouterr().out
    assert pool.main(["--query-address", address, "query", "--pool", "nope", "--count", "3"]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err


def test_terminal_labeler_submits_keys_and_skips(services, corpus):
    _, query = services
    stub = query_pb2_grpc.QueryServiceStub(channel(query.port))
    rows = [json.loads(line) for line in corpus["pool"].read_text().splitlines()][:10]
    pool.submit_records(stub, "lab", [pool.Record(r["id"], r["text"]) for r in rows], progress=False)
    stub.Query(query_pb2.QueryRequest(pool="lab", strategy=common_pb2.STRATEGY_ENTROPY, k=3))
    answers = iter(["x", "1", "s", "0"])  # a wrong key is asked again; then label, skip, label
    shown: list[str] = []
    count = labeler.label_session(stub, "person", batch=5, ask=lambda _prompt: next(answers), say=shown.append)
    assert count == 2
    assert any("press one of 0..1" in line for line in shown)
    assert query.app.labeling.waiting_count() == 1  # the skipped item waits for its lease to expire


def test_oracle_refreshes_a_linear_model_on_a_new_pool_before_its_first_query(
    trainer_settings, query_settings, redis_client, corpus, tmp_path
):
    # Version 1 of a family that learns features from pool text was fitted before the pool existed: the oracle
    # asks for one round on the same labels first, so its first query uses a vocabulary that knows the pool.
    settings = replace(
        trainer_settings,
        model=ModelConfig(family="linear", linear_max_tokens=2000, linear_lsa_components=20),
        training=replace(trainer_settings.training, warm_start=False),
    )
    trainer = create_trainer_server(settings, redis_client)
    query = create_query_server(query_settings, redis_client)
    try:
        wait_for(lambda: query.holder.current_or_none(), timeout=120, what="version 1 served")
        args = oracle_args(
            query,
            trainer,
            corpus,
            "--count",
            "15",
            "--rounds",
            "1",
            "--strategy",
            "kmeans_diversity",
            "--out",
            str(tmp_path / "run"),
        )
        rows = oracle.run(args)
        assert [r.labels for r in rows] == [120, 135]
        assert [r.version for r in rows] == [2, 3]  # version 2: the same 120 labels, refreshed on the pool
        assert query.holder.current().metadata["unlabeled_size"] == 200
    finally:
        query.stop(0)
        trainer.stop(0)
