"""Redis with a password, or an ACL user, given through REDIS_URL (as docker-compose.yml configures it)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from alloop.store.connection import EmbeddedRedis, connect, free_port, open_redis
from alloop.v1 import common_pb2, query_pb2, query_pb2_grpc
from query_service.server import create_server as create_query_server
from tests.integration.processes import health, spawn, wait_healthy
from tests.integration.services import channel, wait_for
from trainer_service.server import create_server as create_trainer_server

pytestmark = pytest.mark.integration


def test_password_in_redis_url(tmp_path, query_settings):
    with EmbeddedRedis(tmp_path / "r", appendonly=False, password="s3cr:t/pw") as server:
        with pytest.raises(redis.exceptions.RedisError, match="(?i)auth"):
            redis.Redis(host="127.0.0.1", port=server.port).set("x", 1)
        client, _ = open_redis(server.url, tmp_path / "unused")  # as the service opens it; percent-encoded password
        assert client.ping()
        running = create_query_server(
            replace(query_settings, common=replace(query_settings.common, redis_url=server.url)), client
        )
        try:
            health = health_pb2_grpc.HealthStub(channel(running.port))
            wait_for(
                lambda: health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING,
                what="SERVING with an authenticated Redis",
            )
        finally:
            running.stop(0)


@pytest.mark.parametrize("given", ["password file", "url", "wrong password file"])
def test_a_service_process_reaches_a_protected_redis_as_it_builds_its_own_client(tmp_path, given):
    """The service's own start-up (environment -> settings -> client), not a client a test authenticated for it."""
    with EmbeddedRedis(tmp_path / "r", appendonly=False, password="s3cr:t/pw") as server:
        secret = tmp_path / "redis-password"
        secret.write_text("not-it\n" if given == "wrong password file" else "s3cr:t/pw\n")
        secret.chmod(0o600)
        plain = f"redis://127.0.0.1:{server.port}/0"
        env = (
            {"REDIS_URL": server.url}
            if given == "url"
            else {"REDIS_URL": plain, "ALLOOP_REDIS_PASSWORD_FILE": str(secret)}
        )
        address = f"127.0.0.1:{free_port()}"
        env |= {"ALLOOP_QUERY_ADDRESS": address, "ALLOOP_STATE_DIR": str(tmp_path / "state")}
        process = spawn("query_service.server", env, tmp_path / "query.log")
        try:
            if given == "wrong password file":
                with contextlib.suppress(AssertionError):  # still up but never SERVING is a refusal too
                    assert not wait_healthy(address, process, timeout=15)
                assert health(address) != health_pb2.HealthCheckResponse.SERVING
            else:
                assert wait_healthy(address, process, timeout=90), (tmp_path / "query.log").read_text()[-2000:]
        finally:
            process.kill()
            process.wait()


def test_acl_user_in_redis_url(tmp_path):
    acl = ["--user", "default", "off", "--user", "alloop", "on", ">pw", "~alloop:*", "&*", "+@all"]
    with EmbeddedRedis(tmp_path / "r", appendonly=False, extra_args=acl) as server:
        client = connect(f"redis://alloop:pw@127.0.0.1:{server.port}/0")
        client.set("alloop:k", "v")
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set("elsewhere:k", "v")  # the ACL confines the user to the project's prefix
        with pytest.raises(redis.exceptions.RedisError):
            connect(f"redis://alloop:wrong@127.0.0.1:{server.port}/0").ping()


def least_privilege_acl(prefix: str, password: str) -> list[str]:
    """The ACL the README recommends: the project's keys and channels, every command but admin and dangerous ones."""
    return ["on", f">{password}", f"~{prefix}:*", "resetchannels", f"&{prefix}:*", "+@all", "-@admin", "-@dangerous"]


def test_the_whole_loop_runs_as_a_least_privilege_acl_user(tmp_path, trainer_settings, query_settings, corpus, keys):
    acl = ["--user", "default", "off", "--user", "alloop", *least_privilege_acl(keys.prefix, "pw")]
    with EmbeddedRedis(tmp_path / "r", appendonly=False, extra_args=acl) as server:
        url = f"redis://alloop@127.0.0.1:{server.port}/0"
        client, _ = open_redis(url, tmp_path / "unused", password="pw")  # as the services open it
        common = replace(query_settings.common, redis_url=url, redis_password="pw")
        trainer = create_trainer_server(replace(trainer_settings, common=common), client)
        query = create_query_server(replace(query_settings, common=common), client)
        try:
            wait_for(query.holder.current_or_none, timeout=120, what="version 1 served")
            q = query_pb2_grpc.QueryServiceStub(channel(query.port))
            rows = [json.loads(line) for line in corpus["pool"].read_text().splitlines()]
            truth = {row["id"]: row["label"] for row in rows}
            q.SubmitPool(
                iter(
                    [
                        query_pb2.SubmitPoolRequest(
                            pool="p", items=[query_pb2.PoolItem(id=r["id"], text=r["text"]) for r in rows]
                        )
                    ]
                )
            )
            q.Query(query_pb2.QueryRequest(pool="p", strategy=common_pb2.STRATEGY_LEAST_CONFIDENCE, k=20))
            tasks = q.LeaseTasks(query_pb2.LeaseTasksRequest(max_items=20)).tasks
            labels = [query_pb2.Label(pool=t.pool, id=t.id, label=truth[t.id]) for t in tasks]
            assert q.SubmitLabels(query_pb2.SubmitLabelsRequest(labels=labels)).accepted == 20
            wait_for(lambda: query.holder.current().version == 2, timeout=180, what="version 2 trained and served")
        finally:
            query.stop(0)
            trainer.stop(0)
        # What the user may not do: administer the server, run dangerous commands, touch other keys or channels.
        for attempt in (
            lambda: client.acl_setuser("alloop", commands=["+@all"]),
            lambda: client.config_set("appendonly", "no"),
            lambda: client.flushall(),
            lambda: client.keys("*"),
            lambda: client.get("elsewhere:k"),
            lambda: client.publish("elsewhere", "x"),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                attempt()
        client.close()


def test_the_embedded_redis_gets_a_random_password_kept_off_command_lines(tmp_path):
    client, server = open_redis(None, tmp_path / "redis")
    assert server is not None
    try:
        assert server.password and len(server.password) >= 24
        with pytest.raises(redis.exceptions.RedisError, match="(?i)auth"):
            redis.Redis(host="127.0.0.1", port=server.port).set("x", 1)
        assert client.ping()
        assert server.password.encode() not in Path(f"/proc/{server.pid}/cmdline").read_bytes()
        for name in ("redis.conf", "redis.url"):
            assert (tmp_path / "redis" / name).stat().st_mode & 0o077 == 0, name  # owner only
        again, started = open_redis(None, tmp_path / "redis")  # a second service on the same state dir reuses it
        assert started is None and again.ping()
        again.close()
    finally:
        client.close()
        server.stop()
