"""Parsing of tokens, roles and TLS paths from the environment; the settings both services read."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from alloop.config import (
    QuerySettings,
    TrainerSettings,
    add_common_flags,
    apply_common_flags,
    common_from_env,
    query_from_env,
    trainer_from_env,
)
from alloop.identity import ANONYMOUS, Caller
from alloop.rpc.auth import (
    METHOD_ROLES,
    OPERATOR,
    ROLES,
    Credentials,
    bearer_token,
    credentials_from_env,
    parse_tokens,
    parse_tokens_file,
)
from alloop.rpc.limits import ServerLimits, limits_from_env
from alloop.rpc.security import SecuritySettings, is_loopback, security_from_env
from alloop.rpc.tls import client_tls_from_env, server_tls_from_env


def test_env_tokens_parse_with_white_space_and_colons_in_tokens():
    assert parse_tokens(" t1:labeler , t2:client,,a:b:c:operator ") == [
        ("t1", "labeler", ""),
        ("t2", "client", ""),
        ("a:b:c", "operator", ""),
    ]
    creds = credentials_from_env({"ALLOOP_AUTH_TOKENS": "t1:labeler,t2:client"})
    assert creds.enabled
    assert creds.role_of("t1") == "labeler" and creds.role_of("t2") == "client"
    assert creds.role_of("t3") is None and creds.role_of("") is None and creds.role_of("t1 ") is None
    assert creds.role_of("tökén") is None  # non-ASCII input is compared as bytes, not an error


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("t1:admin", "unknown role 'admin'"),
        ("t1:", "empty role"),
        (":client", "empty token"),
        ("t1", "expected 'token:role'"),
        ("t1:Client", "unknown role 'Client'"),
        ("t 1:client", "white space"),
    ],
)
def test_env_tokens_with_a_bad_entry_are_refused_with_a_clear_message(value, fragment):
    with pytest.raises(ValueError, match="ALLOOP_AUTH_TOKENS") as err:
        credentials_from_env({"ALLOOP_AUTH_TOKENS": value})
    assert fragment in str(err.value)
    if fragment.startswith(("unknown role", "empty role")):
        assert "expected one of labeler, client, operator" in str(err.value)


def test_no_tokens_means_auth_off():
    for env in ({}, {"ALLOOP_AUTH_TOKENS": ""}, {"ALLOOP_AUTH_TOKENS": " , "}, {"ALLOOP_AUTH_TOKENS_FILE": ""}):
        creds = credentials_from_env(env)
        assert not creds.enabled and creds.role_of("anything") is None
    assert not SecuritySettings().auth.enabled and SecuritySettings().tls is None


def test_tokens_file_format_with_comments_and_blank_lines(tmp_path: Path):
    path = tmp_path / "tokens"
    path.write_text("# alloop tokens\n\nlab-1 labeler   # the labeling team\n  cli-1\tclient\nop-1 operator\n")
    assert parse_tokens_file(path.read_text()) == [
        ("lab-1", "labeler", ""),
        ("cli-1", "client", ""),
        ("op-1", "operator", ""),
    ]
    creds = credentials_from_env({"ALLOOP_AUTH_TOKENS_FILE": str(path), "ALLOOP_AUTH_TOKENS": "extra:client"})
    assert {t: creds.role_of(t) for t in ("lab-1", "cli-1", "op-1", "extra")} == {
        "lab-1": "labeler",
        "cli-1": "client",
        "op-1": "operator",
        "extra": "client",
    }


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ok labeler\nbad root\n", "line 2: unknown role 'root'"),
        ("lonely\n", "line 1: expected 'token role [holder]', got 1 field(s)"),
        ("a b c d\n", "got 4 field(s)"),
        ("a labeler al:ice\n", "holder name"),
        ("tok labeler\ntok client\n", "configured twice with different roles"),
    ],
)
def test_tokens_file_with_a_bad_line_is_refused(tmp_path: Path, text, fragment):
    path = tmp_path / "tokens"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        credentials_from_env({"ALLOOP_AUTH_TOKENS_FILE": str(path)})
    assert fragment in str(err.value)


def test_a_missing_tokens_file_is_refused_naming_the_variable(tmp_path: Path):
    with pytest.raises(ValueError, match="ALLOOP_AUTH_TOKENS_FILE: cannot read"):
        credentials_from_env({"ALLOOP_AUTH_TOKENS_FILE": str(tmp_path / "nope")})


def test_repr_never_shows_a_token():
    creds = Credentials((("s3cret-token", "operator"), ("other-s3cret", "client")))
    assert "s3cret" not in repr(creds) and "s3cret" not in repr(SecuritySettings(auth=creds))
    assert "operator" in repr(creds)


def test_same_token_twice_with_the_same_role_is_fine():
    assert credentials_from_env({"ALLOOP_AUTH_TOKENS": "a:client,a:client"}).role_of("a") == "client"


@pytest.mark.parametrize(
    ("metadata", "token"),
    [
        ((("authorization", "Bearer abc"),), "abc"),
        ((("authorization", "bearer   abc "),), "abc"),
        ((("x-other", "1"), ("authorization", "Bearer abc")), "abc"),
        ((("authorization", "Basic abc"),), None),
        ((("authorization", "Bearer "),), None),
        ((("authorization", "abc"),), None),
        ((), None),
        (None, None),
    ],
)
def test_bearer_token_from_metadata(metadata, token):
    assert bearer_token(metadata) == token


def test_every_method_lets_the_operator_in_and_names_known_roles_only():
    for method, roles in METHOD_ROLES.items():
        assert OPERATOR in roles, method
        assert roles <= set(ROLES), method


def test_both_settings_carry_security_from_the_environment(tmp_path: Path):
    assert QuerySettings().security == SecuritySettings() == TrainerSettings().security
    env = {"ALLOOP_AUTH_TOKENS": "t:operator", "ALLOOP_TLS_CERT": "c.pem", "ALLOOP_TLS_KEY": "k.pem"}
    for settings in (query_from_env(env), trainer_from_env(env)):
        assert settings.security.auth.role_of("t") == "operator"
        assert settings.security.tls is not None and settings.security.tls.cert == Path("c.pem")
        assert not settings.security.tls.mutual
    assert query_from_env({}).max_message_bytes == 64 * 1024 * 1024
    assert query_from_env({"ALLOOP_MAX_MESSAGE_BYTES": "1048576"}).max_message_bytes == 1048576
    with pytest.raises(ValueError, match="ALLOOP_MAX_MESSAGE_BYTES"):
        query_from_env({"ALLOOP_MAX_MESSAGE_BYTES": "0"})


def test_server_tls_settings():
    assert server_tls_from_env({}) is None
    tls = server_tls_from_env({"ALLOOP_TLS_CERT": "c", "ALLOOP_TLS_KEY": "k", "ALLOOP_TLS_CLIENT_CA": "ca"})
    assert tls is not None and tls.mutual and tls.client_ca == Path("ca")
    with pytest.raises(ValueError, match="needs both ALLOOP_TLS_CERT and ALLOOP_TLS_KEY"):
        server_tls_from_env({"ALLOOP_TLS_CERT": "c"})
    with pytest.raises(ValueError, match="ALLOOP_TLS_CLIENT_CA"):
        server_tls_from_env({"ALLOOP_TLS_CLIENT_CA": "ca"})
    with pytest.raises(ValueError, match="ALLOOP_TLS_KEY: cannot read"):
        server_tls_from_env({"ALLOOP_TLS_CERT": "/nonexistent/c", "ALLOOP_TLS_KEY": "/nonexistent/k"}).credentials()
    assert security_from_env({}).tls is None


def test_client_tls_settings():
    assert client_tls_from_env({}) is None
    tls = client_tls_from_env({"ALLOOP_TLS_CA": "ca", "ALLOOP_TLS_SERVER_NAME": "svc.internal"})
    assert tls is not None and tls.client_cert is None
    assert tls.options() == [("grpc.ssl_target_name_override", "svc.internal")]
    with pytest.raises(ValueError, match="needs both ALLOOP_TLS_CLIENT_CERT and ALLOOP_TLS_CLIENT_KEY"):
        client_tls_from_env({"ALLOOP_TLS_CA": "ca", "ALLOOP_TLS_CLIENT_CERT": "c"})
    with pytest.raises(ValueError, match="set ALLOOP_TLS_CA"):
        client_tls_from_env({"ALLOOP_TLS_CLIENT_CERT": "c", "ALLOOP_TLS_CLIENT_KEY": "k"})


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("localhost:1", True),
        ("[::1]:5", True),
        ("unix:/tmp/s", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        ("query:50051", False),
        ("10.0.0.5:1", False),
    ],
)
def test_loopback_addresses(address, loopback):
    assert is_loopback(address) is loopback


def test_a_token_may_name_its_holder_in_either_source(tmp_path: Path):
    path = tmp_path / "tokens"
    path.write_text("lab-1 labeler alice\nlab-2 labeler\n")
    creds = credentials_from_env(
        {"ALLOOP_AUTH_TOKENS_FILE": str(path), "ALLOOP_AUTH_TOKENS": "a:b:labeler:bob,c:client"}
    )
    assert creds.identify("lab-1") == Caller("labeler", "alice")
    assert creds.identify("a:b") == Caller("labeler", "bob")  # a token with ':' in it, then role, then holder
    unnamed = creds.identify("lab-2")
    assert unnamed is not None and unnamed.role == "labeler"
    assert unnamed.identity is not None and unnamed.identity.startswith("labeler:") and "lab-2" not in unnamed.identity
    assert creds.identify("lab-2") == unnamed  # stable
    assert creds.identify("nope") is None
    assert creds.caller([("authorization", "Bearer lab-1")]) == Caller("labeler", "alice")
    assert Credentials().caller([("authorization", "Bearer lab-1")]) == ANONYMOUS
    with pytest.raises(ValueError, match="ambiguous"):
        parse_tokens("t:labeler:operator")  # token "t:labeler" as operator, or "t" as labeler "operator"?
    with pytest.raises(ValueError, match="different roles or holders"):
        Credentials((("t", "labeler", "alice"), ("t", "labeler", "bob")))


def test_a_non_loopback_address_without_tokens_is_refused_unless_declared_insecure():
    open_settings = security_from_env({})
    open_settings.check("127.0.0.1:50051")
    with pytest.raises(ValueError, match="refusing to serve 0.0.0.0:50051 without authentication") as err:
        open_settings.check("0.0.0.0:50051")
    assert "ALLOOP_AUTH_TOKENS" in str(err.value) and "ALLOOP_ALLOW_INSECURE=1" in str(err.value)
    security_from_env({"ALLOOP_ALLOW_INSECURE": "1"}).check("0.0.0.0:50051")
    security_from_env({"ALLOOP_AUTH_TOKENS": "t:client"}).check("0.0.0.0:50051")
    with pytest.raises(ValueError, match="ALLOOP_ALLOW_INSECURE must be 1 or 0"):
        security_from_env({"ALLOOP_ALLOW_INSECURE": "maybe"})
    assert security_from_env({"ALLOOP_ALLOW_INSECURE": "on"}).allow_insecure
    # Mutual TLS authenticates every caller by certificate: no tokens needed off loopback.
    mutual = security_from_env({"ALLOOP_TLS_CERT": "c", "ALLOOP_TLS_KEY": "k", "ALLOOP_TLS_CLIENT_CA": "ca"})
    mutual.check("0.0.0.0:50051")
    with pytest.raises(ValueError, match="refusing to serve"):
        security_from_env({"ALLOOP_TLS_CERT": "c", "ALLOOP_TLS_KEY": "k"}).check("0.0.0.0:50051")


def test_server_limits_from_the_environment():
    assert limits_from_env({}) == ServerLimits()
    limits = limits_from_env(
        {"ALLOOP_GRPC_WORKERS": "8", "ALLOOP_MAX_STREAMS": "3", "ALLOOP_STREAM_IDLE_SECONDS": "2.5"}
    )
    assert (limits.workers, limits.max_streams, limits.stream_idle_seconds) == (8, 3, 2.5)
    assert ("grpc.max_connection_age_ms", 3_600_000) in limits.server_options()
    with pytest.raises(ValueError, match="ALLOOP_MAX_STREAMS must be between 1 and ALLOOP_GRPC_WORKERS - 1"):
        limits_from_env({"ALLOOP_GRPC_WORKERS": "8", "ALLOOP_MAX_STREAMS": "8"})
    with pytest.raises(ValueError, match="ALLOOP_MAX_CONCURRENT_RPCS"):
        limits_from_env({"ALLOOP_MAX_CONCURRENT_RPCS": "10"})
    with pytest.raises(ValueError, match="ALLOOP_GRPC_WORKERS must be an integer"):
        limits_from_env({"ALLOOP_GRPC_WORKERS": "many"})
    assert query_from_env({"ALLOOP_GRPC_WORKERS": "8", "ALLOOP_MAX_STREAMS": "3"}).limits.workers == 8
    assert trainer_from_env({"ALLOOP_STREAM_IDLE_SECONDS": "5"}).limits.stream_idle_seconds == 5


def test_query_bounds_from_the_environment():
    settings = query_from_env({"ALLOOP_MAX_POOLS": "3", "ALLOOP_MAX_LEASE_SECONDS": "600", "ALLOOP_MAX_QUERY_K": "7"})
    assert (settings.max_pools, settings.max_lease_seconds, settings.max_query_k) == (3, 600, 7)
    with pytest.raises(ValueError, match="ALLOOP_MAX_UPLOAD_ITEMS must be a positive integer"):
        query_from_env({"ALLOOP_MAX_UPLOAD_ITEMS": "0"})
    with pytest.raises(ValueError, match="ALLOOP_LEASE_SECONDS .* at most ALLOOP_MAX_LEASE_SECONDS"):
        query_from_env({"ALLOOP_MAX_LEASE_SECONDS": "60"})


def test_a_redis_password_comes_from_a_file_and_never_from_a_flag(tmp_path: Path):
    secret = tmp_path / "redis-password"
    secret.write_text("s3cret\n")
    common = common_from_env({"REDIS_URL": "redis://:inurl@redis:6379/0", "ALLOOP_REDIS_PASSWORD_FILE": str(secret)})
    assert common.redis_password == "s3cret"
    assert "s3cret" not in repr(common) and "inurl" not in repr(common)
    with pytest.raises(ValueError, match="ALLOOP_REDIS_PASSWORD_FILE: cannot read"):
        common_from_env({"ALLOOP_REDIS_PASSWORD_FILE": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        common_from_env({"ALLOOP_REDIS_PASSWORD_FILE": str(tmp_path / "empty")})
    parser = argparse.ArgumentParser()
    add_common_flags(parser)
    plain = apply_common_flags(common, parser.parse_args(["--redis-url", "redis://redis:6379/0"]))
    assert plain.redis_url == "redis://redis:6379/0"
    with pytest.raises(ValueError, match="process list"):
        apply_common_flags(common, parser.parse_args(["--redis-url", "redis://:pw@redis:6379/0"]))
