"""The Kubernetes manifests under deploy/kubernetes are valid and agree with the code, offline.

- Every object validates against the schemas of one Kubernetes version that `kubernetes-validate` bundles, in
  strict mode (an unknown or misspelt field fails), and every kustomization lists files that exist.
- Every environment variable the manifests set (container `env`, and the keys of ConfigMaps used by `envFrom`) is
  one the code reads: a string literal in alloop/, query_service/ or trainer_service/ (docstrings excepted).
- The gRPC probes ask the ports the services listen on (ALLOOP_QUERY_ADDRESS / ALLOOP_TRAINER_ADDRESS), and
  readiness the service's own health entry, named from the .proto files.
- No Secret with a value is committed, nothing sets ALLOOP_ALLOW_INSECURE, no password sits in a URL.
- `kubectl kustomize` (kubectl bundles kustomize; the machines have kubectl) renders every kustomization, and the
  rendered objects pass the same checks.

Nothing here skips: without `kubernetes_validate` (the dev extra installs it) the module fails to import.
"""

from __future__ import annotations

import ast
import posixpath
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate  # not optional: CI installs it with the dev extra
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33.0"  # one of the versions kubernetes-validate bundles; strict schemas
CODE_DIRS = ("alloop", "query_service", "trainer_service")
VARIABLE = re.compile(r"\b(ALLOOP_[A-Z0-9_]+|REDIS_URL)\b")
KUSTOMIZATION_NAMES = {"kustomization.yaml", "kustomization.yml", "Kustomization"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
SECRET_NAME = "alloop-secrets"
SECRET_KEYS = {"redis_password", "alloop_tokens"}  # the files `make secrets` writes under secrets/
# Variables for containers that are not alloop's (none today): the check below allows only these besides the
# code's own.
NOT_ALLOOP: frozenset[str] = frozenset()
# Each service's entry point, the variable it listens on, and its .proto file.
SERVICES = {
    "alloop-query-service": ("ALLOOP_QUERY_ADDRESS", "query.proto", "QueryService"),
    "alloop-trainer-service": ("ALLOOP_TRAINER_ADDRESS", "trainer.proto", "TrainerService"),
}


# --- loading -----------------------------------------------------------------------------------------------------
def manifest_files() -> list[Path]:
    files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"} and p.name not in KUSTOMIZATION_NAMES)
    assert files, f"no manifests under {DEPLOY}"
    return files


def kustomization_dirs() -> list[Path]:
    dirs = sorted({p.parent for p in DEPLOY.rglob("*") if p.name in KUSTOMIZATION_NAMES})
    assert DEPLOY / "base" in dirs, "deploy/kubernetes/base has no kustomization.yaml"
    return dirs


def kustomization(directory: Path) -> dict[str, Any]:
    (path,) = [directory / n for n in KUSTOMIZATION_NAMES if (directory / n).is_file()]
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


def documents(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    for doc in docs:
        assert isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc, f"{path}: not a Kubernetes object"
    return docs


@cache
def committed_objects() -> tuple[dict[str, Any], ...]:
    return tuple(doc for path in manifest_files() for doc in documents(path))


@cache
def rendered(directory: Path) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl not found: install it (it bundles kustomize) to render deploy/kubernetes offline"
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, f"kubectl kustomize {directory.relative_to(ROOT)}:\n{result.stderr}"
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d is not None)


def name(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] == "Pod":
        return obj["spec"]
    if obj["kind"] in WORKLOAD_KINDS:
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def config_maps(objects: tuple[dict[str, Any], ...]) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}


def environment(container: dict[str, Any], objects: tuple[dict[str, Any], ...]) -> dict[str, str]:
    """The variables a container gets: its ConfigMaps' keys (envFrom), then its own `env`, which win."""
    maps = config_maps(objects)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert "secretRef" not in source, "envFrom a Secret: its keys cannot be checked; mount it as files instead"
        ref = source["configMapRef"]["name"]
        assert ref in maps, f"container {container['name']}: envFrom names ConfigMap {ref}, not in the manifests"
        prefix = source.get("prefix", "")
        env.update({prefix + key: value for key, value in maps[ref].items()})
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", "")
    return env


