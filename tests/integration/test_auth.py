"""Bearer tokens and roles on real servers (port 0) over real channels, for every method the proto declares.

The methods come from the service descriptors, not from a hand-written list: a new RPC added to the proto is
called here with every role, and ``test_every_proto_method_has_roles`` fails until it gets an entry in
``METHOD_ROLES`` (until then the server refuses it for everyone: deny by default).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from alloop.config import QuerySettings, TrainerSettings
from alloop.rpc.auth import (
    INVALID_TOKEN,
    METHOD_ROLES,
    MISSING_TOKEN,
    REFLECTION_METHOD,
    ROLES,
    AuthInterceptor,
    Credentials,
)
from alloop.rpc.security import SecuritySettings, open_secure_channel
from alloop.rpc.serving import new_server
from alloop.store.connection import connect
from query_service.server import create_server as create_query_server
from tests.integration.generic_calls import (
    SERVICES,
    SERVING,
    Outcome,
    all_methods,
    bearer,
    call,
    common_settings,
    health_status,
    methods_ids,
    path,
)
from tests.integration.services import channel
from trainer_service.server import create_server as create_trainer_server

pytestmark = pytest.mark.integration

TOKENS = {"labeler": "lab-token-1", "client": "cli-token-1", "operator": "op-token-1"}
CREDENTIALS = Credentials(tuple((token, role) for role, token in TOKENS.items()))
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED


@dataclass
class Served:
    port: int
    channel: grpc.Channel


@pytest.fixture(scope="module")
def channels(redis_server, tmp_path_factory) -> Iterator[dict[str, Served]]:
    """Both services with auth on (no training data: the trainer only answers), keyed by service full name."""
    security = SecuritySettings(auth=CREDENTIALS)
    client = connect(redis_server.url)
    common = common_settings(redis_server, tmp_path_factory.mktemp("auth-state"))
    query = create_query_server(QuerySettings(common=common, address="127.0.0.1:0", security=security), client)
    trainer = create_trainer_server(
        TrainerSettings(common=common, address="127.0.0.1:0", consumer="auth-test", security=security), client
    )
    opened = {
        "alloop.v1.QueryService": Served(query.port, channel(query.port)),
        "alloop.v1.TrainerService": Served(trainer.port, channel(trainer.port)),
    }
    yield opened
    for served in opened.values():
        served.channel.close()
    query.stop(0)
    trainer.stop(0)
    client.close()


def channel_for(channels: dict[str, Served], method) -> grpc.Channel:  # type: ignore[no-untyped-def]
    return channels[method.containing_service.full_name].channel


def test_every_proto_method_has_roles_and_every_entry_is_a_proto_method():
    in_proto = {path(method) for method in all_methods()}
    missing = in_proto - METHOD_ROLES.keys()
    assert not missing, f"give these RPCs roles in alloop/rpc/auth.py METHOD_ROLES: {sorted(missing)}"
    stale = METHOD_ROLES.keys() - in_proto - {REFLECTION_METHOD}
    assert not stale, f"METHOD_ROLES names methods the proto does not have: {sorted(stale)}"


@pytest.mark.parametrize("method", all_methods(), ids=list(methods_ids()))
def test_method_needs_a_valid_token_of_an_allowed_role(channels, method):
    ch = channel_for(channels, method)
    name = path(method)

    missing = call(ch, method)
    assert missing.code == UNAUTHENTICATED, missing
    assert missing.details == MISSING_TOKEN

    for metadata in (bearer("not-a-token"), bearer(TOKENS["operator"] + "x"), [("authorization", TOKENS["operator"])]):
        wrong = call(ch, method, metadata=metadata)
        expected = INVALID_TOKEN if metadata[0][1].startswith("Bearer") else MISSING_TOKEN
        assert (wrong.code, wrong.details) == (UNAUTHENTICATED, expected), (metadata, wrong)

    allowed = METHOD_ROLES[name]
    assert "operator" in allowed
    for role in ROLES:
        outcome = call(ch, method, metadata=bearer(TOKENS[role]))
        if role in allowed:
            assert outcome.admitted, f"{role} should be allowed to call {name}: {outcome}"
            assert outcome.code != grpc.StatusCode.UNIMPLEMENTED, outcome  # it reached the servicer
        else:
            assert outcome.code == PERMISSION_DENIED, f"{role} should be refused {name}: {outcome}"
            assert f"role '{role}' may not call {name}" in outcome.details
            assert ", ".join(sorted(allowed)) in outcome.details


def test_roles_match_the_documented_table():
    short = {name.rsplit("/", 1)[1]: roles for name, roles in METHOD_ROLES.items()}
    assert {m for m, r in short.items() if "labeler" in r} == {
        "LeaseTasks",
        "SubmitLabels",
        "GetModel",
        "WatchModels",
        "ServerReflectionInfo",
    }
    assert {m for m, r in short.items() if "client" in r} == {
        "SubmitPool",
        "ScorePool",
        "Query",
        "Predict",
        "GetModel",
        "WatchModels",
        "ServerReflectionInfo",
    }
    assert {m for m, r in short.items() if "operator" in r} == set(short)


def test_health_is_open_without_a_token(channels):
    for service, served in channels.items():
        assert health_status(served.channel) == SERVING
        assert health_status(served.channel, service) == SERVING
        assert (
            health_status(served.channel, service, metadata=bearer("garbage")) == SERVING
        )  # a bad token does not matter there


def test_reflection_describes_each_service_to_any_token_holder(channels):
    """What ``grpcurl list`` and ``grpcurl describe`` ask for, through a reflection client."""
    for service, served in channels.items():
        address = f"127.0.0.1:{served.port}"
        with open_secure_channel(address, env={"ALLOOP_TOKEN": TOKENS["labeler"]}) as ch:
            database = ProtoReflectionDescriptorDatabase(ch)
            assert service in set(database.get_services())
            described = descriptor_pool.DescriptorPool(database).FindServiceByName(service)
            wanted = next(s for s in SERVICES if s.full_name == service)
            assert {m.name for m in described.methods} == {m.name for m in wanted.methods}
        with open_secure_channel(address, env={}) as anonymous:
            with pytest.raises(grpc.RpcError) as refused:
                list(ProtoReflectionDescriptorDatabase(anonymous).get_services())
            assert refused.value.code() == UNAUTHENTICATED


def test_client_channel_sends_the_token_from_the_environment_on_every_kind_of_call(channels):
    """``open_secure_channel`` (what the CLI clients use) adds the bearer for unary and streaming calls alike."""
    for service, served in channels.items():
        address = f"127.0.0.1:{served.port}"
        with (
            open_secure_channel(address, env={"ALLOOP_TOKEN": TOKENS["operator"]}) as operator,
            open_secure_channel(address, env={"ALLOOP_TOKEN": "wrong"}) as wrong,
            open_secure_channel(address, env={}) as anonymous,
        ):
            for method in all_methods():
                if method.containing_service.full_name != service:
                    continue
                assert call(operator, method).admitted, path(method)
                assert call(wrong, method).code == UNAUTHENTICATED, path(method)
                assert call(anonymous, method).code == UNAUTHENTICATED, path(method)


# --- deny by default, and a refusal reads no request ---------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.deserialized = 0

    def deserialize(self, data: bytes) -> bytes:
        self.deserialized += 1
        return data


@pytest.fixture
def bare_server() -> Iterator[tuple[int, Recorder]]:
    """A server with one registered test method, Echo, open to ``client`` and ``operator`` only; Extra has no roles."""
    recorder = Recorder()
    roles = {"/t.Test/Echo": frozenset({"client", "operator"})}
    bound = new_server(
        "127.0.0.1:0",
        max_message_bytes=1024 * 1024,
        interceptors=[AuthInterceptor(CREDENTIALS, roles)],
    )
    server, port = bound.server, bound.port
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(
            lambda request, context: request, request_deserializer=recorder.deserialize
        ),
        "Extra": grpc.unary_unary_rpc_method_handler(
            lambda request, context: request, request_deserializer=recorder.deserialize
        ),
        "Stream": grpc.stream_stream_rpc_method_handler(
            lambda requests, context: iter(requests), request_deserializer=recorder.deserialize
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.Test", handlers),))
    server.start()
    yield port, recorder
    server.stop(0)


def raw(ch: grpc.Channel, name: str, token: str | None, *, stream: bool = False) -> Outcome:
    metadata = bearer(token) if token else None
    try:
        if stream:
            list(ch.stream_stream(name)(iter([b"hello"]), metadata=metadata, timeout=5))
        else:
            ch.unary_unary(name)(b"hello", metadata=metadata, timeout=5)
    except grpc.RpcError as exc:
        return Outcome(exc.code(), exc.details() or "")  # type: ignore[attr-defined]
    return Outcome(grpc.StatusCode.OK, "")


def test_a_method_without_roles_is_refused_even_to_the_operator(bare_server):
    port, _ = bare_server
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        for name in ("/t.Test/Extra", "/t.Test/Stream", "/t.Unknown/Method"):
            outcome = raw(ch, name, TOKENS["operator"], stream=name.endswith("Stream"))
            assert outcome.code == PERMISSION_DENIED, (name, outcome)
            assert "not open to any role" in outcome.details
        assert raw(ch, "/t.Test/Echo", TOKENS["operator"]).code == grpc.StatusCode.OK


def test_a_refused_call_never_reads_its_request(bare_server):
    port, recorder = bare_server
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        assert raw(ch, "/t.Test/Echo", None).code == UNAUTHENTICATED
        assert raw(ch, "/t.Test/Echo", "wrong").code == UNAUTHENTICATED
        assert raw(ch, "/t.Test/Echo", TOKENS["labeler"]).code == PERMISSION_DENIED
        assert raw(ch, "/t.Test/Stream", TOKENS["operator"], stream=True).code == PERMISSION_DENIED
        assert recorder.deserialized == 0
        assert raw(ch, "/t.Test/Echo", TOKENS["client"]).code == grpc.StatusCode.OK
        assert recorder.deserialized == 1


def test_auth_off_by_default_lets_anonymous_callers_in(query_settings, redis_client):
    assert not query_settings.security.auth.enabled
    running = create_query_server(query_settings, redis_client)
    try:
        with channel(running.port) as ch:
            assert (
                call(ch, method_named("GetModel")).code == grpc.StatusCode.FAILED_PRECONDITION
            )  # no model yet; not an auth error
    finally:
        running.stop(0)


def method_named(name: str):  # type: ignore[no-untyped-def]
    return next(m for m in all_methods() if m.name == name)
