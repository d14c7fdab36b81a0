"""What every client shares: channels to the services and the addresses' defaults."""

from __future__ import annotations

import argparse
import os
import time

import grpc

from alloop.cli import add_version_flag
from alloop.config import DEFAULT_POOL
from alloop.environment import ClientEnvironment
from alloop.rpc.security import open_secure_channel
from alloop.v1 import query_pb2_grpc, trainer_pb2_grpc


def environment(*names: str) -> ClientEnvironment:
    """The client variables of this process' environment (only ``names`` when given, the others at their
    defaults); a bad value exits with its one-line message."""
    env = {name: os.environ[name] for name in names if name in os.environ} if names else os.environ
    try:
        return ClientEnvironment.read(env)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


def add_address_flags(parser: argparse.ArgumentParser, *, trainer: bool = False) -> None:
    """The flags every client shares: ``--version``, and each service's address as ``--<service>-address``, named
    like the variable that sets it."""
    add_version_flag(parser)
    env = environment("ALLOOP_QUERY_ADDRESS", "ALLOOP_TRAINER_ADDRESS")  # read before --help: nothing that can fail
    parser.add_argument(
        "--query-address",
        dest="query",
        default=env.query_address,
        metavar="HOST:PORT",
        help="query service (env ALLOOP_QUERY_ADDRESS, default %(default)s)",
    )
    if trainer:
        parser.add_argument(
            "--trainer-address",
            dest="trainer",
            metavar="HOST:PORT",
            default=env.trainer_address,
            help="trainer service (env ALLOOP_TRAINER_ADDRESS, default %(default)s)",
        )


def add_pool_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pool", default=DEFAULT_POOL, help="pool name (default %(default)s)")


def add_count_flag(parser: argparse.ArgumentParser, *, default: int | None, what: str) -> None:
    parser.add_argument("-k", "--count", type=int, default=default, required=default is None, help=what)


def open_channel(address: str, timeout: float = 30.0) -> grpc.Channel:
    """TLS when ALLOOP_TLS_CA is set; ALLOOP_TOKEN goes with every call as ``authorization: Bearer``."""
    largest = environment().max_message_bytes
    channel = open_secure_channel(
        address,
        options=[
            ("grpc.max_receive_message_length", largest),
            ("grpc.max_send_message_length", largest),
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
    return f"{error.code().name}: {error.details()}"


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def seconds(self) -> float:
        return time.monotonic() - self.started
