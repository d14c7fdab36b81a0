"""Security settings both services share (bearer tokens and TLS), and the client side's channel.

Server environment: ``ALLOOP_AUTH_TOKENS`` / ``ALLOOP_AUTH_TOKENS_FILE`` (see :mod:`alloop.rpc.auth`),
``ALLOOP_TLS_CERT`` / ``ALLOOP_TLS_KEY`` / ``ALLOOP_TLS_CLIENT_CA`` (see :mod:`alloop.rpc.tls`).
Client environment: ``ALLOOP_TOKEN``, ``ALLOOP_TLS_CA``, ``ALLOOP_TLS_CLIENT_CERT`` / ``ALLOOP_TLS_CLIENT_KEY``,
``ALLOOP_TLS_SERVER_NAME``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import grpc

from alloop.environment import ClientEnvironment, ServerEnvironment
from alloop.rpc.auth import (
    CLIENT_TOKEN_ENV,
    AuthInterceptor,
    BearerCallCredentials,
    BearerInterceptor,
    Credentials,
    credentials_from,
)
from alloop.rpc.tls import ServerTLS, client_tls, server_tls

log = logging.getLogger(__name__)


def is_loopback(address: str) -> bool:
    """Whether ``host:port`` (or ``unix:path``) names this machine only."""
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = address.rsplit(":", 1)[0] if ":" in address else address
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


INSECURE_ENV = "ALLOOP_ALLOW_INSECURE"
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class SecuritySettings:
    """Default: authentication off, plaintext: allowed on loopback only. A non-loopback address without tokens is
    refused at start-up unless ``allow_insecure`` (ALLOOP_ALLOW_INSECURE=1) says the network is trusted."""

    auth: Credentials = field(default_factory=Credentials)
    tls: ServerTLS | None = None
    allow_insecure: bool = False

    def interceptors(self) -> list[grpc.ServerInterceptor]:
        return [AuthInterceptor(self.auth)] if self.auth.enabled else []

    def check(self, address: str) -> None:
        """Raise ValueError for a non-loopback address that authenticates nobody (no tokens, no mutual TLS),
        unless ``allow_insecure``."""
        authenticated = self.auth.enabled or (self.tls is not None and self.tls.mutual)
        if not authenticated and not is_loopback(address) and not self.allow_insecure:
            raise ValueError(
                f"refusing to serve {address} without authentication: any host that reaches it could call every "
                "RPC. Set ALLOOP_AUTH_TOKENS or ALLOOP_AUTH_TOKENS_FILE, bind a loopback address, or set "
                f"{INSECURE_ENV}=1 if the network is trusted"
            )

    def add_port(self, server: grpc.Server, address: str) -> int:
        """Bind ``address`` with TLS when configured, and say at start-up what protects it (:meth:`check` first)."""
        self.check(address)
        if self.tls is not None:
            port = server.add_secure_port(address, self.tls.credentials())
        else:
            port = server.add_insecure_port(address)
        if not self.auth.enabled:
            log.warning(
                "authentication is OFF on %s: any caller may call every RPC "
                "(set ALLOOP_AUTH_TOKENS or ALLOOP_AUTH_TOKENS_FILE to turn it on)",
                address,
            )
        elif self.tls is None and not is_loopback(address):
            log.warning("bearer tokens travel in plaintext on %s: set ALLOOP_TLS_CERT and ALLOOP_TLS_KEY", address)
        log.info(
            "%s: auth %s, %s",
            address,
            repr(self.auth),
            "plaintext" if self.tls is None else ("mutual TLS" if self.tls.mutual else "TLS"),
        )
        return port


def security_from_env(env: Mapping[str, str]) -> SecuritySettings:
    return security_from(ServerEnvironment.read(env))


def security_from(e: ServerEnvironment) -> SecuritySettings:
    return SecuritySettings(
        auth=credentials_from(e.auth_tokens, e.auth_tokens_file),
        tls=server_tls(e.tls_cert, e.tls_key, e.tls_client_ca),
        allow_insecure=e.allow_insecure,
    )


def open_secure_channel(
    address: str,
    options: Sequence[tuple[str, object]] = (),
    env: Mapping[str, str] | None = None,
) -> grpc.Channel:
    """A channel that uses TLS when ``ALLOOP_TLS_CA`` is set and sends ``ALLOOP_TOKEN`` as a bearer on every call."""
    e = ClientEnvironment.read(os.environ if env is None else env)
    tls = client_tls(e.tls_ca, e.tls_client_cert, e.tls_client_key, e.tls_server_name)
    token = e.token
    options = list(options)
    if tls is not None:
        credentials = tls.credentials()
        if token:
            credentials = grpc.composite_channel_credentials(
                credentials,
                grpc.metadata_call_credentials(BearerCallCredentials(token), name="alloop-bearer"),
            )
        return grpc.secure_channel(address, credentials, options=[*options, *tls.options()])
    channel = grpc.insecure_channel(address, options=options)
    if token is None:
        return channel
    if not is_loopback(address):
        log.warning("sending %s in plaintext to %s: set ALLOOP_TLS_CA to use TLS", CLIENT_TOKEN_ENV, address)
    return grpc.intercept_channel(channel, BearerInterceptor(token))


__all__ = ["SecuritySettings", "is_loopback", "open_secure_channel", "security_from", "security_from_env"]
