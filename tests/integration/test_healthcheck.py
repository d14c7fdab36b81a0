"""`alloop-healthcheck` (the images' HEALTHCHECK, compose's healthchecks) against real servers: exit 0 only for
SERVING, 1 with one line on stderr for anything else, with tokens on (health is open without one), over TLS and
mutual TLS, and when Redis goes away."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from alloop import healthcheck
from alloop.config import QuerySettings
from alloop.rpc.auth import Credentials
from alloop.rpc.security import SecuritySettings
from alloop.rpc.tls import ServerTLS
from alloop.store.connection import EmbeddedRedis, connect, free_port
from query_service.server import MODEL_HEALTH, RunningQueryService
from query_service.server import create_server as create_query_server
from tests.integration.services import wait_for
from tests.integration.test_tls import CA

pytestmark = pytest.mark.integration

TOKENS = (("hc-operator", "operator"),)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = healthcheck.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture
def server(query_settings: QuerySettings, redis_client) -> Iterator[RunningQueryService]:  # type: ignore[no-untyped-def]
    """A query replica that requires tokens for every RPC but health."""
    settings = replace(query_settings, security=SecuritySettings(auth=Credentials(TOKENS)))
    running = create_query_server(settings, redis_client)
    yield running
    running.stop(0)


def test_serving_exits_0_without_a_token(server, capsys, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("ALLOOP_TOKEN", raising=False)
    code, out, err = run(["--address", f"127.0.0.1:{server.port}"], capsys)
    assert code == 0 and err == ""
    assert one_line(out).endswith("SERVING")


def test_a_service_that_is_not_serving_exits_1_with_one_line(server, capsys):  # type: ignore[no-untyped-def]
    # No model is published yet: the replica answers, but its model entry is NOT_SERVING.
    code, out, err = run(["--address", f"127.0.0.1:{server.port}", "--service", MODEL_HEALTH], capsys)
    assert code == 1 and out == ""
    assert "NOT_SERVING" in one_line(err) and MODEL_HEALTH in err


def test_an_unknown_service_exits_1(server, capsys):  # type: ignore[no-untyped-def]
    code, _, err = run(["--address", f"127.0.0.1:{server.port}", "--service", "no.such.Service"], capsys)
    assert code == 1 and "NOT_FOUND" in one_line(err)


def test_nothing_listening_exits_1_within_the_timeout(capsys):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    code, _, err = run(["--address", f"127.0.0.1:{free_port()}", "--timeout", "1"], capsys)
    assert code == 1 and "UNAVAILABLE" in one_line(err)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--address"],
        ["--address", "nohostport"],
        ["--address", "h:1", "--timeout", "0"],
        ["--address", "h:1", "--bogus"],
    ],
)
def test_usage_errors_exit_1_not_2_which_docker_reserves(argv, capsys):  # type: ignore[no-untyped-def]
    code, _, err = run(argv, capsys)
    assert code == 1
    assert one_line(err).startswith("alloop-healthcheck: ")


def test_redis_going_away_turns_the_check_unhealthy(query_settings, tmp_path, capsys):  # type: ignore[no-untyped-def]
    redis_server = EmbeddedRedis(tmp_path / "redis", appendonly=False)
    redis_server.start()
    client = connect(redis_server.url)
    settings = replace(query_settings, common=replace(query_settings.common, redis_url=redis_server.url))
    running = create_query_server(settings, client)
    address = f"127.0.0.1:{running.port}"
    try:
        assert run(["--address", address], capsys)[0] == 0
        redis_server.stop()
        wait_for(lambda: healthcheck.check(address)[0] is False, timeout=15, what="NOT_SERVING without Redis")
        code, _, err = run(["--address", address], capsys)
        assert code == 1 and "NOT_SERVING" in one_line(err)
    finally:
        running.stop(0)
        client.close()
        redis_server.stop()


def test_the_console_script_over_mutual_tls(query_settings, redis_client, tmp_path):  # type: ignore[no-untyped-def]
    """As a container runs it: the installed command, TLS settings from the environment."""
    ca = CA(tmp_path, "hc-ca")
    server_cert, client_cert = ca.issue("server", server=True), ca.issue("client", server=False)
    tls = ServerTLS(server_cert.cert, server_cert.key, client_ca=ca.files.cert)
    running = create_query_server(replace(query_settings, security=SecuritySettings(tls=tls)), redis_client)
    command = shutil.which("alloop-healthcheck", path=str(Path(sys.executable).parent))
    assert command, "alloop-healthcheck is not installed: pyproject's [project.scripts] (make install)"
    address = f"127.0.0.1:{running.port}"
    base = {"PATH": str(Path(sys.executable).parent)}
    with_ca = {**base, "ALLOOP_TLS_CA": str(ca.files.cert)}
    with_client = {
        **with_ca,
        "ALLOOP_TLS_CLIENT_CERT": str(client_cert.cert),
        "ALLOOP_TLS_CLIENT_KEY": str(client_cert.key),
    }
    try:
        results = {
            name: subprocess.run(
                [command, "--address", address, "--timeout", "2"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
            for name, env in (("plaintext", base), ("tls", with_ca), ("mutual", with_client))
        }
    finally:
        running.stop(0)
    assert results["mutual"].returncode == 0, results["mutual"].stderr
    for name in ("plaintext", "tls"):  # a mutual-TLS server refuses the handshake without a client certificate
        assert results[name].returncode == 1
        assert one_line(results[name].stderr).startswith("alloop-healthcheck: ")
    bad = subprocess.run(
        [command, "--address", address],
        env={**base, "ALLOOP_TLS_CA": str(tmp_path / "missing.pem")},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert bad.returncode == 1 and "missing.pem" in one_line(bad.stderr)
