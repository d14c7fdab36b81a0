"""docker-compose.yml, run as local processes (tests/integration/local_compose.py says what is rewritten to run it
on one host), so the file cannot rot while there is no Docker engine to run it: a labeling round goes through its
services with the tokens of `make secrets`. A variable the compose file sets that no code reads, that the service
it is set on does not read, or that the configured model family ignores fails the test.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from alloop.config import query_from_env, trainer_from_env
from alloop.models.config import ModelConfig, TrainingConfig
from alloop.rpc.security import FALSE, TRUE, open_secure_channel
from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from tests.container_files import ROOT, env_of, service_env
from tests.integration.local_compose import Instance, LocalCompose, write_data

pytestmark = pytest.mark.integration

VARIABLE = re.compile(r"ALLOOP_[A-Z0-9_]+|REDIS_URL")
# Variables for the runtime rather than alloop, which a compose file or an image may set.
RUNTIME_VARIABLES = {
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "TF_CPP_MIN_LOG_LEVEL",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "PIP_ROOT_USER_ACTION",
}
CODE_DIRS = ("alloop", "query_service", "trainer_service")


# --- variables ----------------------------------------------------------------------------------------------------


def variables_the_code_reads() -> set[str]:
    """Every string literal in the services' code that is a whole variable name (docstrings left out: naming a
    variable in prose is not reading it)."""
    names: set[str] = set()
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            docstrings = {
                id(node.body[0].value)
                for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and node.body
                and isinstance(node.body[0], ast.Expr)
                and isinstance(node.body[0].value, ast.Constant)
            }
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                    if VARIABLE.fullmatch(node.value):
                        names.add(node.value)
    return names


class Recording(dict):  # type: ignore[type-arg]
    """An environment that remembers which variables were asked for."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def trainer_view(env: Mapping[str, str]) -> object:
    """The trainer's settings as its model family uses them: a family's own model settings, and the training
    settings only for a family fitted by epochs (an exact one is solved and reads only the seed)."""
    from alloop.models.families import get_family

    settings = trainer_from_env(env)
    family = settings.model.family
    training = {"seed": settings.training.seed} if get_family(family).exact else asdict(settings.training)
    return (
        replace(settings, model=ModelConfig(), training=TrainingConfig()),
        family,
        settings.model.family_settings(family),
        training,
    )


VIEWS = {"trainer": trainer_view, "query": query_from_env}


def perturbed(value: str) -> str:
    v = value.strip().lower()
    if v in TRUE:
        return "0"
    if v in FALSE:
        return "1"
    for kind in (int, float):
        try:
            return str(kind(v) * 2 + 1)
        except ValueError:
            pass
    return value + "-changed"


def stale_variables(envs: Mapping[str, Mapping[str, str]], names: Mapping[str, set[str]]) -> list[str]:
    """What each service's ``names`` (what compose and the image set) set in vain, given the whole environment a
    service's process gets: a name no code reads; one that the other service's settings read but this one's do
    not; one whose value changes nothing the service (and its model family) uses."""
    code = variables_the_code_reads()
    read: dict[str, set[str]] = {}
    for service, env in envs.items():
        recording = Recording(env)
        VIEWS[service](recording)
        read[service] = recording.read
    problems = []
    for service, env in envs.items():
        others = set().union(*(r for s, r in read.items() if s != service))
        for name in sorted(names[service]):
            value = env[name]
            if name in RUNTIME_VARIABLES:
                continue
            if not VARIABLE.fullmatch(name) or name not in code:
                problems.append(f"{service}: {name} is read by no code in {', '.join(CODE_DIRS)}")
            elif name in others and name not in read[service]:
                problems.append(f"{service}: {name} is read by another service, not by this one")
            elif name in read[service]:
                try:
                    same = VIEWS[service]({**env, name: perturbed(value)}) == VIEWS[service](env)
                except ValueError:
                    same = False  # the value is checked, so it is read
                if same:
                    problems.append(
                        f"{service}: {name}={value!r} changes nothing the service uses (its model family ignores it)"
                    )
    return problems


# --- compose, rewritten for one host ------------------------------------------------------------------------------


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalCompose]:
    local = LocalCompose(tmp_path)
    try:
        yield local
    finally:
        local.down()


def envs_of(stack: LocalCompose) -> tuple[dict[str, dict[str, str]], dict[str, set[str]]]:
    """Each built service's environment as its process gets it (the first replica's), and the names in it that
    compose or the image set."""
    built = {name: s for name, s in stack.services.items() if "build" in s}
    envs = {name: stack.instances[name][0].env for name in built}
    names = {name: set(service_env(s)) | set(env_of(s["build"]["target"])) for name, s in built.items()}
    return envs, names


# --- tests --------------------------------------------------------------------------------------------------------


def test_compose_sets_no_variable_in_vain(tmp_path: Path) -> None:
    envs, names = envs_of(LocalCompose(tmp_path, replicas={}))
    assert set(envs) == {"query", "trainer"}, set(envs)
    assert stale_variables(envs, names) == []


