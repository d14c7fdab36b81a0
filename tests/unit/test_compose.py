"""The compose file is valid and fails closed: secrets for Redis and tokens, a least-privilege Redis user, no
password on any command line, ports on the host's loopback. Debian's docker-compose parses it (there is no Docker
engine here to run it); `.ci/run` installs docker-compose, so in CI the parse never skips.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.container_files import exec_form, healthcheck_of, load_compose, service_env, stages
from tests.integration.test_redis_auth import least_privilege_acl

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "docker-compose.yml").read_text()


@pytest.mark.skipif(
    shutil.which("docker-compose") is None and not os.environ.get("CI"),
    reason="docker-compose is not installed (CI installs it)",
)
def test_compose_file_is_valid_and_names_every_service() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--services"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {"redis", "trainer", "query"}


def test_compose_redis_is_persistent_and_admits_only_the_least_privilege_user() -> None:
    assert "--appendonly yes" in TEXT
    acl = re.search(r"user alloop (.*?)\\n", TEXT)
    assert acl is not None
    assert acl.group(1).split() == least_privilege_acl("alloop", "%s")  # the ACL the integration test runs under
    assert "user default off" in TEXT
    assert "ALLOOP_REDIS_PREFIX: alloop" in TEXT


def test_compose_puts_no_secret_on_a_command_line_and_has_no_default_password() -> None:
    assert "--requirepass" not in TEXT and "redis-cli -a" not in TEXT
    assert "REDISCLI_AUTH=" in TEXT and "change-me" not in TEXT
    assert "REDIS_URL: redis://alloop@redis:6379/0" in TEXT  # user only: the password comes from the secret file
    assert "ALLOOP_REDIS_PASSWORD_FILE: /run/secrets/redis_password" in TEXT
    assert TEXT.count("secrets: [redis_password, alloop_tokens]") == 2  # trainer and query


def test_compose_services_require_tokens_and_publish_on_loopback_only() -> None:
    assert "ALLOOP_AUTH_TOKENS_FILE: /run/secrets/alloop_tokens" in TEXT
    assert "ALLOOP_ALLOW_INSECURE" not in TEXT
    ports = re.findall(r'^\s+- "([^"]*:\d+)"\s', TEXT, flags=re.M)
    assert ports and all(p.startswith("127.0.0.1:") for p in ports), ports


def test_make_secrets_writes_owner_only_files_in_the_format_the_services_read(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    subprocess.run(["make", "-s", "secrets"], cwd=tmp_path, check=True, capture_output=True)
    from alloop.rpc.auth import credentials_from_env

    tokens = tmp_path / "secrets" / "alloop_tokens"
    creds = credentials_from_env({"ALLOOP_AUTH_TOKENS_FILE": str(tokens)})
    assert sorted(role for _, role, _ in creds.tokens) == ["client", "labeler", "operator"]
    for path in (tokens, tmp_path / "secrets" / "redis_password"):
        assert path.stat().st_mode & 0o077 == 0
    before = tokens.read_text()
    subprocess.run(["make", "-s", "secrets"], cwd=tmp_path, check=True, capture_output=True)
    assert tokens.read_text() == before  # kept: running it again rotates nothing


# --- operations: health, start order, restarts, limits, images ----------------------------------------------------

SERVICE_ADDRESS = {"query": "ALLOOP_QUERY_ADDRESS", "trainer": "ALLOOP_TRAINER_ADDRESS"}


def test_every_service_has_a_healthcheck_a_restart_policy_and_resource_limits() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        health = service.get("healthcheck") or {}
        assert health.get("test") and not health.get("disable"), f"{name} has no healthcheck"
        assert {"interval", "timeout", "retries"} <= set(health), f"{name}: {health}"
        assert service.get("restart") == "unless-stopped", f"{name} restarts {service.get('restart')!r}"
        assert service.get("mem_limit") and service.get("cpus"), f"{name} runs without memory and CPU limits"


def test_services_start_once_what_they_depend_on_is_healthy() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services
            assert condition == {"condition": "service_healthy"}, f"{name} waits for {dependency} to be {condition}"
    assert set(services["trainer"]["depends_on"]) == {"redis"} and set(services["query"]["depends_on"]) == {"redis"}


def test_built_services_use_their_own_image_target_command_and_health_port() -> None:
    compose = load_compose()
    by_name = stages()
    for name, variable in SERVICE_ADDRESS.items():
        service = compose["services"][name]
        assert service["build"] == {"context": ".", "target": name}, service["build"]
        assert name in by_name, f"the Dockerfile has no target {name}"
        cmd = [exec_form(i.args) for i in by_name[name].all("CMD")][-1]
        assert service["command"] == cmd, f"{name} runs {service['command']}, its image {cmd}"
        port = service_env(service)[variable].rsplit(":", 1)[1]
        assert service["healthcheck"]["test"] == ["CMD", "alloop-healthcheck", "--address", f"127.0.0.1:{port}"]
        image_check = healthcheck_of(name)
        assert image_check is not None and image_check[1] == service["healthcheck"]["test"][1:], (
            f"{name}: compose's healthcheck and the image's HEALTHCHECK differ"
        )


def test_no_bilstm_era_variables_on_the_trainer() -> None:
    """The default family (linear) is solved exactly: epochs, patience, batch size and warm start are the BiLSTM's.
    tests/integration/test_compose_stack.py finds any such variable from the code; this names the ones it had."""
    env = service_env(load_compose()["services"]["trainer"])
    assert env.get("ALLOOP_MODEL_FAMILY", "linear") == "linear"
    assert not {"ALLOOP_EPOCHS", "ALLOOP_PATIENCE", "ALLOOP_BATCH_SIZE", "ALLOOP_WARM_START"} & set(env)