def workload_containers(
    objects: tuple[dict[str, Any], ...],
) -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(workload, its pod spec, container) for every container, init containers included."""
    for obj in objects:
        spec = pod_spec(obj)
        if spec is not None:
            for container in containers(spec):
                yield obj, spec, container


def alloop_service(container: dict[str, Any]) -> str | None:
    command = container.get("command") or container.get("args") or []
    return command[0] if command and command[0] in SERVICES else None


@cache
def variables_the_code_reads() -> frozenset[str]:
    """Names in the string literals of the services' source (docstrings excepted: a name only documented is not
    read). Scanned, not imported, so a refactoring of alloop/environment.py does not break this test."""
    found: set[str] = set()
    for directory in CODE_DIRS:
        for path in sorted((ROOT / directory).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            docstrings = {
                id(node.body[0].value)
                for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and node.body
                and isinstance(node.body[0], ast.Expr)
                and isinstance(node.body[0].value, ast.Constant)
                and isinstance(node.body[0].value.value, str)
            }
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                    found.update(VARIABLE.findall(node.value))
    assert {"REDIS_URL", "ALLOOP_QUERY_ADDRESS", "ALLOOP_TRAINER_ADDRESS"} <= found, "the scan found too little"
    return frozenset(found)


def health_service_name(proto: str, service: str) -> str:
    text = (ROOT / "proto" / "alloop" / "v1" / proto).read_text()
    package = re.search(r"^\s*package\s+([\w.]+)\s*;", text, flags=re.M)
    assert package, f"{proto}: no package"
    assert re.search(rf"^\s*service\s+{service}\s*\{{", text, flags=re.M), f"{proto}: no service {service}"
    return f"{package.group(1)}.{service}"


def port_of(address: str) -> int:
    host, _, port = address.rpartition(":")
    assert host and port.isdigit(), f"not host:port: {address!r}"
    return int(port)


def schema_error(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    """(what is wrong, None) or (None, the Kubernetes version whose strict schema the object passed). An object whose
    kind has no schema raises SchemaNotFoundError: that fails the test too."""
    try:
        return None, kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{name(obj)}: {'.'.join(str(p) for p in exc.path) or '(top)'}: {exc.message}", None


# --- (a) validity ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_manifest_validates_strictly(path: Path) -> None:
    docs = documents(path)
    assert docs, f"{path}: empty"
    for doc in docs:
        error, validated = schema_error(doc)
        assert error is None, f"{path.relative_to(ROOT)}: {error}"
        assert validated == "1.33", f"{name(doc)} was checked against {validated}, not the pinned version"


def test_the_validator_rejects_an_unknown_field() -> None:
    """Strict mode is on: a misspelt field is an error, not ignored (the bug the tests above exist to catch)."""
    (deployment,) = [o for o in committed_objects() if name(o) == "Deployment/alloop-query"]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["servce"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("directory", kustomization_dirs(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_kustomization_lists_files_that_exist(directory: Path) -> None:
    k = kustomization(directory)
    assert k.get("apiVersion") == "kustomize.config.k8s.io/v1beta1" and k.get("kind") == "Kustomization"
    assert k.get("resources"), f"{directory}: no resources"
    for resource in k["resources"]:
        target = (directory / resource).resolve()
        assert target.is_relative_to(DEPLOY.resolve()), f"{resource}: outside deploy/kubernetes"
        if target.is_dir():
            assert any((target / n).is_file() for n in KUSTOMIZATION_NAMES), f"{resource}: no kustomization in it"
        else:
            assert target.is_file(), f"{directory.relative_to(ROOT)}: resource {resource} does not exist"
    for patch in k.get("patches", []):
        assert "path" in patch or "patch" in patch, patch
        if "path" in patch:
            assert (directory / patch["path"]).is_file(), f"patch {patch['path']} does not exist"
    listed = {(directory / r).resolve() for r in k["resources"]} | {
        (directory / p["path"]).resolve() for p in k.get("patches", []) if "path" in p
    }
    orphans = [
        p.name
        for p in directory.iterdir()
        if p.suffix in {".yaml", ".yml"} and p.name not in KUSTOMIZATION_NAMES and p.resolve() not in listed
    ]
    assert not orphans, f"{directory.relative_to(ROOT)}: manifests no kustomization lists: {orphans}"


@pytest.mark.parametrize("directory", kustomization_dirs(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_kustomization_renders_to_valid_objects(directory: Path) -> None:
    objects = rendered(directory)
    assert objects
    for obj in objects:
        error, _ = schema_error(obj)
        assert error is None, f"kubectl kustomize {directory.relative_to(ROOT)}: {error}"
        assert obj["metadata"].get("namespace") == "alloop" or obj["kind"] == "Namespace", name(obj)


def test_the_base_has_every_part_the_operator_needs() -> None:
    names = {name(o) for o in rendered(DEPLOY / "base")}
    assert {
        "ConfigMap/alloop-config",
        "Deployment/alloop-query",
        "Service/alloop-query",
        "HorizontalPodAutoscaler/alloop-query",
        "Deployment/alloop-trainer",
        "Service/alloop-trainer",
        "StatefulSet/redis",
        "Service/redis",
        "PersistentVolumeClaim/alloop-models",
    } <= names, names


def test_the_managed_redis_overlay_drops_the_in_cluster_redis() -> None:
    objects = rendered(DEPLOY / "managed-redis")
    assert not {"StatefulSet/redis", "Service/redis"} & {name(o) for o in objects}
    url = urlsplit(config_maps(objects)["alloop-config"]["REDIS_URL"])
    assert url.scheme == "rediss" and url.password is None


# --- (b) every variable is one the code reads ---------------------------------------------------------------------
@pytest.mark.parametrize("label", ["committed", *[str(d.relative_to(DEPLOY)) for d in kustomization_dirs()]])
def test_every_variable_the_manifests_set_is_read_by_the_code(label: str) -> None:
    objects = committed_objects() if label == "committed" else rendered(DEPLOY / label)
    known = variables_the_code_reads() | NOT_ALLOOP
    used_maps: set[str] = set()
    unknown = []
    for obj, _, container in workload_containers(objects):
        used_maps |= {s["configMapRef"]["name"] for s in container.get("envFrom", []) if "configMapRef" in s}
        for variable in environment(container, objects):
            if variable not in known:
                unknown.append(f"{name(obj)} container {container['name']}: {variable}")
    assert not unknown, "variables no code reads (misspelt, or removed from alloop/environment.py):\n" + "\n".join(
        unknown
    )
    assert set(config_maps(objects)) <= used_maps, "a ConfigMap no container takes its environment from"


def test_the_variable_scan_sees_what_the_settings_read() -> None:
    known = variables_the_code_reads()
    assert {
        "ALLOOP_REDIS_PASSWORD_FILE",
        "ALLOOP_AUTH_TOKENS_FILE",
        "ALLOOP_METRICS_ADDRESS",
        "ALLOOP_TRAINER_NAME",
        "ALLOOP_STATE_DIR",
        "ALLOOP_INITIAL_DATA",
        "ALLOOP_MAX_CONNECTION_AGE_SECONDS",
    } <= known
    assert "ALLOOP_MODLE_DIR" not in known


def test_the_trainer_sets_no_bilstm_only_settings() -> None:
    for obj, _, container in workload_containers(committed_objects()):
        if alloop_service(container) == "alloop-trainer-service":
            env = environment(container, committed_objects())
            assert env.get("ALLOOP_MODEL_FAMILY", "linear") == "linear"
            assert not {"ALLOOP_EPOCHS", "ALLOOP_PATIENCE", "ALLOOP_BATCH_SIZE", "ALLOOP_WARM_START"} & set(env)


def test_every_path_the_services_read_is_mounted() -> None:
    """Files and folders named by *_FILE, *_DIR and *_DATA variables lie on a volume of that container; the secret
    files come from the operator's Secret, with the key of the same name."""
    objects = committed_objects()
    checked = 0
    for obj, spec, container in workload_containers(objects):
        if alloop_service(container) is None:
            continue
        mounts = {m["mountPath"].rstrip("/"): m for m in container.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for variable, value in environment(container, objects).items():
            if not variable.endswith(("_FILE", "_DIR", "_DATA")) or not value.startswith("/"):
                continue
            under = [p for p in mounts if value == p or value.startswith(p + "/")]
            assert under, f"{name(obj)}: {variable}={value} is on no volume"
            mount = mounts[max(under, key=len)]
            volume = volumes[mount["name"]]
            if variable.endswith("_FILE"):
                secret = volume.get("secret")
                assert secret and secret["secretName"] == SECRET_NAME, f"{variable}: not from {SECRET_NAME}"
                relative = posixpath.relpath(value, mount["mountPath"])
                assert relative in {i["path"] for i in secret.get("items", [])}, f"{variable}: {relative} not mounted"
                assert relative in SECRET_KEYS
            if variable == "ALLOOP_MODEL_DIR" and alloop_service(container) == "alloop-query-service":
                assert mount.get("readOnly") is True, "query replicas mount the model volume read-only"
            checked += 1
    assert checked >= 6


# --- (c) probes and ports -------------------------------------------------------------------------------------------
def test_the_grpc_probes_ask_the_ports_and_entries_the_services_serve() -> None:
    objects = committed_objects()
    seen = set()
    for obj, spec, container in workload_containers(objects):
        service = alloop_service(container)
        if service is None:
            continue
        seen.add(service)
        variable, proto, grpc_service = SERVICES[service]
        env = environment(container, objects)
        assert variable in env, f"{name(obj)}: without {variable} {service} listens on loopback, out of reach"
        host, _, _ = env[variable].rpartition(":")
        assert host in {"0.0.0.0", "[::]"}, f"{name(obj)}: {variable}={env[variable]}: the kubelet cannot reach it"
        port = port_of(env[variable])
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container.get(kind)
            assert probe and "grpc" in probe, f"{name(obj)}: no gRPC {kind}"
            assert probe["grpc"]["port"] == port, f"{name(obj)}: {kind} asks {probe['grpc']['port']}, serves {port}"
        assert container["readinessProbe"]["grpc"].get("service") == health_service_name(proto, grpc_service)
        assert container["livenessProbe"]["grpc"].get("service", "") == ""
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        assert ports.get("grpc") == port
        metrics = port_of(env["ALLOOP_METRICS_ADDRESS"])
        assert ports.get("metrics") == metrics
        annotations = obj["spec"]["template"]["metadata"].get("annotations", {})
        assert annotations.get("prometheus.io/scrape") == "true"
        assert annotations.get("prometheus.io/port") == str(metrics)
        # The Services in front of the pods reach the same ports.
        labels = obj["spec"]["template"]["metadata"]["labels"]
        fronts = [
            o
            for o in objects
            if o["kind"] == "Service" and o["spec"].get("selector") and o["spec"]["selector"].items() <= labels.items()
        ]
        assert fronts, f"{name(obj)}: no Service selects its pods"
        for front in fronts:
            targets = {p.get("targetPort", p["port"]) for p in front["spec"]["ports"]}
            resolved = {ports.get(t, t) if isinstance(t, str) else t for t in targets}
            assert port in resolved and metrics in resolved, f"{name(front)} reaches {resolved}"
    assert seen == set(SERVICES)


def test_one_trainer_recreated_with_a_stable_name_and_an_autoscaled_query() -> None:
    objects = {name(o): o for o in committed_objects()}
    trainer = objects["Deployment/alloop-trainer"]
    assert trainer["spec"]["replicas"] == 1 and trainer["spec"]["strategy"]["type"] == "Recreate"
    (container,) = trainer["spec"]["template"]["spec"]["containers"]
    assert environment(container, committed_objects()).get("ALLOOP_TRAINER_NAME")
    query = objects["Deployment/alloop-query"]
    assert "replicas" not in query["spec"], "the autoscaler owns the replica count; apply would reset it"
    hpa = objects["HorizontalPodAutoscaler/alloop-query"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "alloop-query"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert objects["PersistentVolumeClaim/alloop-models"]["spec"]["accessModes"] == ["ReadWriteMany"]
    for obj in (query, trainer):
        for c in containers(obj["spec"]["template"]["spec"]):
            assert {"requests", "limits"} <= set(c.get("resources", {})), f"{name(obj)} {c['name']}: resources"


def test_every_container_runs_unprivileged() -> None:
    for obj, spec, container in workload_containers(committed_objects()):
        pod, own = spec.get("securityContext", {}), container.get("securityContext", {})
        where = f"{name(obj)} container {container['name']}"
        assert own.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, where
        assert own.get("runAsUser", pod.get("runAsUser", 0)) != 0, where
        assert own.get("allowPrivilegeEscalation") is False, where
        assert own.get("readOnlyRootFilesystem") is True, where
        assert own.get("capabilities", {}).get("drop") == ["ALL"], where
        assert spec.get("automountServiceAccountToken") is False, where
        if alloop_service(container):
            assert own.get("runAsUser", pod.get("runAsUser")) == 10001, where
            assert "/tmp" in {m["mountPath"] for m in container.get("volumeMounts", [])}, where


# --- (d) secrets ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("label", ["committed", *[str(d.relative_to(DEPLOY)) for d in kustomization_dirs()]])
def test_no_secret_value_and_no_insecure_switch(label: str) -> None:
    objects = committed_objects() if label == "committed" else rendered(DEPLOY / label)
    for obj in objects:
        if obj["kind"] == "Secret":
            assert not obj.get("data") and not obj.get("stringData"), f"{name(obj)} carries values: never commit them"
    for obj, _, container in workload_containers(objects):
        env = environment(container, objects)
        assert "ALLOOP_ALLOW_INSECURE" not in env, f"{name(obj)}: sets ALLOOP_ALLOW_INSECURE"
        assert "ALLOOP_AUTH_TOKENS" not in env, f"{name(obj)}: tokens in the environment; use ALLOOP_AUTH_TOKENS_FILE"
        if alloop_service(container):
            assert env.get("ALLOOP_AUTH_TOKENS_FILE") and env.get("ALLOOP_REDIS_PASSWORD_FILE"), name(obj)
        if "REDIS_URL" in env:
            assert urlsplit(env["REDIS_URL"]).password is None, f"{name(obj)}: a password in REDIS_URL"
    for obj in objects:
        for volume in (pod_spec(obj) or {}).get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] == SECRET_NAME, f"{name(obj)}: another Secret"
                assert {i["key"] for i in volume["secret"].get("items", [])} <= SECRET_KEYS, name(obj)


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, str):
        yield node


