"""Readers for the files that describe the containers (Dockerfile, .dockerignore, docker-compose.yml, the lock files),
shared by tests/unit/test_dockerfile.py, tests/unit/test_compose.py and tests/integration/test_compose_stack.py."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
TARGETS = ("query", "trainer")  # the final images: `docker build --target query` / `--target trainer`
LOCKS = {"query": ROOT / "requirements" / "query.lock", "trainer": ROOT / "requirements" / "trainer.lock"}
BUILD_LOCK = ROOT / "requirements" / "build.lock"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: RUN, COPY, ...
    args: str  # the rest of the logical line, continuations joined
    line: int


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages in order, each with its instructions (comments dropped, continuation lines joined)."""
    stages: list[Stage] = []
    logical, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if logical and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not logical:
            start = number
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, args = logical.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        logical = ""
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else f"stage{len(stages)}"
            stages.append(Stage(name, words[0]))
        elif not stages:
            raise ValueError(f"Dockerfile line {start}: {keyword} before the first FROM")
        else:
            stages[-1].instructions.append(Instruction(keyword, args, start))
    return stages


def stages() -> dict[str, Stage]:
    return {s.name: s for s in parse_dockerfile(DOCKERFILE.read_text())}


def chain(target: str, by_name: dict[str, Stage] | None = None) -> list[Stage]:
    """The stage and the stages it is built FROM, base first (what the image holds)."""
    by_name = by_name or stages()
    out = []
    name: str | None = target
    while name in by_name:
        out.insert(0, by_name[name])
        name = by_name[name].base
    return out


def exec_form(args: str) -> list[str]:
    """``["a", "b"]`` (JSON) or a shell form split like a shell would."""
    import json

    args = args.strip()
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def env_of(target: str) -> dict[str, str]:
    """The ENV a target's image carries (its own and its bases')."""
    env: dict[str, str] = {}
    for stage in chain(target):
        for instruction in stage.all("ENV"):
            words = shlex.split(instruction.args)
            if len(words) >= 2 and "=" not in words[0]:
                env[words[0]] = " ".join(words[1:])  # the legacy `ENV key value` form
                continue
            for word in words:
                key, _, value = word.partition("=")
                env[key] = value
    return env


def user_of(target: str) -> str | None:
    user = None
    for stage in chain(target):
        for instruction in stage.all("USER"):
            user = instruction.args.strip()
    return user


def healthcheck_of(target: str) -> tuple[dict[str, str], list[str]] | None:
    """(options, command) of the target's last HEALTHCHECK, or None."""
    found = None
    for stage in chain(target):
        for instruction in stage.all("HEALTHCHECK"):
            found = instruction.args
    if found is None or found.strip().upper() == "NONE":
        return None
    options: dict[str, str] = {}
    rest = found
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        key, _, value = option[2:].partition("=")
        options[key] = value
        rest = rest.strip()
    keyword, _, command = rest.partition(" ")
    assert keyword.upper() == "CMD", found
    return options, exec_form(command)


# --- .dockerignore ----------------------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def dockerignore_patterns(text: str | None = None) -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes?, regex) per line of .dockerignore, as Docker reads it (later lines win, ``!`` re-includes)."""
    text = DOCKERIGNORE.read_text() if text is None else text
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line[1:].strip() if negate else line
        line = line.strip("/") or "."
        out.append((not negate, _pattern_regex(line)))
    return out


def excluded(path: str, patterns: list[tuple[bool, re.Pattern[str]]] | None = None) -> bool:
    """Whether Docker leaves ``path`` (relative to the context) out of the build context: the last pattern that
    matches the path or one of its parent folders decides."""
    patterns = dockerignore_patterns() if patterns is None else patterns
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for excludes, regex in patterns:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            verdict = excludes
    return verdict


# --- compose ----------------------------------------------------------------------------------------------------


def load_compose(text: str | None = None) -> dict[str, Any]:
    """docker-compose.yml as compose reads it: anchors and ``<<`` merges resolved, ``$$`` unescaped to ``$``.
    Any other ``$`` (an interpolated ${VAR}) is refused: the file takes nothing from the operator's shell."""
    import yaml

    text = COMPOSE.read_text() if text is None else text
    data = yaml.safe_load(text)

    def unescape(value: Any) -> Any:
        if isinstance(value, str):
            if re.search(r"(?<!\$)\$(?!\$)", value.replace("$$", "")):
                raise ValueError(f"docker-compose.yml interpolates a variable from the environment: {value!r}")
            return value.replace("$$", "$")
        if isinstance(value, list):
            return [unescape(v) for v in value]
        if isinstance(value, dict):
            return {k: unescape(v) for k, v in value.items()}
        return value

    return unescape(data)


def service_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


# --- lock files -------------------------------------------------------------------------------------------------


def pins(lock: Path) -> dict[str, str]:
    """{normalized name: version} of a pip-compile lock."""
    text = lock.read_text()
    return {normalize(n): v for n, v in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", text, flags=re.M)}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match is not None, requirement
    return normalize(match.group(0))


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())
