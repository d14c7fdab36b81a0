"""Parsing of tokens, roles and TLS paths from the environment; the settings both services read."""

from __future__ import annotations

from pathlib import Path

import pytest

from alloop.config import QuerySettings, TrainerSettings, query_from_env, trainer_from_env
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
from alloop.rpc.security import SecuritySettings, is_loopback, security_from_env
from alloop.rpc.tls import client_tls_from_env, server_tls_from_env


def test_env_tokens_parse_with_white_space_and_colons_in_tokens():
    assert parse_tokens(" t1:labeler , t2:client,,a:b:c:operator ") == [
        ("t1", "labeler"), ("t2", "client"), ("a:b:c", "operator"),
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
    assert parse_tokens_file(path.read_text()) == [("lab-1", "labeler"), ("cli-1", "client"), ("op-1", "operator")]
    creds = credentials_from_env({"ALLOOP_AUTH_TOKENS_FILE": str(path), "ALLOOP_AUTH_TOKENS": "extra:client"})
    assert {t: creds.role_of(t) for t in ("lab-1", "cli-1", "op-1", "extra")} == {
        "lab-1": "labeler", "cli-1": "client", "op-1": "operator", "extra": "client",
    }


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ok labeler\nbad root\n", "line 2: unknown role 'root'"),
        ("lonely\n", "line 1: expected 'token role', got 1 field(s)"),
        ("a b c\n", "got 3 field(s)"),
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
        ("127.0.0.1:50051", True), ("localhost:1", True), ("[::1]:5", True), ("unix:/tmp/s", True),
        ("0.0.0.0:50051", False), ("[::]:50051", False), ("query:50051", False), ("10.0.0.5:1", False),
    ],
)
def test_loopback_addresses(address, loopback):
    assert is_loopback(address) is loopback
