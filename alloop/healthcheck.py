"""``alloop-healthcheck``: ask a service's standard gRPC health service (``grpc.health.v1.Health/Check``) whether
it is SERVING; the images' HEALTHCHECK and docker-compose.yml run it.

    alloop-healthcheck --address 127.0.0.1:50051 [--service NAME] [--timeout SECONDS]

Exit status 0 when the service answers SERVING; 1 otherwise (NOT_SERVING, unknown service, unreachable, a bad
flag), with one line on stderr saying why. Docker reserves status 2, so a usage error exits 1 as well.

``--service ""`` (the default) is the server as a whole: both services report it NOT_SERVING while Redis is
unreachable. The query service also reports ``alloop.model`` (SERVING once it serves the published version).

The health service is open without a bearer token (:mod:`alloop.rpc.auth`), so none is needed; ``ALLOOP_TOKEN``
is sent when set. TLS is the clients' (:mod:`alloop.rpc.tls`): ``ALLOOP_TLS_CA`` turns it on,
``ALLOOP_TLS_CLIENT_CERT`` / ``ALLOOP_TLS_CLIENT_KEY`` present a client certificate (a server with
``ALLOOP_TLS_CLIENT_CA`` refuses the handshake without one), ``ALLOOP_TLS_SERVER_NAME`` names the certificate's
host when the address is an IP. Imports no TensorFlow: a check takes a fraction of a second.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from alloop.cli import add_version_flag
from alloop.rpc.security import open_secure_channel

PROG = "alloop-healthcheck"
SERVING = health_pb2.HealthCheckResponse.SERVING


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, and status 1: argparse's usual status 2 is reserved by Docker's HEALTHCHECK.
        self.exit(1, f"{self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Exit 0 if a service's gRPC health check answers SERVING, 1 otherwise.",
    )
    add_version_flag(parser)
    parser.add_argument("--address", required=True, help="host:port of the service (e.g. 127.0.0.1:50051)")
    parser.add_argument(
        "--service",
        default="",
        help="health service name; default '' (the server as a whole); the query service also has alloop.model",
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer (default 3)")
    return parser


def check(
    address: str, service: str = "", timeout: float = 3.0, env: Mapping[str, str] | None = None
) -> tuple[bool, str]:
    """(SERVING?, one line that says what the service answered or why it could not be asked)."""
    try:
        channel = open_secure_channel(address, env=os.environ if env is None else env)
    except ValueError as exc:  # a TLS setting that names no readable file, or a half-given client certificate
        return False, f"{address}: {exc}"
    name = repr(service) if service else "the server"
    try:
        with channel:
            stub = health_pb2_grpc.HealthStub(channel)
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    except grpc.RpcError as exc:
        code = exc.code()
        details = " ".join(str(exc.details() or "").split())
        if code == grpc.StatusCode.NOT_FOUND:
            return False, f"{address}: no health status for {name} (NOT_FOUND)"
        return False, f"{address}: {code.name if code else 'UNKNOWN'}: {details}"
    except ValueError as exc:  # a TLS file that cannot be read when the channel connects
        return False, f"{address}: {exc}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return response.status == SERVING, f"{address}: {name} is {status}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad flag (1, see _Parser)
        return 0 if exc.code in (0, None) else 1
    if args.timeout <= 0:
        print(f"{PROG}: --timeout must be positive, got {args.timeout}", file=sys.stderr)
        return 1
    if ":" not in args.address:
        print(f"{PROG}: --address must be host:port, got {args.address!r}", file=sys.stderr)
        return 1
    ok, line = check(args.address, args.service, args.timeout)
    print(f"{PROG}: {line}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
