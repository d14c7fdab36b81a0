"""What every client shares: channels to the services and the addresses' defaults."""

from __future__ import annotations

import argparse
import os
import time

import grpc

from alloop.config import DEFAULT_QUERY_ADDRESS, DEFAULT_TRAINER_ADDRESS
from alloop.rpc.security import open_secure_channel
from alloop.v1 import query_pb2_grpc, trainer_pb2_grpc

MAX_MESSAGE_BYTES = int(os.environ.get("ALLOOP_MAX_MESSAGE_BYTES", 64 * 1024 * 1024))


def add_address_flags(parser: argparse.ArgumentParser, *, trainer: bool = False) -> None:
    parser.add_argument(
        "--query", default=os.environ.get("ALLOOP_QUERY_ADDRESS", DEFAULT_QUERY_ADDRESS),
        help="query service host:port (env ALLOOP_QUERY_ADDRESS)",
    )
    if trainer:
        parser.add_argument(
            "--trainer", default=os.environ.get("ALLOOP_TRAINER_ADDRESS", DEFAULT_TRAINER_ADDRESS),
            help="trainer service host:port (env ALLOOP_TRAINER_ADDRESS)",
        )


def open_channel(address: str, timeout: float = 30.0) -> grpc.Channel:
    """TLS when ALLOOP_TLS_CA is set; ALLOOP_TOKEN goes with every call as ``authorization: Bearer``."""
    channel = open_secure_channel(
        address,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise SystemExit(f"cannot reach a service at {address} within {timeout:.0f}s; is it running?") from None
    return channel


def query_stub(address: str) -> query_pb2_grpc.QueryServiceStub:
    return query_pb2_grpc.QueryServiceStub(open_channel(address))


def trainer_stub(address: str) -> trainer_pb2_grpc.TrainerServiceStub:
    return trainer_pb2_grpc.TrainerServiceStub(open_channel(address))


def describe(error: grpc.RpcError) -> str:
    return f"{error.code().name}: {error.details()}"  # type: ignore[attr-defined]


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def seconds(self) -> float:
        return time.monotonic() - self.started
