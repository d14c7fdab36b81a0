"""A service with a crash installed from outside: ``python -m tests.integration.fault_service``.

``ALLOOP_TEST_SERVICE`` names the service's server module (default ``trainer_service.server``; also
``query_service.server``). The product has no fault hooks. This wrapper installs them before the service starts, at
the two places where a crash can leave state half-written, and then runs the module's ``main`` unchanged:

- every Redis call that may write (a command, a pipeline, a script) counts as one *write*;
- every ``os.fsync`` counts as one *file write step* (a version directory fsyncs each file, then the directory).

``ALLOOP_TEST_KILL`` says where to SIGKILL the process: ``redis:N`` just before its N-th write (so N - 1 writes
happened), ``redis:NAME@THREAD:K`` just before the K-th write of that name from that thread (a point that timing
does not move: ``EVALSHA.<sha>@label-consumer:1`` is the first label write, however many polls come before it),
``fsync:N`` just before its N-th fsync; empty or unset: never. Thread names drop a trailing number (``round-3`` is
``round``, ``grpc-worker_2`` is ``grpc-worker``), so the request threads of a pool count as one. ``ALLOOP_TEST_TRACE=path``
appends one line per write or fsync (``redis <n> <NAME@THREAD> <k>``) with unbuffered writes, so the trace of a killed
process is complete up to the kill: a calibration run reads the points from it.
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import threading
from collections.abc import Callable
from typing import Any

import redis
import redis.client
from redis.cluster import ClusterPipeline, RedisCluster

# Commands that never change data: everything else counts as a write (scripts and stream reads in a consumer
# group included: XREADGROUP moves entries into the pending list).
READ_ONLY = frozenset(
    [
        "GET",
        "MGET",
        "HGET",
        "HMGET",
        "HGETALL",
        "HLEN",
        "HEXISTS",
        "HKEYS",
        "HVALS",
        "HSCAN",
        "ZCARD",
        "ZSCORE",
        "ZMSCORE",
        "ZRANGE",
        "ZRANGEBYSCORE",
        "ZREVRANGE",
        "ZRANK",
        "ZSCAN",
        "XLEN",
        "XPENDING",
        "XINFO",
        "XRANGE",
        "XREVRANGE",
        "SMEMBERS",
        "SCARD",
        "SISMEMBER",
        "SMISMEMBER",
        "SSCAN",
        "LRANGE",
        "LLEN",
        "LINDEX",
        "EXISTS",
        "TYPE",
        "TTL",
        "PTTL",
        "SCAN",
        "KEYS",
        "PING",
        "INFO",
        "ECHO",
        "SCRIPT",
        "CLIENT",
        "AUTH",
        "SELECT",
        "HELLO",
        "COMMAND",
        "CONFIG",
        "CLUSTER",
        "READONLY",
    ]
)


def thread_name() -> str:
    return re.sub(r"[-_]\d+$", "", threading.current_thread().name)


class Crash:
    def __init__(self, spec: str, trace: str | None) -> None:
        kind, _, rest = spec.partition(":")
        point, _, count = rest.rpartition(":")
        if spec and (kind not in ("redis", "fsync") or not count.isdigit() or int(count) < 1):
            raise SystemExit(f"ALLOOP_TEST_KILL={spec!r}: expected redis:N, redis:NAME@THREAD:K or fsync:N (N, K >= 1)")
        self.kind, self.point, self.at = (kind, point, int(count)) if spec else ("", "", 0)
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._trace = os.open(trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if trace else None

    def step(self, kind: str, what: str) -> None:
        with self._lock:
            named = f"{what}@{thread_name()}"
            n = self.counts[kind] = self.counts.get(kind, 0) + 1
            k = self.counts[named] = self.counts.get(named, 0) + 1
            if kind == self.kind and ((n, "") == (self.at, self.point) or (named, k) == (self.point, self.at)):
                os.kill(os.getpid(), signal.SIGKILL)
            if self._trace is not None:
                os.write(self._trace, f"{kind} {n} {named} {k}\n".encode())


def _name(args: tuple[Any, ...]) -> str:
    """The command's name; a script call is named by its script (``EVALSHA.<first 8 hex digits of its sha1>``), so
    each script counts on its own and the K-th call of one script is the same point whatever other scripts ran."""
    name = str(args[0]).upper().split()[0] if args else "?"
    return f"{name}.{str(args[1])[:8]}" if name == "EVALSHA" and len(args) > 1 else name


def _commands(pipe: Any) -> list[tuple[Any, ...]]:
    """The queued commands' arguments, of a plain pipeline or of a cluster one."""
    if isinstance(pipe, ClusterPipeline):
        return [tuple(c.args) for c in pipe._execution_strategy.command_queue]
    return [c[0] for c in pipe.command_stack]


def install(crash: Crash) -> None:
    """Count (and kill at) the writes of a plain client and of a cluster client alike."""
    fsync = os.fsync

    def counting(command: Callable[..., Any]) -> Callable[..., Any]:
        def execute_command(self: Any, *args: Any, **options: Any) -> Any:
            name = _name(args)
            # A script Redis does not hold yet is answered NOSCRIPT and writes nothing (redis-py then loads it and
            # calls again): not a write, or the same point would be a different call depending on what ran before.
            unloaded = name.startswith("EVALSHA.") and not command(self, "SCRIPT", "EXISTS", args[1])[0]
            if name not in READ_ONLY and not unloaded:
                crash.step("redis", name)
            return command(self, *args, **options)

        return execute_command

    def counting_pipeline(pipeline: Callable[..., Any]) -> Callable[..., Any]:
        def execute(self: Any, raise_on_error: bool = True) -> Any:
            writes = [n for n in map(_name, _commands(self)) if n not in READ_ONLY]
            if writes:
                crash.step("redis", "PIPELINE:" + ",".join(writes))
            return pipeline(self, raise_on_error)

        return execute

    def counted_fsync(fd: int) -> None:
        crash.step("fsync", "FSYNC")
        fsync(fd)

    for cls in (redis.Redis, RedisCluster):
        cls.execute_command = counting(cls.execute_command)  # type: ignore[method-assign]
    for pipe in (redis.client.Pipeline, ClusterPipeline):
        pipe.execute = counting_pipeline(pipe.execute)  # type: ignore[method-assign]
    os.fsync = counted_fsync


if __name__ == "__main__":
    install(Crash(os.environ.get("ALLOOP_TEST_KILL", ""), os.environ.get("ALLOOP_TEST_TRACE")))
    importlib.import_module(os.environ.get("ALLOOP_TEST_SERVICE") or "trainer_service.server").main()
