"""TLS and mutual TLS on a real query server, with a CA and certificates generated here (``cryptography``)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from alloop.config import QuerySettings
from alloop.rpc.auth import MISSING_TOKEN, Credentials
from alloop.rpc.security import SecuritySettings, open_secure_channel
from alloop.rpc.tls import ServerTLS
from alloop.store.connection import connect
from query_service.server import RunningQueryService
from query_service.server import create_server as create_query_server
from tests.integration.generic_calls import SERVING, all_methods, bearer, call, common_settings, health_status

pytestmark = pytest.mark.integration

PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION  # GetModel before any version: the call went through
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


# --- a throwaway PKI ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _write(directory: Path, name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> Issued:
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Issued(cert_path, key_path)


class CA:
    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.files = _write(directory, name, self.key, self.cert)

    def issue(self, name: str, *, server: bool) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return _write(self.directory, name, key, builder.sign(self.key, hashes.SHA256()))


@dataclass(frozen=True)
class PKI:
    ca: CA
    server: Issued
    client: Issued
    other_ca: CA  # trusted by nobody: its certificates must be refused
    stranger: Issued  # a client certificate the other CA signed


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = CA(directory, "alloop-test-ca"), CA(directory, "other-ca")
    return PKI(
        ca,
        ca.issue("server", server=True),
        ca.issue("client", server=False),
        other,
        other.issue("stranger", server=False),
    )


# --- servers --------------------------------------------------------------------------------------------------------


@dataclass
class Server:
    running: RunningQueryService

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.running.port}"


def _start(redis_server, tmp_path_factory, security: SecuritySettings) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    client = connect(redis_server.url)
    common = common_settings(redis_server, tmp_path_factory.mktemp("tls-state"))
    running = create_query_server(QuerySettings(common=common, address="127.0.0.1:0", security=security), client)
    yield Server(running)
    running.stop(0)
    client.close()


@pytest.fixture(scope="module")
def tls_server(redis_server, tmp_path_factory, pki) -> Iterator[Server]:
    yield from _start(redis_server, tmp_path_factory, SecuritySettings(tls=ServerTLS(pki.server.cert, pki.server.key)))


@pytest.fixture(scope="module")
def mtls_server(redis_server, tmp_path_factory, pki) -> Iterator[Server]:
    tls = ServerTLS(pki.server.cert, pki.server.key, client_ca=pki.ca.files.cert)
    yield from _start(redis_server, tmp_path_factory, SecuritySettings(tls=tls))


TOKENS = {"lab-tls": "labeler", "cli-tls": "client", "op-tls": "operator"}


@pytest.fixture(scope="module")
def secured_server(redis_server, tmp_path_factory, pki) -> Iterator[Server]:
    """Tokens and mutual TLS together."""
    security = SecuritySettings(
        auth=Credentials(tuple(TOKENS.items())),
        tls=ServerTLS(pki.server.cert, pki.server.key, client_ca=pki.ca.files.cert),
    )
    yield from _start(redis_server, tmp_path_factory, security)


def env(
    pki: PKI,
    *,
    client: Issued | None = None,
    token: str | None = None,
    ca: Path | None = None,
    server_name: str = "localhost",
) -> dict[str, str]:
    out = {"ALLOOP_TLS_CA": str(ca or pki.ca.files.cert), "ALLOOP_TLS_SERVER_NAME": server_name}
    if client is not None:
        out.update(ALLOOP_TLS_CLIENT_CERT=str(client.cert), ALLOOP_TLS_CLIENT_KEY=str(client.key))
    if token is not None:
        out["ALLOOP_TOKEN"] = token
    return out


def get_model(ch: grpc.Channel, metadata=None) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    method = next(m for m in all_methods() if m.name == "GetModel")
    return call(ch, method, metadata=metadata, timeout=10).code


# --- TLS ------------------------------------------------------------------------------------------------------------


def test_tls_client_with_the_ca_gets_through(tls_server, pki):
    with open_secure_channel(tls_server.address, env=env(pki)) as ch:
        assert health_status(ch) == SERVING
        assert get_model(ch) == PRECONDITION


def test_tls_without_a_name_override_checks_the_certificate_for_the_address(tls_server, pki):
    """The server certificate names localhost (and 127.0.0.1), so both addresses verify without an override."""
    port = tls_server.running.port
    for address in (f"localhost:{port}", f"127.0.0.1:{port}"):
        with open_secure_channel(address, env={"ALLOOP_TLS_CA": str(pki.ca.files.cert)}) as ch:
            assert get_model(ch) == PRECONDITION, address


def test_plaintext_client_cannot_talk_to_a_tls_server(tls_server):
    with grpc.insecure_channel(tls_server.address) as ch:
        assert get_model(ch) == UNAVAILABLE
        with pytest.raises(grpc.RpcError) as err:
            health_status(ch)
        assert err.value.code() == UNAVAILABLE


def test_tls_client_refuses_a_server_it_cannot_verify(tls_server, pki):
    with open_secure_channel(tls_server.address, env=env(pki, ca=pki.other_ca.files.cert)) as ch:
        assert get_model(ch) == UNAVAILABLE  # signed by a CA the client does not trust
    with open_secure_channel(tls_server.address, env=env(pki, server_name="elsewhere.example")) as ch:
        assert get_model(ch) == UNAVAILABLE  # the certificate does not name the server


def test_tls_client_against_a_plaintext_server_fails(query_settings, redis_client, pki):
    running = create_query_server(query_settings, redis_client)
    try:
        with open_secure_channel(f"127.0.0.1:{running.port}", env=env(pki)) as ch:
            assert get_model(ch) == UNAVAILABLE
    finally:
        running.stop(0)


# --- mutual TLS -----------------------------------------------------------------------------------------------------


def test_mutual_tls_needs_a_client_certificate_from_the_ca(mtls_server, pki):
    with open_secure_channel(mtls_server.address, env=env(pki)) as ch:
        assert get_model(ch) == UNAVAILABLE  # no client certificate
    with open_secure_channel(mtls_server.address, env=env(pki, client=pki.stranger)) as ch:
        assert get_model(ch) == UNAVAILABLE  # a certificate the server's client CA did not sign
    with grpc.insecure_channel(mtls_server.address) as ch:
        assert get_model(ch) == UNAVAILABLE
    with open_secure_channel(mtls_server.address, env=env(pki, client=pki.client)) as ch:
        assert health_status(ch) == SERVING
        assert get_model(ch) == PRECONDITION


# --- tokens over TLS ------------------------------------------------------------------------------------------------


def test_tokens_and_mutual_tls_together(secured_server, pki):
    with open_secure_channel(secured_server.address, env=env(pki, client=pki.client)) as anonymous:
        outcome = call(anonymous, next(m for m in all_methods() if m.name == "GetModel"))
        assert (outcome.code, outcome.details) == (grpc.StatusCode.UNAUTHENTICATED, MISSING_TOKEN)
        assert health_status(anonymous) == SERVING  # health stays open over TLS too
        assert get_model(anonymous, metadata=bearer("lab-tls")) == PRECONDITION
    with open_secure_channel(secured_server.address, env=env(pki, client=pki.client, token="wrong")) as wrong:
        assert get_model(wrong) == grpc.StatusCode.UNAUTHENTICATED
    with open_secure_channel(secured_server.address, env=env(pki, client=pki.client, token="lab-tls")) as labeler:
        assert get_model(labeler) == PRECONDITION
        predict = next(m for m in all_methods() if m.name == "Predict")
        assert call(labeler, predict).code == grpc.StatusCode.PERMISSION_DENIED
    # The token travels as call credentials on the TLS channel, for every kind of call the query service has.
    with open_secure_channel(secured_server.address, env=env(pki, client=pki.client, token="op-tls")) as operator:
        for method in all_methods():
            if method.containing_service.name == "QueryService":
                assert call(operator, method).admitted, method.name
    # A token is no substitute for the client certificate.
    with open_secure_channel(secured_server.address, env=env(pki, token="op-tls")) as no_cert:
        assert get_model(no_cert) == UNAVAILABLE


def test_cli_open_channel_reads_tls_and_token_from_the_environment(secured_server, pki, monkeypatch):
    from clients.common import open_channel

    for key, value in env(pki, client=pki.client, token="cli-tls").items():
        monkeypatch.setenv(key, value)
    ch = open_channel(secured_server.address, timeout=10)
    try:
        assert get_model(ch) == PRECONDITION
    finally:
        ch.close()
