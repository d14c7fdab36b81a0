"""TLS for the gRPC servers and clients, configured by PEM file paths in the environment.

Server: ``ALLOOP_TLS_CERT`` + ``ALLOOP_TLS_KEY`` turn TLS on; ``ALLOOP_TLS_CLIENT_CA`` also requires every client to
present a certificate signed by that CA (mutual TLS).

Client: ``ALLOOP_TLS_CA`` (the CA that signed the server's certificate) turns TLS on;
``ALLOOP_TLS_CLIENT_CERT`` + ``ALLOOP_TLS_CLIENT_KEY`` present a client certificate (mutual TLS);
``ALLOOP_TLS_SERVER_NAME`` checks the server's certificate against that name instead of the address' host
(for tests and for addressing a server by IP).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

from alloop.environment import ClientEnvironment, ServerEnvironment

CERT_ENV = "ALLOOP_TLS_CERT"
KEY_ENV = "ALLOOP_TLS_KEY"
CLIENT_CA_ENV = "ALLOOP_TLS_CLIENT_CA"
CA_ENV = "ALLOOP_TLS_CA"
CLIENT_CERT_ENV = "ALLOOP_TLS_CLIENT_CERT"
CLIENT_KEY_ENV = "ALLOOP_TLS_CLIENT_KEY"
SERVER_NAME_ENV = "ALLOOP_TLS_SERVER_NAME"


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class ServerTLS:
    cert: Path
    key: Path
    client_ca: Path | None = None  # set: mutual TLS, clients must present a certificate signed by it

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        pair = (_read(self.key, KEY_ENV), _read(self.cert, CERT_ENV))
        client_ca = _read(self.client_ca, CLIENT_CA_ENV) if self.client_ca else None
        return grpc.ssl_server_credentials(
            [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
        )


@dataclass(frozen=True)
class ClientTLS:
    ca: Path
    client_cert: Path | None = None
    client_key: Path | None = None
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca, CA_ENV),
            private_key=_read(self.client_key, CLIENT_KEY_ENV) if self.client_key else None,
            certificate_chain=_read(self.client_cert, CLIENT_CERT_ENV) if self.client_cert else None,
        )

    def options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def server_tls_from_env(env: Mapping[str, str]) -> ServerTLS | None:
    e = ServerEnvironment.read(env)
    return server_tls(e.tls_cert, e.tls_key, e.tls_client_ca)


def server_tls(cert: Path | None, key: Path | None, client_ca: Path | None) -> ServerTLS | None:
    """TLS from the three server variables' paths; None when neither a certificate nor a key is set."""
    if cert is None and key is None:
        if client_ca is not None:
            raise ValueError(f"{CLIENT_CA_ENV} (mutual TLS) needs TLS: set {CERT_ENV} and {KEY_ENV} too")
        return None
    if cert is None or key is None:
        raise ValueError(f"TLS needs both {CERT_ENV} and {KEY_ENV} (only {CERT_ENV if cert else KEY_ENV} is set)")
    return ServerTLS(cert, key, client_ca)


def client_tls_from_env(env: Mapping[str, str]) -> ClientTLS | None:
    e = ClientEnvironment.read(env)
    return client_tls(e.tls_ca, e.tls_client_cert, e.tls_client_key, e.tls_server_name)


def client_tls(ca: Path | None, cert: Path | None, key: Path | None, server_name: str | None) -> ClientTLS | None:
    """TLS from the client variables' values; None when no CA is set (plaintext)."""
    if (cert is None) != (key is None):
        raise ValueError(f"a client certificate needs both {CLIENT_CERT_ENV} and {CLIENT_KEY_ENV}")
    if ca is None:
        if cert is not None:
            raise ValueError(f"{CLIENT_CERT_ENV} (mutual TLS) needs TLS: set {CA_ENV} to the server's CA")
        return None
    return ClientTLS(ca, cert, key, server_name)


__all__ = ["ClientTLS", "ServerTLS", "client_tls_from_env", "server_tls_from_env"]
