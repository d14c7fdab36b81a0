"""Redis with a password, or an ACL user, given through REDIS_URL (as docker-compose.yml configures it)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from alloop.store.connection import EmbeddedRedis, connect
from query_service.server import create_server as create_query_server
from tests.integration.services import channel, wait_for

pytestmark = pytest.mark.integration


def test_password_in_redis_url(tmp_path, query_settings):
    with EmbeddedRedis(tmp_path / "r", appendonly=False, password="s3cr:t/pw") as server:
        with pytest.raises(redis.exceptions.RedisError, match="(?i)auth"):
            redis.Redis(host="127.0.0.1", port=server.port).set("x", 1)
        client = connect(server.url)  # the password is percent-encoded in the URL
        assert client.ping()
        running = create_query_server(replace(query_settings, common=replace(query_settings.common, redis_url=server.url)), client)
        try:
            health = health_pb2_grpc.HealthStub(channel(running.port))
            wait_for(lambda: health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING,
                     what="SERVING with an authenticated Redis")
        finally:
            running.stop(0)


def test_acl_user_in_redis_url(tmp_path):
    acl = ["--user", "default", "off", "--user", "alloop", "on", ">pw", "~alloop:*", "&*", "+@all"]
    with EmbeddedRedis(tmp_path / "r", appendonly=False, extra_args=acl) as server:
        client = connect(f"redis://alloop:pw@127.0.0.1:{server.port}/0")
        client.set("alloop:k", "v")
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set("elsewhere:k", "v")  # the ACL confines the user to the project's prefix
        with pytest.raises(redis.exceptions.RedisError):
            connect(f"redis://alloop:wrong@127.0.0.1:{server.port}/0").ping()