def test_the_stale_variable_check_catches_what_it_should(tmp_path: Path) -> None:
    envs, names = envs_of(LocalCompose(tmp_path, replicas={}))
    added = {
        "query": {"ALLOOP_RETRAIN_THRESHOLD": "10", "ALLOOP_NO_SUCH_SETTING": "1", "NOT_ALLOOP": "1"},
        "trainer": {"ALLOOP_EPOCHS": "20", "ALLOOP_WARM_START": "1", "ALLOOP_LSTM_UNITS": "8"},
    }
    problems = "\n".join(
        stale_variables(
            {s: {**envs[s], **added[s]} for s in envs},
            {s: names[s] | set(added[s]) for s in names},
        )
    )
    for service, planted in added.items():
        for name in planted:
            assert f"{service}: {name}" in problems, problems
    assert len(problems.splitlines()) == 6, problems


def test_the_compose_stack_runs_a_labeling_round_as_local_processes(stack: LocalCompose) -> None:
    started = time.monotonic()
    data = write_data(stack.tmp / "bind" / "data")
    assert stale_variables(*envs_of(stack)) == []
    stack.up()
    up_seconds = time.monotonic() - started
    tokens = stack.tokens()
    trainer = stack.instances["trainer"][0]
    replicas = stack.instances["query"]
    assert len(replicas) == 2

    channels: dict[tuple[str, str], grpc.Channel] = {}

    def stub(instance: Instance, role: str, kind: Any) -> Any:
        if (instance.name, role) not in channels:
            name = "ALLOOP_QUERY_ADDRESS" if instance.service == "query" else "ALLOOP_TRAINER_ADDRESS"
            channels[instance.name, role] = open_secure_channel(instance.env[name], env={"ALLOOP_TOKEN": tokens[role]})
            stack.channels.append(channels[instance.name, role])
        return kind(channels[instance.name, role])

    def served(instance: Instance) -> int:
        try:
            return (
                stub(instance, "labeler", query_pb2_grpc.QueryServiceStub)
                .GetModel(query_pb2.GetModelRequest(), timeout=5)
                .version.version
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:  # type: ignore[attr-defined]
                return 0
            raise

    def wait_served(version: int, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while [served(r) for r in replicas] != [version, version]:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"replicas serve {[served(r) for r in replicas]}, not {version}:\n"
                    + "\n".join(i.tail() for i in (trainer, *replicas))
                )
            time.sleep(0.3)

    wait_served(1)  # the trainer fits version 1 on /data/initial.jsonl at start; both replicas load it
    clients = [stub(r, "client", query_pb2_grpc.QueryServiceStub) for r in replicas]
    labelers = [stub(r, "labeler", query_pb2_grpc.QueryServiceStub) for r in replicas]
    items = [json.loads(line) for line in data["pool"].read_text().splitlines()]
    truth = {r["id"]: r["label"] for r in items}
    submitted = clients[0].SubmitPool(
        iter(
            [
                query_pb2.SubmitPoolRequest(
                    pool="reviews", items=[query_pb2.PoolItem(id=r["id"], text=r["text"]) for r in items]
                )
            ]
        ),
        timeout=60,
    )
    assert submitted.accepted == len(items)
    selected = clients[1].Query(
        query_pb2.QueryRequest(pool="reviews", strategy=common_pb2.STRATEGY_KMEANS_DIVERSITY, k=20), timeout=60
    )
    assert len(selected.selected) == 20 and selected.model_version == 1
    tasks = labelers[0].LeaseTasks(query_pb2.LeaseTasksRequest(max_items=20), timeout=30).tasks
    assert {t.id for t in tasks} == {s.id for s in selected.selected}
    labels = [query_pb2.Label(pool=t.pool, id=t.id, label=truth[t.id]) for t in tasks]
    assert labelers[1].SubmitLabels(query_pb2.SubmitLabelsRequest(labels=labels), timeout=30).accepted == 20
    with pytest.raises(grpc.RpcError) as refused:  # the labeler's token cannot start a round
        stub(trainer, "labeler", trainer_pb2_grpc.TrainerServiceStub).Train(
            trainer_pb2.TrainRequest(wait=True), timeout=30
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    trained = stub(trainer, "operator", trainer_pb2_grpc.TrainerServiceStub).Train(
        trainer_pb2.TrainRequest(wait=True), timeout=120
    )
    assert trained.version.version == 2 and trained.version.train_size == 140
    wait_served(2)
    for client in clients:
        predicted = client.Predict(query_pb2.PredictRequest(texts=["a superb wonderful film"]), timeout=30)
        assert predicted.model_version == 2
    for replica in replicas:  # the model entry of the health service, through the same command compose runs
        check = [*replica.healthcheck, "--service", "alloop.model"]  # type: ignore[misc]
        assert subprocess.run(check, env=replica.env, capture_output=True, check=False).returncode == 0
    for replica in replicas:  # what ran was the query image's set of packages, without the trainer's
        python = shutil.which("python3", path=replica.env["PATH"])
        probe = subprocess.run(
            [str(python), "-c", "import sklearn"],
            env=replica.env,
            cwd=replica.workdir,
            capture_output=True,
            text=True,
            check=False,
        )
        assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr, probe.stderr
    # alloop logs JSON lines, as the compose file asks (ALLOOP_LOG_FORMAT=json), and no secret.
    secrets = [*tokens.values(), stack.secret_files["redis_password"].read_text().strip()]
    for instance in (trainer, *replicas):
        text = instance.log.read_text(errors="replace")
        assert not any(s in text for s in secrets), f"{instance.name} logs a secret"
        records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        assert records and {r["service"] for r in records} == {instance.service}, instance.tail()
    print(f"\nstack up and healthy in {up_seconds:.1f}s, round done in {time.monotonic() - started:.1f}s")
