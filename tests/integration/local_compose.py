"""docker-compose.yml's services as local processes: each service's own command with its own environment, so the
file can be run and checked where there is no Docker engine.

What is rewritten to run on one host, and nothing else:
- container addresses: a service's listening ``0.0.0.0:PORT`` becomes ``127.0.0.1:<free port>`` (per replica), a
  reference to another service (``redis:6379``) becomes that service's loopback port, and a healthcheck's
  ``127.0.0.1:PORT`` must name a port its service listens on;
- ``/run/secrets/NAME`` becomes the file ``make secrets`` writes for that compose secret (only for a service that
  lists the secret), volume mount points (``/models``, ``/state``, ``/data``) become folders of the test, shared
  between services as the named volume is;
- the Redis container's script runs as written but for what belongs to the image (its entrypoint, its ``redis``
  user) and a loopback port; its healthcheck runs as written against that port;
- the query replicas run without the packages only the trainer image has (requirements/trainer.lock minus
  requirements/query.lock), as the query image does.

The environment a process gets is the image's (the Dockerfile target's ENV) and the service's, rewritten as above,
on an otherwise empty environment. Services start in depends_on order, each once its dependencies' healthchecks
pass (the very commands compose runs).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from alloop.store.connection import free_port, redis_server_binary
from tests import synthetic
from tests.container_files import LOCKS, ROOT, env_of, load_compose, pins, service_env

REPLICAS = {"query": 2}
LOOPBACK_HOSTS = ("0.0.0.0", "127.0.0.1", "localhost")
HEALTH_TIMEOUT = 120.0


@dataclass
class Instance:
    service: str
    index: int
    argv: list[str]
    env: dict[str, str]
    healthcheck: list[str] | None  # argv to run, with the instance's env
    ports: dict[int, int]  # container port -> loopback port
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class LocalCompose:
    """docker-compose.yml's services as instances on this host (nothing runs until :meth:`up`)."""

    def __init__(
        self, tmp: Path, compose: dict[str, Any] | None = None, replicas: Mapping[str, int] = REPLICAS
    ) -> None:
        self.tmp = tmp
        self.compose = compose or load_compose()
        self.services: dict[str, dict[str, Any]] = self.compose["services"]
        self.volumes = set(self.compose.get("volumes") or {})
        self.bin = Path(sys.executable).parent
        subprocess.run(
            ["make", "-s", "-f", str(ROOT / "Makefile"), "secrets"], cwd=tmp, check=True, capture_output=True
        )
        self.secret_files = {
            name: (tmp / spec["file"]).resolve() for name, spec in (self.compose.get("secrets") or {}).items()
        }
        self.blocked = self._blocked_modules(tmp / "not-in-the-query-image")
        self.instances: dict[str, list[Instance]] = {}
        self.channels: list[grpc.Channel] = []  # the test's own, closed by down()
        # Listening ports first, so a reference to another service can be resolved whatever the order.
        self.listen = {name: self._listening_ports(name) for name in self.services}
        self.host_ports = {
            (name, i): {p: free_port() for p in self.listen[name]}
            for name in self.services
            for i in range(replicas.get(name, 1))
        }
        for name in self.services:
            self.instances[name] = [self._instance(name, i) for i in range(replicas.get(name, 1))]

    # What compose would give each container.

    def _listening_ports(self, name: str) -> list[int]:
        service = self.services[name]
        ports = [int(p) for v in service_env(service).values() for p in re.findall(r"^0\.0\.0\.0:(\d+)$", v)]
        if "build" not in service:  # an image of its own (Redis): the port its command sets, or Redis' default
            script = " ".join(self._command(service))
            ports.append(int(m.group(1)) if (m := re.search(r"--port (\d+)", script)) else 6379)
        for published in service.get("ports") or []:
            container = int(str(published).rsplit(":", 1)[1].split("/")[0])
            assert container in ports, f"{name} publishes container port {container} but listens on {ports}"
        return ports

    @staticmethod
    def _command(service: dict[str, Any]) -> list[str]:
        command = service.get("command")
        assert command, "every service names its command in docker-compose.yml"
        return list(command) if isinstance(command, list) else shlex.split(command)

    def _mounts(self, name: str) -> dict[str, Path]:
        mounts = {}
        for volume in self.services[name].get("volumes") or []:
            source, target = volume.split(":")[:2]
            if source in self.volumes:
                host = self.tmp / "volumes" / source
            else:
                assert source.startswith("."), f"{name}: bind mount {source} outside the project"
                host = self.tmp / "bind" / Path(source).name
            host.mkdir(parents=True, exist_ok=True)
            mounts[target] = host
        return mounts

    def workdir(self, name: str, index: int) -> Path:
        return self.tmp / "work" / f"{name}-{index}"

    def _rewrite(self, name: str, index: int, value: str, where: str) -> str:
        ports = self.host_ports[(name, index)]
        value = re.sub(r"(?<![\w/.-])/tmp/", f"{self.workdir(name, index)}/", value)  # the container's own /tmp

        def own(match: re.Match[str]) -> str:
            port = int(match.group(2))
            assert port in ports, f"{name} {where}: {match.group(0)} is no port {name} listens on ({sorted(ports)})"
            return f"127.0.0.1:{ports[port]}"

        value = re.sub(rf"\b({'|'.join(map(re.escape, LOOPBACK_HOSTS))}):(\d+)\b", own, value)
        for other in self.services:

            def theirs(match: re.Match[str], other: str = other) -> str:
                port = int(match.group(1))
                assert port in self.listen[other], f"{name} {where}: {other} does not listen on {port}"
                return f"127.0.0.1:{self.host_ports[(other, 0)][port]}"

            value = re.sub(rf"(?<=[/@]){re.escape(other)}:(\d+)\b", theirs, value)
        allowed = set(self.services[name].get("secrets") or [])

        def secret(match: re.Match[str]) -> str:
            assert match.group(1) in allowed, f"{name} {where}: {match.group(0)} is not among its secrets {allowed}"
            return str(self.secret_files[match.group(1)])

        value = re.sub(r"/run/secrets/([A-Za-z0-9_.-]+)", secret, value)
        for target, host in sorted(self._mounts(name).items(), key=lambda kv: -len(kv[0])):
            value = re.sub(rf"(?<![\w/]){re.escape(target)}(?=/|$|\s)", str(host), value)
        return value

    def _instance(self, name: str, index: int) -> Instance:
        service = self.services[name]
        workdir = self.workdir(name, index)  # the image's WORKDIR: the process' own, writable folder
        workdir.mkdir(parents=True)
        image_env = env_of(service["build"]["target"]) if "build" in service else {}
        env = {
            "PATH": os.pathsep.join([str(self.bin), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(workdir),
            "LANG": "C.UTF-8",
        }
        for key, value in {**image_env, **service_env(service)}.items():
            env[key] = self._rewrite(name, index, value, key)
            if key in service_env(service) and env[key].startswith("/") and not env[key].startswith(str(self.tmp)):
                raise AssertionError(f"{name}: {key}={value} is on no volume of the service")
        if name in self.blocked_services():
            env["PYTHONPATH"] = str(self.blocked)
        argv = [self._rewrite(name, index, part, "command") for part in self._command(service)]
        health = service.get("healthcheck")
        check = None
        if health and health.get("test"):
            test = list(health["test"])
            kind, rest = test[0], test[1:]
            rest = [self._rewrite(name, index, part, "healthcheck") for part in rest]
            check = rest if kind == "CMD" else ["sh", "-c", rest[0]]
        return Instance(name, index, argv, env, check, self.host_ports[(name, index)], workdir)

    def blocked_services(self) -> set[str]:
        return {
            n for n, s in self.services.items() if isinstance(s.get("build"), dict) and s["build"]["target"] == "query"
        }

    @staticmethod
    def _blocked_modules(folder: Path) -> Path:
        """Packages that shadow, for the query replicas, every module the trainer image has and the query image
        lacks: importing one fails as it would there."""
        only_trainer = set(pins(LOCKS["trainer"])) - set(pins(LOCKS["query"]))
        assert only_trainer, "the trainer extra adds nothing to the trainer image?"
        distributions = importlib.metadata.packages_distributions()
        for module, dists in distributions.items():
            if any(re.sub(r"[-_.]+", "-", d).lower() in only_trainer for d in dists) and module.isidentifier():
                package = folder / module
                package.mkdir(parents=True, exist_ok=True)
                (package / "__init__.py").write_text(
                    f"raise ModuleNotFoundError({module!r} + ' is not in the query image (requirements/query.lock)', "
                    f"name={module!r})\n"
                )
        return folder

    # Running.

    def order(self) -> list[str]:
        done: list[str] = []

        def visit(name: str, seen: tuple[str, ...] = ()) -> None:
            assert name not in seen, f"depends_on cycle through {name}"
            for dependency in self.services[name].get("depends_on") or {}:
                visit(dependency, (*seen, name))
            if name not in done:
                done.append(name)

        for name in self.services:
            visit(name)
        return done

    def prepare_redis_script(self, instance: Instance) -> None:
        """The Redis image's parts: its entrypoint (which drops to its user) and that user's chown; a loopback port
        and a folder for /data (the image's working directory, its volume)."""
        assert instance.argv[:2] == ["sh", "-c"], instance.argv
        script = instance.argv[2]
        assert re.search(r"^\s*chown redis:redis \S+\s*$", script, flags=re.M), script
        script = re.sub(r"^\s*chown redis:redis \S+\s*$", "", script, flags=re.M)
        port = instance.ports[self.listen[instance.service][0]]
        data = self._mounts(instance.service).get("/data", instance.workdir)
        script, count = re.subn(
            r"exec docker-entrypoint\.sh redis-server(.*)$",
            lambda m: (
                f"exec {shlex.quote(redis_server_binary())}{m.group(1)} --port {port} --bind 127.0.0.1 "
                f"--dir {shlex.quote(str(data))}"
            ),
            script,
            flags=re.M,
        )
        assert count == 1, script
        instance.argv = ["sh", "-c", script]
        cli = Path(redis_server_binary()).with_name("redis-cli")
        cli = cli if cli.exists() else Path(shutil.which("redis-cli") or "redis-cli")
        assert instance.healthcheck is not None
        instance.healthcheck = [
            part.replace("redis-cli", f"{shlex.quote(str(cli))} -p {port}") for part in instance.healthcheck
        ]

    def start(self, instance: Instance) -> None:
        instance.log = self.tmp / "logs" / f"{instance.name}.log"
        instance.log.parent.mkdir(exist_ok=True)
        argv = list(instance.argv)
        if argv[0] != "sh":
            resolved = shutil.which(argv[0], path=instance.env["PATH"])
            assert resolved, f"{instance.service}: command {argv[0]} is not installed (a console script in pyproject?)"
            argv[0] = resolved
        with instance.log.open("ab") as log:
            instance.process = subprocess.Popen(
                argv, cwd=instance.workdir, env=instance.env, stdout=log, stderr=subprocess.STDOUT
            )

    def healthy(self, instance: Instance) -> bool:
        assert instance.healthcheck, f"{instance.service} has no healthcheck"
        result = subprocess.run(
            instance.healthcheck, env=instance.env, cwd=instance.workdir, capture_output=True, timeout=30, check=False
        )
        return result.returncode == 0

    def wait_healthy(self, instances: list[Instance], timeout: float = HEALTH_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(instances)
        while waiting:
            for instance in list(waiting):
                assert instance.process is not None
                if instance.process.poll() is not None:
                    raise AssertionError(f"{instance.name} exited ({instance.process.returncode}):\n{instance.tail()}")
                if self.healthy(instance):
                    waiting.remove(instance)
            if waiting and time.monotonic() > deadline:
                raise AssertionError(
                    "\n\n".join(f"{i.name} not healthy within {timeout:.0f}s:\n{i.tail()}" for i in waiting)
                )
            if waiting:
                time.sleep(1.0)  # each check starts a process, as compose's would: not too often on 2 cores

    def up(self) -> None:
        """Start the services as compose does: each once its dependencies are healthy."""
        started: set[str] = set()
        for name in self.order():
            dependencies = self.services[name].get("depends_on") or {}
            for dependency, condition in dependencies.items():
                assert condition == {"condition": "service_healthy"}, f"{name} waits for {dependency}: {condition}"
                if dependency not in started:
                    raise AssertionError(f"{name} depends on {dependency}, which is not started")
                self.wait_healthy(self.instances[dependency])
            for instance in self.instances[name]:
                if name == "redis":
                    self.prepare_redis_script(instance)
                self.start(instance)
            started.add(name)
        self.wait_healthy([i for group in self.instances.values() for i in group])

    def down(self) -> None:
        for channel in self.channels:
            channel.close()
        running = [i for group in self.instances.values() for i in group if i.process and i.process.poll() is None]
        for instance in running:
            instance.process.terminate()  # type: ignore[union-attr]
        for instance in running:
            try:
                instance.process.wait(timeout=15)  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                instance.process.kill()  # type: ignore[union-attr]
                instance.process.wait()  # type: ignore[union-attr]

    def tokens(self) -> dict[str, str]:
        path = self.secret_files["alloop_tokens"]
        return {line.split()[1]: line.split()[0] for line in path.read_text().splitlines() if line.strip()}


def write_data(folder: Path) -> dict[str, Path]:
    """What `alloop-prepare --out data` writes, small and synthetic."""
    return synthetic.write_corpus(folder)
