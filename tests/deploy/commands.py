"""Run, here, the commands that deployment files declare: a container's command/args/env, a
docker-compose service, a workflow step.

No cluster and no image are needed: the image ENTRYPOINT (`passos-magicos`) becomes the console
script of this venv, in-cluster host names become local ports, mount paths become directories.
What is run is otherwise exactly what the file says, so a `ModuleNotFoundError`, a renamed flag,
a missing setting or a probe path the app does not serve fails the test that runs it.

Generic (any source of commands):
    run(argv, env, cwd)                    one-shot command -> CompletedProcess
    serve(argv, env, cwd, ready_url, log)  long-running server, ready when the URL answers 200
    localize(argv)                         first word -> the executable in this venv
    container_env(...) / rewrite(...)      a clean process environment, in-cluster -> local names
    replace_option(argv, flag, value)      `--port 8000` -> `--port <free port>`

Kubernetes (k8s/*.yaml):
    load_manifests(dir), containers(manifests)        every container and initContainer
    KubeStandIn(...).prepare(container, ...)         argv, env, cwd and volumes, resolved the way
                                                      the kubelet resolves them
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from ruamel.yaml import YAML

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
VENV_BIN: Final = Path(sys.executable).parent
K8S_DIR: Final = REPO_ROOT / "k8s"
# The images' ENTRYPOINT (Dockerfile, Dockerfile.dashboard).
IMAGE_ENTRYPOINT: Final = ("passos-magicos",)
LOCALHOST: Final = "127.0.0.1"
_YAML: Final = YAML(typ="safe", pure=True)
LOG_TAIL_CHARS: Final = 6000
WORKLOAD_KINDS: Final = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod")


class DeclarationError(AssertionError):
    """The declaration cannot run as written (what Kubernetes would refuse or fail to start)."""


# ---------------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        port: int = probe.getsockname()[1]
        return port


def localize(argv: Sequence[str], bin_dir: Path = VENV_BIN) -> list[str]:
    """The first word, as the image's PATH finds it, becomes the executable of this venv."""
    if not argv:
        raise DeclarationError("comando vazio")
    first = argv[0]
    if "/" not in first:
        candidate = bin_dir / first
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            raise DeclarationError(f"{first!r} não existe em {bin_dir}")
        first = str(candidate)
    return [first, *argv[1:]]