def test_no_yaml_file_sets_the_insecure_switch_not_even_in_a_patch() -> None:
    """Keys and values of every YAML file, kustomizations and their inline patches included (comments may say why
    it is not set)."""
    paths = sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"} or p.name in KUSTOMIZATION_NAMES)
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            offending = [s for s in strings(doc) if "ALLOOP_ALLOW_INSECURE" in s]
            assert not offending, f"{path.relative_to(ROOT)}: {offending}"


def test_the_operator_is_told_how_to_create_the_secret_from_make_secrets() -> None:
    makefile = (ROOT / "Makefile").read_text()
    readme = (DEPLOY / "README.md").read_text()
    command = re.search(
        r"kubectl -n alloop create secret generic alloop-secrets((?:\s*\\\n\s*--from-file=\S+)+)",
        readme,
    )
    assert command, "deploy/kubernetes/README.md does not show `kubectl create secret generic alloop-secrets`"
    sources = dict(s.split("=", 1) for s in re.findall(r"--from-file=(\S+)", command.group(1)))
    assert sources == {key: f"secrets/{key}" for key in SECRET_KEYS}
    for source in sources.values():
        assert source in makefile, f"`make secrets` does not write {source}"


def test_redis_runs_as_compose_runs_it_with_the_password_on_no_command_line() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    (statefulset,) = [o for o in committed_objects() if name(o) == "StatefulSet/redis"]
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    script = container["command"][-1]
    acl = re.compile(r"printf '(user default off\\nuser alloop on >%s [^']*)'")
    assert acl.search(script) and acl.search(compose)
    assert acl.search(script).group(1) == acl.search(compose).group(1), "the ACL differs from docker-compose.yml's"
    assert "~alloop:* resetchannels &alloop:* +@all -@admin -@dangerous" in script
    assert "--appendonly yes --appendfsync everysec" in script and "--aclfile" in script
    probe = " ".join(container["readinessProbe"]["exec"]["command"])
    assert "REDISCLI_AUTH=" in probe and "redis-cli --user alloop ping" in probe
    text = "\n".join(p.read_text() for p in manifest_files())
    assert "--requirepass" not in text and "redis-cli -a" not in text and " --pass " not in text
    maps = config_maps(committed_objects())
    assert maps["alloop-config"]["ALLOOP_REDIS_PREFIX"] == "alloop"  # the ACL's ~alloop:* &alloop:*
    assert maps["alloop-config"]["REDIS_URL"] == "redis://alloop@redis:6379/0"
