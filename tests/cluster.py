"""A real Redis Cluster on loopback for the tests: three masters, no replicas, made by ``redis-cli --cluster create``.

Each node is a redis-server child process (the binary the stores use, see :func:`redis_server_binary`) started with
``--cluster-enabled yes``; ``redis-cli`` (Debian's ``redis-tools``) assigns the 16,384 slots across them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from alloop.store.connection import EmbeddedRedis, free_port


def cluster_port() -> int:
    """A free loopback port whose cluster bus port (10,000 above it, the rule before Redis 7) is free too."""
    while True:
        port = free_port()
        if port > 55_535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port


class LocalCluster:
    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.directory = Path(directory)
        self.nodes = [
            EmbeddedRedis(
                self.directory / f"node{n}",
                port=cluster_port(),
                appendonly=False,
                extra_args=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str((self.directory / f"node{n}" / "nodes.conf").resolve()),
                    "--cluster-node-timeout",
                    "5000",
                ],
            )
            for n in range(masters)
        ]

    @property
    def url(self) -> str:
        """Any one node: the cluster client finds the rest."""
        return self.nodes[0].url

    def start(self, timeout: float = 30.0) -> LocalCluster:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is needed to create the test cluster: apt-get install redis-tools")
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        deadline = time.monotonic() + timeout
        clients = [redis.Redis(host="127.0.0.1", port=node.port, decode_responses=True) for node in self.nodes]
        try:
            while not all(c.cluster("info").get("cluster_state") == "ok" for c in clients):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the test cluster did not reach cluster_state:ok; see {self.directory}")
                time.sleep(0.1)
        finally:
            for c in clients:
                c.close()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