def container_env(extra: Mapping[str, str], home: Path) -> dict[str, str]:
    """A process environment built from nothing, as a container's is: PATH with the venv (the
    image's /app/.venv/bin), a UTF-8 locale, HOME, then `extra` (what the file declares)."""
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
        "LANG": "C.UTF-8",
        "HOME": str(home),
        # The image ships compiled bytecode and a read-only root: nothing to write.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra)
    return env


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    timeout: float = 300,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` (first word localized) with exactly `env` in `cwd`; with `check`, a non-zero
    exit raises with the command's output."""
    command = localize(argv)
    try:
        completed = subprocess.run(
            command,
            env=dict(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"{' '.join(argv)}: não terminou em {timeout:.0f} s\n{_text(exc.stderr)[-4000:]}"
        ) from exc
    if check and completed.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)}: saiu com {completed.returncode}\n"
            f"--- stdout\n{completed.stdout[-LOG_TAIL_CHARS:]}\n"
            f"--- stderr\n{completed.stderr[-LOG_TAIL_CHARS:]}"
        )
    return completed


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def http_status(url: str, timeout: float = 5.0, headers: Mapping[str, str] | None = None) -> int:
    """The status code of GET `url`, or 0 when nothing answers."""
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 - local URLs
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return 0


@dataclass
class Server:
    """A long-running command started by `serve`: its process and its combined output."""

    argv: list[str]
    process: subprocess.Popen[bytes]
    log_path: Path
    startup_seconds: float = 0.0
    _log: IO[bytes] | None = field(default=None, repr=False)

    def log(self) -> str:
        if self._log is not None:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM the process group (uvicorn and Streamlit have children), then SIGKILL."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode


@contextlib.contextmanager
def serve(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    ready_url: str,
    log_path: Path,
    timeout: float = 120.0,
    ready_status: int = 200,
) -> Iterator[Server]:
    """Start `argv` in its own process group; yield once GET `ready_url` returns `ready_status`.

    Fails with the server's output when it exits or is not ready in `timeout` seconds; always
    stops the whole process group on the way out.
    """
    command = localize(argv)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    log.write(f"$ {' '.join(argv)}\n".encode())
    log.flush()
    process = subprocess.Popen(
        command,
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(argv=list(argv), process=process, log_path=log_path, _log=log)
    try:
        started = time.monotonic()
        while True:
            if http_status(ready_url, timeout=2) == ready_status:
                break
            if not server.alive():
                raise AssertionError(
                    f"{' '.join(argv)} saiu com {process.returncode} antes de {ready_url} "
                    f"responder {ready_status}:\n{server.log()[-LOG_TAIL_CHARS:]}"
                )
            if time.monotonic() - started > timeout:
                raise AssertionError(
                    f"{ready_url} não respondeu {ready_status} em {timeout:.0f} s "
                    f"({' '.join(argv)}):\n{server.log()[-LOG_TAIL_CHARS:]}"
                )
            time.sleep(0.25)
        server.startup_seconds = time.monotonic() - started
        yield server
    finally:
        server.stop()


def replace_option(argv: Sequence[str], flag: str, value: str) -> list[str]:
    """`--flag X` or `--flag=X` -> the same flag with `value`. The flag must be there: the
    declaration, not the test, decides which options a command gets."""
    result = list(argv)
    for index, word in enumerate(result):
        if word == flag and index + 1 < len(result):
            result[index + 1] = value
            return result
        if word.startswith(f"{flag}="):
            result[index] = f"{flag}={value}"
            return result
    raise DeclarationError(f"{flag} ausente em {list(argv)}")


def option_value(argv: Sequence[str], flag: str) -> str | None:
    for index, word in enumerate(argv):
        if word == flag and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith(f"{flag}="):
            return word.split("=", 1)[1]
    return None


def rewrite(value: str, replacements: Mapping[str, str]) -> str:
    """Replace, in one pass, every key of `replacements` found in `value` as a whole name (not
    inside a longer host, path segment or port: `/tmp` leaves `/tmpfs` alone), longest first.
    One pass: a replacement's own text (a local path under /tmp...) is never rewritten again."""
    if not replacements:
        return value
    keys = sorted(replacements, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w.-])(?:" + "|".join(map(re.escape, keys)) + r")(?![\w.-])")
    return pattern.sub(lambda match: replacements[match.group(0)], value)


# ---------------------------------------------------------------------------------------------
# Kubernetes manifests


def load_yaml(path: Path) -> list[Any]:
    """Every document of a YAML file (safe loader: plain dicts, lists and scalars)."""
    return [document for document in _YAML.load_all(path.read_text()) if document is not None]


def load_manifests(directory: Path = K8S_DIR, exclude: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every Kubernetes object in the *.yaml/*.yml files of `directory`, each tagged with
    `_file` (Kustomize's own files are not objects: left out)."""
    documents: list[dict[str, Any]] = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        if path.name in exclude:
            continue
        for document in load_yaml(path):
            if isinstance(document, dict) and not str(document.get("apiVersion", "")).startswith(
                "kustomize.config.k8s.io/"
            ):
                documents.append({**document, "_file": path.name})
    return documents


def find(manifests: Sequence[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for manifest in manifests:
        if manifest.get("kind") == kind and manifest.get("metadata", {}).get("name") == name:
            return dict(manifest)
    raise DeclarationError(f"{kind}/{name} não encontrado")


def pod_spec(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = manifest.get("kind")
    spec: Any = manifest.get("spec", {})
    if kind == "Pod":
        return dict(spec)
    if kind == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    elif kind not in WORKLOAD_KINDS:
        return None
    template = spec.get("template", {}).get("spec")
    return dict(template) if template is not None else None


@dataclass(frozen=True)
class Container:
    """One container (or initContainer) of a workload, as declared."""

    workload_kind: str
    workload: str
    namespace: str | None
    spec: Mapping[str, Any]
    pod: Mapping[str, Any]
    init: bool = False

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def key(self) -> str:
        return f"{self.workload_kind}/{self.workload}/{self.name}"

    @property
    def image(self) -> str:
        return str(self.spec.get("image", ""))

    def argv(
        self, entrypoint: Sequence[str] = IMAGE_ENTRYPOINT, cmd: Sequence[str] = ()
    ) -> list[str]:
        """What the container runs: `command` replaces the image ENTRYPOINT (and its CMD),
        `args` replaces the CMD."""
        command = self.spec.get("command")
        args = self.spec.get("args")
        if command is not None:
            return [*map(str, command), *map(str, args or [])]
        return [*entrypoint, *(map(str, args) if args is not None else cmd)]

    def port_number(self, port: int | str) -> int:
        """A probe's or Service's port: a number, or the name of one of the containerPorts."""
        if isinstance(port, int):
            return port
        for declared in self.spec.get("ports", []):
            if declared.get("name") == port:
                return int(declared["containerPort"])
        if str(port).isdigit():
            return int(port)
        raise DeclarationError(f"{self.key}: porta {port!r} não declarada")

    def http_probes(self) -> dict[str, tuple[str, int]]:
        """{"readinessProbe": (path, port), ...} for the httpGet probes."""
        probes: dict[str, tuple[str, int]] = {}
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            http = self.spec.get(kind, {}).get("httpGet")
            if http is not None:
                probes[kind] = (str(http.get("path", "/")), self.port_number(http["port"]))
        return probes


def containers(manifests: Sequence[Mapping[str, Any]]) -> list[Container]:
    """Every initContainer and container of every workload in `manifests`."""
    found: list[Container] = []
    for manifest in manifests:
        spec = pod_spec(manifest)
        if spec is None:
            continue
        metadata = manifest.get("metadata", {})
        for init, key in ((True, "initContainers"), (False, "containers")):
            for item in spec.get(key, []) or []:
                found.append(
                    Container(
                        workload_kind=str(manifest["kind"]),
                        workload=str(metadata.get("name")),
                        namespace=metadata.get("namespace"),
                        spec=item,
                        pod=spec,
                        init=init,
                    )
                )
    return found


def configmaps(manifests: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    return {
        str(m["metadata"]["name"]): {str(k): str(v) for k, v in (m.get("data") or {}).items()}
        for m in manifests
        if m.get("kind") == "ConfigMap"
    }


def secret_shapes(manifests: Sequence[Mapping[str, Any]]) -> dict[str, set[str]]:
    """{secret name: its keys} from Secret documents (stringData and data)."""
    return {
        str(m["metadata"]["name"]): {*(m.get("stringData") or {}), *(m.get("data") or {})}
        for m in manifests
        if m.get("kind") == "Secret"
    }


def secret_references(container: Container) -> dict[str, set[str] | None]:
    """{secret name: the keys read (None = all of it, via envFrom)}."""
    refs: dict[str, set[str] | None] = {}
    for source in container.spec.get("envFrom", []) or []:
        if "secretRef" in source:
            refs[str(source["secretRef"]["name"])] = None
    for variable in container.spec.get("env", []) or []:
        ref = (variable.get("valueFrom") or {}).get("secretKeyRef")
        if ref is not None:
            name = str(ref["name"])
            keys = refs.setdefault(name, set())
            if keys is not None:
                keys.add(str(ref["key"]))
    return refs


_VAR_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined variables are substituted, `$$` is `$`, unknown
    references stay as written."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR_REFERENCE.sub(substitute, value)


def _source(
    container: Container,
    reference: Mapping[str, Any],
    config_maps: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
) -> tuple[Mapping[str, Any], Mapping[str, Mapping[str, str]], str]:
    """(the ref, the pool it points into, its kind) of an envFrom or valueFrom entry."""
    for key, pool, what in (
        ("configMapRef", config_maps, "ConfigMap"),
        ("secretRef", secrets, "Secret"),
        ("configMapKeyRef", config_maps, "ConfigMap"),
        ("secretKeyRef", secrets, "Secret"),
    ):
        if key in reference:
            return reference[key], pool, what
    raise DeclarationError(f"{container.key}: referência não suportada aqui: {dict(reference)}")


def resolve_env(
    container: Container,
    config_maps: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom sources in order (a later
    one wins), then `env` entries (which win over envFrom); a missing ConfigMap/Secret or key is
    skipped when `optional`, otherwise it is an error (CreateContainerConfigError)."""
    env: dict[str, str] = {}
    for source in container.spec.get("envFrom", []) or []:
        ref, pool, what = _source(container, source, config_maps, secrets)
        data = pool.get(str(ref["name"]))
        if data is None:
            if ref.get("optional"):
                continue
            raise DeclarationError(f"{container.key}: {what} {ref['name']} inexistente")
        prefix = str(source.get("prefix", ""))
        env.update({f"{prefix}{key}": value for key, value in data.items()})
    for variable in container.spec.get("env", []) or []:
        name = str(variable["name"])
        if "value" in variable:
            env[name] = expand(str(variable["value"]), env)
            continue
        ref, pool, what = _source(container, variable.get("valueFrom") or {}, config_maps, secrets)
        data = pool.get(str(ref["name"]))
        if data is None or str(ref["key"]) not in data:
            if ref.get("optional"):
                continue
            raise DeclarationError(
                f"{container.key}: {name} lê {what} {ref['name']}/{ref['key']}, inexistente"
            )
        env[name] = str(data[str(ref["key"])])
    return env


def mounts(container: Container) -> dict[str, tuple[str, str]]:
    """{mountPath: (volume kind, claim name or volume name)} of the container."""
    volumes = {str(v["name"]): v for v in container.pod.get("volumes", []) or []}
    result: dict[str, tuple[str, str]] = {}
    for mount in container.spec.get("volumeMounts", []) or []:
        volume = volumes.get(str(mount["name"]))
        if volume is None:
            raise DeclarationError(f"{container.key}: volume {mount['name']} não declarado")
        if "persistentVolumeClaim" in volume:
            result[str(mount["mountPath"])] = (
                "pvc",
                str(volume["persistentVolumeClaim"]["claimName"]),
            )
        elif "emptyDir" in volume:
            result[str(mount["mountPath"])] = ("emptyDir", str(volume["name"]))
        else:
            raise DeclarationError(f"{container.key}: volume {volume} não suportado aqui")
    return result


def service_names(name: str, namespace: str, port: int) -> list[str]:
    """Every way a pod can write `host:port` of a Service."""
    return [
        f"{name}.{namespace}.svc.cluster.local:{port}",
        f"{name}.{namespace}.svc:{port}",
        f"{name}.{namespace}:{port}",
        f"{name}:{port}",
    ]


@dataclass
class Prepared:
    """A container ready to run here."""

    container: Container
    argv: list[str]
    env: dict[str, str]
    cwd: Path  # the image's WORKDIR stand-in: must stay empty (read-only root filesystem)
    volumes: dict[str, Path]  # mountPath -> local directory
    ports: dict[int, int] = field(default_factory=dict)  # containerPort -> local port

    def url(self, container_port: int, path: str = "/") -> str:
        return f"http://{LOCALHOST}:{self.ports[container_port]}{path}"

    def probe_urls(self) -> dict[str, str]:
        return {
            kind: self.url(port, path)
            for kind, (path, port) in self.container.http_probes().items()
        }


@dataclass
class KubeStandIn:
    """What the cluster provides to containers, here: ConfigMaps (read from the manifests),
    Secrets (test values), PVCs (one directory per claim, shared by every container that mounts
    it, as ReadWriteMany volumes are), Services (local ports) and test-only overrides."""

    root: Path
    config_maps: Mapping[str, Mapping[str, str]]
    secrets: Mapping[str, Mapping[str, str]]
    # Text replaced in env values and args: in-cluster host:port -> local, and the like.
    replacements: dict[str, str] = field(default_factory=dict)
    # Variables forced after resolution (None = removed). Keep each one justified by the test.
    overrides: dict[str, str | None] = field(default_factory=dict)

    def claim_dir(self, claim: str) -> Path:
        path = self.root / "pvc" / claim
        path.mkdir(parents=True, exist_ok=True)
        return path

    def add_service(self, name: str, namespace: str, port: int, local_port: int) -> None:
        for alias in service_names(name, namespace, port):
            self.replacements[alias] = f"{LOCALHOST}:{local_port}"

    def prepare(
        self,
        container: Container,
        ports: Mapping[int, int] | None = None,
        options: Mapping[str, str] | None = None,
    ) -> Prepared:
        """argv, env, cwd and volumes of `container`, localized.

        `ports` maps containerPorts to local ports; `options` replaces the values of options
        the declaration already passes (e.g. {"--port": "51234", "--host": "127.0.0.1"}).
        """
        slot = self.root / "containers" / container.key.replace("/", "__")
        scratch = slot / "emptydir"
        volumes: dict[str, Path] = {}
        for mount_path, (kind, name) in mounts(container).items():
            if kind == "pvc":
                volumes[mount_path] = self.claim_dir(name)
            else:
                volumes[mount_path] = scratch / name
                volumes[mount_path].mkdir(parents=True, exist_ok=True)
        path_replacements = {mount: str(local) for mount, local in volumes.items()}
        replacements = {**self.replacements, **path_replacements}

        declared = resolve_env(container, self.config_maps, self.secrets)
        env_values = {name: rewrite(value, replacements) for name, value in declared.items()}
        for name, value in self.overrides.items():
            if value is None:
                env_values.pop(name, None)
            else:
                env_values[name] = value
        home = scratch / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = container_env(env_values, home)
        if "/tmp" in volumes:  # the container's /tmp mount (an emptyDir), not ours
            env.setdefault("TMPDIR", str(volumes["/tmp"]))

        argv = [rewrite(expand(word, declared), replacements) for word in container.argv()]
        for flag, value in (options or {}).items():
            argv = replace_option(argv, flag, value)
        cwd = slot / "workdir"
        cwd.mkdir(parents=True, exist_ok=True)
        return Prepared(
            container=container,
            argv=argv,
            env=env,
            cwd=cwd,
            volumes=volumes,
            ports=dict(ports or {}),
        )


def files_under(directory: Path) -> list[str]:
    """Every file below `directory`, relative (what a process left behind)."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
