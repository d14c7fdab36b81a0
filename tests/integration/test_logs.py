"""Log lines as operators read them: JSON or plain, carrying the request id and method of the call that logged."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import grpc
import pytest

from alloop import logs
from alloop.rpc.serving import new_server
from alloop.telemetry import Metrics

pytestmark = pytest.mark.integration


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield io.StringIO()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_settings_name_the_variable_when_wrong():
    assert logs.settings_from_env({}) == ("INFO", "plain")
    assert logs.settings_from_env({"ALLOOP_LOG_LEVEL": "debug", "ALLOOP_LOG_FORMAT": "JSON"}) == ("DEBUG", "json")
    with pytest.raises(ValueError, match="ALLOOP_LOG_LEVEL=.loud.; choose one of DEBUG, INFO"):
        logs.settings_from_env({"ALLOOP_LOG_LEVEL": "loud"})
    with pytest.raises(ValueError, match="ALLOOP_LOG_FORMAT=.xml.; choose one of plain, json"):
        logs.settings_from_env({"ALLOOP_LOG_FORMAT": "xml"})


def test_a_call_logs_json_lines_with_its_request_id_method_and_pool(captured):
    logs.configure("query", {"ALLOOP_LOG_FORMAT": "json"}, stream=captured)
    bound = new_server("127.0.0.1:0", max_message_bytes=1 << 20, metrics=Metrics())

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        with logs.context(pool="reviews"):
            logging.getLogger("t").warning("handled %d bytes", len(request))
        return request

    def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for n in range(2):
            logging.getLogger("t").info("response %d", n)
            yield request

    bound.server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "t.Test",
                {
                    "Echo": grpc.unary_unary_rpc_method_handler(echo),
                    "Stream": grpc.unary_stream_rpc_method_handler(stream),
                },
            ),
        )
    )
    bound.server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{bound.port}") as ch:
            ch.unary_unary("/t.Test/Echo")(b"abc", metadata=[("x-request-id", "req-42")], timeout=10)
            list(ch.unary_stream("/t.Test/Stream")(b"x", timeout=10))
    finally:
        bound.server.stop(0)
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    echoed = next(line for line in lines if line["message"] == "handled 3 bytes")
    assert echoed["request_id"] == "req-42" and echoed["method"] == "/t.Test/Echo" and echoed["pool"] == "reviews"
    assert echoed["level"] == "WARNING" and echoed["service"] == "query" and "time" in echoed
    streamed = [line for line in lines if line["message"].startswith("response")]
    assert len(streamed) == 2 and {line["method"] for line in streamed} == {"/t.Test/Stream"}
    assert len({line["request_id"] for line in streamed}) == 1  # one made up for the call, the same on each line


def test_plain_lines_carry_the_context_after_the_message(captured):
    logs.configure("trainer", {"ALLOOP_LOG_LEVEL": "INFO"}, stream=captured)
    with logs.context(request_id="r1", model_version=7):
        logging.getLogger("t").info("published")
    logging.getLogger("t").debug("not shown at INFO")
    (line,) = captured.getvalue().splitlines()
    assert line.endswith("trainer INFO published [request_id=r1 model_version=7]")
