"""The GitHub Actions workflows: actionlint passes, the structure holds (triggers, least
privilege, pinned actions, coverage threshold, multi-arch, secret names), and every step that
calls the project's CLI is EXECUTED here, in order, with a small local runner:

- `${{ ... }}` expressions are evaluated (contexts github/inputs/secrets/steps/needs/matrix/env,
  operators, `format`/`contains`/...), `if:` conditions decide which steps run, `$GITHUB_OUTPUT`
  feeds later steps and job outputs, like on GitHub;
- `run:` scripts run with bash as GitHub runs them (`-eo pipefail` under `shell: bash`), in a
  temporary workspace, with a `uv` stand-in on PATH: `uv sync` checks its flags and extras
  against pyproject.toml, `uv run X` runs `.venv/bin/X` (the project's real CLI);
- `uses:` steps are not run; their `with:` inputs are evaluated and checked.

deploy-model.yml runs against an embedded MLflow store with registered models (cheap
logistic regressions on synthetic data); cd.yml's GitOps job edits a copy of the manifests. A
renamed subcommand or flag makes a step exit non-zero, and the tests fail (proven below by
mutating the workflows).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from passos_magicos import gitops
from tests.deploy.test_gitops import FIXTURES, changes_by_file, pod_annotations, snapshot
from tests.flows import cli, synthetic_csv

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
VENV_BIN = ROOT / ".venv" / "bin"
VENDORED_SCHEMAS = ROOT / "tests" / "deploy" / "schemas"  # see its SOURCE.md and LICENSE
SCHEMA_URL = (
    "https://raw.githubusercontent.com/datreeio/CRDs-catalog/"
    "7b1e26ef9deea49293714d204c1a2270aab1178f"
)
SCHEMA_FILES = {  # the catalog path → the vendored copy in tests/deploy/schemas (and its sha256)
    "argoproj.io/application_v1alpha1.json": (
        "argocd-application_v1alpha1.json",
        "99c37877b0626eaf21f42f70f4fc432a4b820de548d88ed90cc75381adf5192c",
    ),
    "postgresql.cnpg.io/cluster_v1.json": (
        "cnpg-cluster_v1.json",
        "b58695a447c9be7cc5e49faeba0280ec13a34a7b067ce26ed9f8d616717df960",
    ),
}
COMMIT = "0123456789abcdef0123456789abcdef01234567"
MODEL = "ponto-virada-teste"  # not the default name: proves the workflow passes model_name
DOCKERHUB_USER = "usuario-teste"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe", pure=True).load((WORKFLOWS / name).read_text())
    return data


def cli_steps(workflow: dict[str, Any]) -> list[tuple[str, int]]:
    """(job, step index) of every `run:` step that calls the project's CLI."""
    return [
        (job_id, index)
        for job_id, job in workflow["jobs"].items()
        for index, step in enumerate(job.get("steps", []))
        if "passos-magicos " in step.get("run", "")
    ]


# ---------------------------------------------------------------------------------------------
# GitHub expressions: ${{ ... }}


class ExpressionError(AssertionError):
    pass


_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<string>'(?:[^']|'')*')"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\],.*])|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)
_INTERPOLATION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def _truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (None, False, 0, "")


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip() or 0)
        except ValueError:
            return math.nan
    return math.nan


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.lower() == right.lower()  # GitHub compares strings ignoring case
    if type(left) is type(right):
        return bool(left == right)
    return _number(left) == _number(right)


def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


class Expression:
    """A recursive-descent evaluator of GitHub's expression syntax (enough for workflows)."""

    def __init__(self, source: str, contexts: dict[str, Any]) -> None:
        self.tokens: list[tuple[str, str]] = []
        position, source = 0, source.strip()
        while position < len(source):
            match = _TOKEN.match(source, position)
            if not match or match.end() == position:
                raise ExpressionError(f"expressão inválida: {source!r} em {position}")
            kind = match.lastgroup
            assert kind is not None
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.position = 0
        self.contexts = contexts
        self.source = source

    def evaluate(self) -> Any:
        value = self._or()
        if self.position != len(self.tokens):
            raise ExpressionError(f"sobrou texto em {self.source!r}")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise ExpressionError(f"fim inesperado em {self.source!r}")
        token = self.tokens[self.position]
        if expected is not None and token[1] != expected:
            raise ExpressionError(f"esperava {expected!r} em {self.source!r}, veio {token[1]!r}")
        self.position += 1
        return token

    def _or(self) -> Any:
        value = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            value = value if _truthy(value) else right
        return value

    def _and(self) -> Any:
        value = self._equality()
        while self._peek() == "&&":
            self._take()
            right = self._equality()
            value = right if _truthy(value) else value
        return value

    def _equality(self) -> Any:
        value = self._unary()
        while self._peek() in {"==", "!="}:
            operator = self._take()[1]
            right = self._unary()
            value = _equal(value, right) if operator == "==" else not _equal(value, right)
        return value

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not _truthy(self._unary())
        return self._primary()

    def _primary(self) -> Any:
        kind, text = self._take()
        if text == "(":
            value = self._or()
            self._take(")")
        elif kind == "number":
            value = float(text)
        elif kind == "string":
            value = text[1:-1].replace("''", "'")
        elif kind == "name" and text in {"true", "false", "null"}:
            value = {"true": True, "false": False, "null": None}[text]
        elif kind == "name" and self._peek() == "(":
            value = self._call(text)
        elif kind == "name":
            if text not in self.contexts:
                raise ExpressionError(f"contexto desconhecido {text!r} em {self.source!r}")
            value = self.contexts[text]
            path = text
            while self._peek() in {".", "["}:
                if self._take()[1] == ".":
                    key = self._take()[1]
                else:
                    key = to_text(self._or())
                    self._take("]")
                path = f"{path}.{key}"
                value = self._member(value, key, path)
        else:
            raise ExpressionError(f"token inesperado {text!r} em {self.source!r}")
        return value

    def _member(self, value: Any, key: str, path: str) -> Any:
        if isinstance(value, Strict):
            return value.get(key, path)
        if isinstance(value, dict):
            return value.get(key)
        return None

    def _call(self, name: str) -> Any:
        self._take("(")
        args: list[Any] = []
        while self._peek() != ")":
            args.append(self._or())
            if self._peek() == ",":
                self._take()
        self._take(")")
        status = self.contexts["__status__"]
        functions: dict[str, Callable[..., Any]] = {
            "success": lambda: status == "success",
            "failure": lambda: status == "failure",
            "always": lambda: True,
            "cancelled": lambda: False,
            "format": lambda fmt, *values: re.sub(
                r"\{(\d+)\}", lambda m: to_text(values[int(m.group(1))]), fmt
            ),
            "contains": lambda haystack, needle: (
                any(_equal(item, needle) for item in haystack)
                if isinstance(haystack, list)
                else to_text(needle).lower() in to_text(haystack).lower()
            ),
            "startsWith": lambda text, prefix: (
                to_text(text).lower().startswith(to_text(prefix).lower())
            ),
            "endsWith": lambda text, suffix: (
                to_text(text).lower().endswith(to_text(suffix).lower())
            ),
            "toJSON": json.dumps,
            "fromJSON": json.loads,
        }
        if name not in functions:
            raise ExpressionError(f"função desconhecida {name}() em {self.source!r}")
        return functions[name](*args)


class Strict:
    """A context whose unknown keys are an error (a typo in `secrets.X` or `steps.x` fails)."""

    def __init__(self, values: dict[str, Any], name: str, missing: Any = "error") -> None:
        self.values, self.name, self.missing = values, name, missing

    def get(self, key: str, path: str) -> Any:
        if key in self.values:
            return self.values[key]
        if self.missing == "error":
            raise ExpressionError(f"{path}: não existe no contexto {self.name}")
        return self.missing


def evaluate(source: str, contexts: dict[str, Any]) -> Any:
    return Expression(source, contexts).evaluate()


def interpolate(text: str, contexts: dict[str, Any]) -> str:
    return _INTERPOLATION.sub(lambda m: to_text(evaluate(m.group(1), contexts)), text)


def condition(source: str | bool | None, contexts: dict[str, Any]) -> bool:
    if source is None:
        return bool(evaluate("success()", contexts))
    if isinstance(source, bool):
        return source
    text = source.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    if not re.search(r"\b(success|failure|always|cancelled)\(", text):
        text = f"success() && ({text})"
    return _truthy(evaluate(text, contexts))


# ---------------------------------------------------------------------------------------------
# the local runner


@dataclass
class StepResult:
    index: int
    name: str
    ran: bool
    uses: str | None = None
    with_: dict[str, str] = field(default_factory=dict)
    script: str = ""
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class JobResult:
    job: str
    ran: bool
    status: str = "skipped"
    steps: list[StepResult] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    matrix: dict[str, Any] = field(default_factory=dict)

    def step(self, name_part: str) -> StepResult:
        found = [s for s in self.steps if name_part in s.name or name_part in (s.uses or "")]
        assert len(found) == 1, (name_part, [s.name for s in self.steps])
        return found[0]

    def log(self) -> str:
        return plain(
            "\n".join(
                f"--- {s.name} (rc={s.returncode})\n{s.script}\n{s.stdout}\n{s.stderr}"
                for s in self.steps
                if s.ran and s.script
            )
        )


UV_STAND_IN = '''#!{python}
"""`uv` for the workflow tests: `sync` checks its flags against pyproject.toml, `run` runs the
project's installed command. Every call is logged."""
import json, os, sys, tomllib
args = sys.argv[1:]
with open(os.environ["UV_STAND_IN_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
pyproject = tomllib.load(open({pyproject!r}, "rb"))
extras = set(pyproject["project"].get("optional-dependencies", {{}}))
groups = set(pyproject.get("dependency-groups", {{}}))
if args[:1] == ["sync"]:
    rest = args[1:]
    while rest:
        flag = rest.pop(0)
        if flag in ("--extra", "--group", "--only-group", "--no-group"):
            value = rest.pop(0)
            known = extras if flag == "--extra" else groups
            if value not in known:
                sys.exit(f"uv sync: {{flag}} {{value}} não existe no pyproject.toml")
        elif flag not in ("--frozen", "--locked", "--no-dev", "--only-dev", "--all-extras",
                          "--all-groups", "--no-install-project"):
            sys.exit(f"uv sync: opção desconhecida para o stand-in: {{flag}}")
    sys.exit(0)
if args[:1] == ["run"]:
    rest = args[1:]
    while rest and rest[0].startswith("--"):
        if rest.pop(0) not in ("--no-sync", "--frozen", "--locked"):
            sys.exit("uv run: opção desconhecida para o stand-in")
    program = os.path.join({venv_bin!r}, rest[0])
    if not os.path.exists(program):
        sys.exit(f"uv run: {{rest[0]}} não está instalado no ambiente do projeto")
    os.execv(program, [program, *rest[1:]])
sys.exit(f"uv: subcomando não suportado pelo stand-in: {{args}}")
'''


class Runner:
    """Runs the jobs of one workflow file locally (see the module docstring)."""

    def __init__(
        self,
        workflow_text: str,
        workspace: Path,
        *,
        scratch: Path,
        event: str,
        github: dict[str, Any] | None = None,
        inputs: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
        rewrite: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
        skip: set[str] | None = None,
    ) -> None:
        self.workflow: dict[str, Any] = YAML(typ="safe", pure=True).load(workflow_text)
        self.workspace = workspace
        self.rewrite = rewrite or {}
        self.extra_env = extra_env or {}
        self.skip = skip or set()  # step names not to execute here (they need the network)
        self.tmp = scratch
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.bin = self.tmp / "bin"
        self.bin.mkdir(exist_ok=True)
        self.uv_log = self.tmp / "uv.log"
        uv = self.bin / "uv"
        uv.write_text(
            UV_STAND_IN.format(
                python=sys.executable,
                pyproject=str(ROOT / "pyproject.toml"),
                venv_bin=str(VENV_BIN),
            )
        )
        uv.chmod(uv.stat().st_mode | stat.S_IXUSR)
        declared = (self.workflow.get("on") or {}).get("workflow_dispatch") or {}
        declared_inputs: dict[str, Any] = declared.get("inputs") or {}
        values = {name: to_text(spec.get("default")) for name, spec in declared_inputs.items()}
        for name, value in (inputs or {}).items():
            assert name in declared_inputs, f"entrada {name} não declarada"
            options = declared_inputs[name].get("options")
            assert options is None or value in options, f"{name}={value} fora de {options}"
            values[name] = value
        if event != "workflow_dispatch":
            values = {}
        base_github = {
            "event_name": event,
            "ref": "refs/heads/main",
            "ref_name": "main",
            "ref_type": "branch",
            "sha": COMMIT,
            "repository": "passos-magicos/ponto-virada",
            "repository_owner": "passos-magicos",
            "server_url": "https://github.com",
            "run_id": "4242",
            "run_number": "7",
            "actor": "teste-ci",
            "workflow": self.workflow.get("name", ""),
            "event": {"repository": {"default_branch": "main"}, "inputs": values},
        }
        base_github.update(github or {})
        self.github = base_github
        self.inputs = Strict(values, "inputs", missing=None)
        self.secrets = Strict({"GITHUB_TOKEN": "token-teste", **(secrets or {})}, "secrets")

    def run(self, job_id: str, needs: dict[str, JobResult] | None = None) -> list[JobResult]:
        """One job (every entry of an `include` matrix); `needs` gives upstream results."""
        job = self.workflow["jobs"][job_id]
        for need in _as_list(job.get("needs")):
            assert needs is not None and need in needs, f"{job_id} precisa de {need}"
        entries = (job.get("strategy") or {}).get("matrix", {}).get("include") or [{}]
        return [self._run_job(job_id, job, needs or {}, entry) for entry in entries]

    def _contexts(
        self,
        env: dict[str, str],
        steps: dict[str, Any],
        needs: dict[str, JobResult],
        matrix: dict[str, Any],
        status: str,
    ) -> dict[str, Any]:
        return {
            "github": Strict(self.github, "github"),
            "inputs": self.inputs,
            "secrets": self.secrets,
            "vars": Strict({}, "vars"),
            "env": Strict(env, "env", missing=None),
            "steps": Strict(steps, "steps"),
            "needs": Strict(
                {
                    name: {"outputs": result.outputs, "result": result.status}
                    for name, result in needs.items()
                },
                "needs",
            ),
            "matrix": Strict(matrix, "matrix"),
            "runner": {"os": "Linux", "temp": str(self.tmp)},
            "__status__": status,
        }

    def _env(self, block: dict[str, Any] | None, contexts: dict[str, Any]) -> dict[str, str]:
        return {
            name: self._rewrite(interpolate(to_text(value), contexts))
            for name, value in (block or {}).items()
        }

    def _rewrite(self, text: str) -> str:
        for old, new in self.rewrite.items():
            text = text.replace(old, new)
        return text

    def _run_job(
        self,
        job_id: str,
        job: dict[str, Any],
        needs: dict[str, JobResult],
        matrix: dict[str, Any],
    ) -> JobResult:
        result = JobResult(job_id, ran=False, matrix=matrix)
        step_ids = {s["id"] for s in job.get("steps", []) if "id" in s}
        steps: dict[str, Any] = {
            step_id: {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
            for step_id in step_ids
        }
        contexts = self._contexts({}, steps, needs, matrix, "success")
        if not condition(job.get("if"), contexts):
            return result
        result.ran, result.status = True, "success"
        env = self._env(self.workflow.get("env"), contexts)
        env.update(self._env(job.get("env"), self._contexts(env, steps, needs, matrix, "success")))
        default_shell = job.get("defaults", {}).get("run", {}).get("shell") or (
            self.workflow.get("defaults", {}).get("run", {}).get("shell")
        )
        for index, step in enumerate(job.get("steps", [])):
            name = step.get("name") or step.get("uses") or step.get("run", "").split("\n")[0]
            contexts = self._contexts(env, steps, needs, matrix, result.status)
            if name in self.skip or not condition(step.get("if"), contexts):
                result.steps.append(StepResult(index, name, ran=False))
                continue
            step_env = {**env, **self._env(step.get("env"), contexts)}
            contexts = self._contexts(step_env, steps, needs, matrix, result.status)
            if "uses" in step:
                with_ = {
                    k: interpolate(to_text(v), contexts) for k, v in step.get("with", {}).items()
                }
                result.steps.append(
                    StepResult(index, name, ran=True, uses=step["uses"], with_=with_)
                )
                continue
            shell = step.get("shell") or default_shell
            done = self._run_script(index, name, step, step_env, contexts, shell)
            result.steps.append(done)
            if "id" in step:
                outcome = "success" if done.returncode == 0 else "failure"
                steps[step["id"]] = {
                    "outputs": done.outputs,
                    "outcome": outcome,
                    "conclusion": outcome,
                }
            if done.returncode != 0:
                result.status = "failure"
        if result.status == "success":
            contexts = self._contexts(env, steps, needs, matrix, "success")
            result.outputs = {
                name: interpolate(to_text(value), contexts)
                for name, value in (job.get("outputs") or {}).items()
            }
        return result

    def _run_script(
        self,
        index: int,
        name: str,
        step: dict[str, Any],
        step_env: dict[str, str],
        contexts: dict[str, Any],
        shell: str | None,
    ) -> StepResult:
        script = self._rewrite(interpolate(step["run"], contexts))
        files = {
            key: self.tmp / f"{key.lower()}-{index}" for key in ("GITHUB_OUTPUT", "GITHUB_ENV")
        }
        for path in files.values():
            path.write_text("")
        script_path = self.tmp / f"step-{index}.sh"
        script_path.write_text(script)
        command = (
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_path)]
            if shell == "bash"
            else ["bash", "-e", str(script_path)]
        )
        github = self.github
        environment = {
            "PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", str(self.tmp)),
            "LANG": "C.UTF-8",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_SHA": github["sha"],
            "GITHUB_REF": github["ref"],
            "GITHUB_REF_NAME": github["ref_name"],
            "GITHUB_REF_TYPE": github["ref_type"],
            "GITHUB_EVENT_NAME": github["event_name"],
            "GITHUB_REPOSITORY": github["repository"],
            "GITHUB_RUN_ID": github["run_id"],
            "GITHUB_ACTOR": github["actor"],
            "GITHUB_STEP_SUMMARY": str(self.tmp / "summary.md"),
            "RUNNER_TEMP": str(self.tmp),
            "UV_STAND_IN_LOG": str(self.uv_log),
            **{key: str(path) for key, path in files.items()},
            **self.extra_env,
            **step_env,
        }
        completed = subprocess.run(
            command,
            cwd=self.workspace,
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return StepResult(
            index,
            name,
            ran=True,
            script=script,
            returncode=completed.returncode,
            stdout=completed.stdout,
            stderr=completed.stderr,
            outputs=_read_outputs(files["GITHUB_OUTPUT"].read_text()),
        )


def plain(text: str) -> str:
    """Without ANSI colours (typer/rich colour their output under GITHUB_ACTIONS)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _read_outputs(text: str) -> dict[str, str]:
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and "=" not in line.split("<<")[0]:
            key, delimiter = line.split("<<", 1)
            body: list[str] = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            outputs[key] = "\n".join(body)
        elif "=" in line:
            key, value = line.split("=", 1)
            outputs[key] = value
    return outputs


def uv_calls(runner: Runner) -> list[list[str]]:
    if not runner.uv_log.exists():
        return []
    return [json.loads(line) for line in runner.uv_log.read_text().splitlines()]


def succeeded(result: JobResult) -> JobResult:
    assert result.status == "success", result.log()
    return result


# ---------------------------------------------------------------------------------------------
# actionlint and structure


@pytest.mark.parametrize("name", ["ci.yml", "cd.yml", "deploy-model.yml"])
def test_actionlint_passes(name: str) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "actionlint"), "-no-color", str(WORKFLOWS / name)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not (ROOT / ".yamllint").exists(), reason="sem .yamllint no projeto")
def test_yamllint_passes_with_the_project_config() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "yamllint"), "--strict", str(WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_expected_workflows_exist() -> None:
    assert sorted(path.name for path in WORKFLOWS.glob("*.y*ml")) == [
        "cd.yml",
        "ci.yml",
        "deploy-model.yml",
    ]


@pytest.mark.parametrize("name", ["ci.yml", "cd.yml", "deploy-model.yml"])
def test_least_privilege_and_pinned_actions(name: str) -> None:
    workflow = load(name)
    assert workflow["permissions"] == {"contents": "read"}, "padrão: só leitura"
    writers = {
        job_id: job["permissions"]
        for job_id, job in workflow["jobs"].items()
        if "write" in json.dumps(job.get("permissions", {}))
    }
    for job_id, permissions in writers.items():
        steps = workflow["jobs"][job_id]["steps"]
        uses = " ".join(step.get("uses", "") for step in steps)
        # write access only where a pull request or a release is created
        assert "create-pull-request" in uses or "action-gh-release" in uses, job_id
        assert set(permissions) <= {"contents", "pull-requests"}, permissions
    for job in workflow["jobs"].values():
        assert job.get("permissions") != "write-all"
        assert "timeout-minutes" in job
        for step in job["steps"]:
            if "uses" in step:
                # major tags (actions/checkout@v4); setup-uv publishes only immutable tags
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+(\.\d+\.\d+)?", step["uses"]), step


def test_triggers() -> None:
    ci, cd, deploy = load("ci.yml"), load("cd.yml"), load("deploy-model.yml")
    assert ci["on"]["push"] == {"branches": ["main"]} and "pull_request" in ci["on"]
    assert cd["on"]["push"] == {"tags": ["v*"]} and "workflow_dispatch" in cd["on"]
    assert set(deploy["on"]) == {"workflow_dispatch"}
    inputs = deploy["on"]["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"action", "model_name", "target_stage", "version"}
    assert inputs["action"]["type"] == "choice"
    assert inputs["action"]["options"] == ["promote", "rollback"]
    assert inputs["target_stage"]["options"] == ["Staging", "Production"]
    assert inputs["version"]["required"] is False
    assert inputs["model_name"]["default"] == "passos-magicos-ponto-virada"


def test_ci_jobs_run_the_project_checks() -> None:
    jobs = load("ci.yml")["jobs"]
    runs = {job_id: [step.get("run", "") for step in job["steps"]] for job_id, job in jobs.items()}
    assert {"lint", "test", "security", "manifests", "images"} <= set(jobs)
    lint = "\n".join(runs["lint"])
    assert "ruff check" in lint and "ruff format --check" in lint and "mypy" in lint
    assert "--locked" in lint  # a stale uv.lock fails
    assert "make test-cov" in runs["test"]
    assert jobs["test"]["steps"][-1]["env"]["PASSOS_REQUIRE_SERVICES"] == "1"
    assert any("provision-services.sh" in run for run in runs["test"])
    security = "\n".join(runs["security"])
    assert "uvx bandit --recursive src" in security
    assert "uv export --frozen" in security and "uvx pip-audit" in security
    assert "--require-hashes" in security
    manifests = "\n".join(runs["manifests"])
    for tool in ("hadolint Dockerfile Dockerfile.dashboard", "kubernetes-validate --strict k8s/"):
        assert tool in manifests
    assert "argocd/application.yaml" in manifests and "argocd/pg-mlflow.yml" in manifests
    assert "actionlint" in manifests
    checkov = re.search(r"checkov==([\d.]+)", manifests)
    assert checkov and "--framework kubernetes --directory k8s" in manifests
    k8s_test = Path(__file__).parent / "test_k8s.py"
    if k8s_test.exists():  # the same pinned checkov as the manifests' own test
        assert f"checkov=={checkov.group(1)}" in k8s_test.read_text()


def test_ci_builds_the_three_images_with_the_gha_cache_without_pushing() -> None:
    job = load("ci.yml")["jobs"]["images"]
    entries = job["strategy"]["matrix"]["include"]
    assert {(e["image"], e["file"], e["target"]) for e in entries} == {
        ("passos-magicos-api", "Dockerfile", "api"),
        ("passos-magicos-jobs", "Dockerfile", "jobs"),
        ("passos-magicos-dashboard", "Dockerfile.dashboard", ""),
    }
    assert {e["image"] for e in entries} == set(gitops.IMAGE_NAMES)
    build = next(s for s in job["steps"] if s.get("uses", "").startswith("docker/build-push"))
    assert build["with"]["push"] is False
    assert build["with"]["cache-from"].startswith("type=gha")
    assert build["with"]["cache-to"].startswith("type=gha,mode=max")
    dockerfile = ROOT / "Dockerfile"
    if dockerfile.exists():  # the targets the matrix names exist
        stages = re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text())
        assert {"api", "jobs"} <= set(stages), stages


def test_coverage_threshold_is_enforced_by_the_command_ci_runs(tmp_path: Path) -> None:
    """`make test-cov` runs pytest with --cov-fail-under=90, and that command does fail below
    90 %: here it runs one quick test (a few % of coverage) and must exit non-zero."""
    dry = subprocess.run(
        ["make", "-n", "test-cov"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    pytest_line = next(line for line in dry.stdout.splitlines() if "bin/pytest" in line)
    assert "--cov-fail-under=90" in pytest_line.split()
    command = pytest_line.split("bin/pytest", 1)[1].split()
    trivial = tmp_path / "test_trivial.py"
    trivial.write_text("def test_nothing_covered() -> None:\n    assert True\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE", "COVERAGE"))}
    env["COVERAGE_FILE"] = str(tmp_path / ".coverage")
    below = subprocess.run(
        [str(VENV_BIN / "pytest"), *command, "-p", "no:cacheprovider", "-q", str(trivial)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert below.returncode != 0, below.stdout
    assert "1 passed" in below.stdout
    assert "Required test coverage of 90% not reached" in below.stdout


def test_cd_pushes_multi_arch_images_with_the_dockerhub_secrets() -> None:
    jobs = load("cd.yml")["jobs"]
    images = jobs["images"]
    uses = [step.get("uses", "") for step in images["steps"]]
    assert any(u.startswith("docker/setup-qemu-action@") for u in uses)
    assert any(u.startswith("docker/setup-buildx-action@") for u in uses)
    login = next(s for s in images["steps"] if s.get("uses", "").startswith("docker/login-action"))
    assert login["with"]["username"] == "${{ secrets.DOCKERHUB_USERNAME }}"
    assert login["with"]["password"] == "${{ secrets.DOCKERHUB_TOKEN }}"
    build = next(s for s in images["steps"] if s.get("uses", "").startswith("docker/build-push"))
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert build["with"]["push"] is True
    assert {e["image"] for e in images["strategy"]["matrix"]["include"]} == set(gitops.IMAGE_NAMES)
    assert jobs["release"]["if"] == "github.ref_type == 'tag'"
    assert set(jobs["gitops"]["needs"]) == {"version", "images"}  # only after the push


def test_deploy_model_reads_mlflow_from_secrets() -> None:
    env = load("deploy-model.yml")["jobs"]["model"]["env"]
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert env[name] == f"${{{{ secrets.{name} }}}}"
    assert env["MLFLOW_MODEL_NAME"] == "${{ inputs.model_name }}"


def test_the_expression_evaluator() -> None:
    contexts = {
        "inputs": Strict({"a": "Production", "n": ""}, "inputs", missing=None),
        "github": Strict({"ref_type": "tag", "ref_name": "v1.0.0"}, "github"),
        "__status__": "success",
    }
    assert evaluate("inputs.a == 'production'", contexts) is True  # case-insensitive
    assert evaluate("inputs.a == 'Production' && 'p' || 's'", contexts) == "p"
    assert evaluate("inputs.n || 'padrão'", contexts) == "padrão"
    assert evaluate("!(inputs.a != 'Production')", contexts) is True
    assert evaluate("format('{0}-{1}', github.ref_name, 1)", contexts) == "v1.0.0-1"
    assert evaluate("startsWith(github.ref_name, 'v') && contains('abc', 'B')", contexts)
    assert evaluate("inputs['a']", contexts) == "Production"
    assert evaluate("inputs.undeclared", contexts) is None
    assert condition("github.ref_type == 'tag'", contexts)
    assert not condition("${{ failure() }}", contexts)
    assert interpolate("x-${{ github.ref_name }}-${{ inputs.n }}", contexts) == "x-v1.0.0-"
    for bad in ("github.typo", "nope.x", "inputs.a ==", "unknown()", "'a' 'b'"):
        with pytest.raises(ExpressionError):
            evaluate(bad, contexts)
    assert _read_outputs("a=1\nb<<EOF\nx\ny\nEOF\n") == {"a": "1", "b": "x\ny"}


# ---------------------------------------------------------------------------------------------
# cd.yml: tag → images → GitOps pull request with `passos-magicos gitops set-image`


def manifests_sources() -> list[Any]:
    real = ROOT / "k8s"
    return [
        pytest.param(FIXTURES, id="fixture"),
        pytest.param(
            real,
            id="k8s-real",
            marks=pytest.mark.skipif(not real.is_dir(), reason="k8s/ ainda não existe"),
        ),
    ]


def cd_runner(workspace: Path, text: str | None = None, **kwargs: Any) -> Runner:
    return Runner(
        text or (WORKFLOWS / "cd.yml").read_text(),
        workspace,
        scratch=workspace.parent / f"{workspace.name}-runner",
        secrets={"DOCKERHUB_USERNAME": DOCKERHUB_USER, "DOCKERHUB_TOKEN": "token-docker"},
        **kwargs,
    )


def run_cd(runner: Runner) -> dict[str, JobResult]:
    version = succeeded(runner.run("version")[0])
    images = runner.run("images", {"version": version})
    for image in images:
        succeeded(image)
    needs = {"version": version, "images": images[0]}
    return {
        "version": version,
        "images": images[0],
        "gitops": runner.run("gitops", needs)[0],
        "release": runner.run("release", needs)[0],
        **{f"images:{r.matrix['image']}": r for r in images},
    }


@pytest.mark.parametrize("source", manifests_sources())
def test_cd_on_a_tag_opens_the_gitops_pr_and_a_release(source: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(source, workspace / "k8s")
    before = snapshot(workspace / "k8s")
    github = {"ref": "refs/tags/v1.4.0", "ref_name": "v1.4.0", "ref_type": "tag"}
    runner = cd_runner(workspace, event="push", github=github)
    jobs = run_cd(runner)

    assert jobs["version"].outputs == {"tag": "v1.4.0"}
    for name in gitops.IMAGE_NAMES:
        build = jobs[f"images:{name}"].step("build-push").with_
        assert build["tags"] == f"docker.io/{DOCKERHUB_USER}/{name}:v1.4.0"
        assert build["platforms"] == "linux/amd64,linux/arm64" and build["push"] == "true"
        assert build["cache-from"] == f"type=gha,scope={name}"
    gitops_job = succeeded(jobs["gitops"])
    assert [call[0] for call in uv_calls(runner)] == ["sync", "run"]  # synced before the CLI
    cli_step = gitops_job.step("gitops set-image")
    assert "5 de 5" in cli_step.stdout or "imagens atualizadas" in cli_step.stdout

    changed = changes_by_file(before, snapshot(workspace / "k8s"))
    assert changed, "o PR GitOps não teria mudanças"
    for rows in changed.values():
        for _, old, new in rows:
            assert "image:" in old and "image:" in new
            assert f"docker.io/{DOCKERHUB_USER}/passos-magicos-" in new and ":v1.4.0" in new
    pull_request = gitops_job.step("pull request").with_
    assert pull_request["add-paths"] == "k8s/**"
    assert pull_request["base"] == "main" and pull_request["branch"] == "gitops/imagens-v1.4.0"
    checkout = gitops_job.steps[0]
    assert checkout.uses == "actions/checkout@v4" and checkout.with_ == {"ref": "main"}
    release = jobs["release"]
    assert release.ran and release.step("action-gh-release").with_["tag_name"] == "v1.4.0"


def test_cd_by_hand_tags_with_the_commit_and_makes_no_release(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(FIXTURES, workspace / "k8s")
    jobs = run_cd(cd_runner(workspace, event="workflow_dispatch"))
    assert jobs["version"].outputs == {"tag": "sha-0123456"}
    succeeded(jobs["gitops"])
    assert not jobs["release"].ran
    images = {
        image
        for path in (workspace / "k8s").glob("*.yaml")
        for image in re.findall(r"image: ['\"]?(\S+?)['\"]?(?:\s|$)", path.read_text())
        if "passos-magicos-" in image
    }
    assert images == {
        f"docker.io/{DOCKERHUB_USER}/{name}:sha-0123456" for name in gitops.IMAGE_NAMES
    }


def test_cd_refuses_an_invalid_tag(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(FIXTURES, workspace / "k8s")
    runner = cd_runner(workspace, event="workflow_dispatch", inputs={"tag": "v1 com espaço"})
    version = runner.run("version")[0]
    assert version.status == "failure"
    assert "tag de imagem inválida" in version.steps[0].stdout


def test_a_renamed_gitops_subcommand_fails_the_cd_run(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(FIXTURES, workspace / "k8s")
    text = (WORKFLOWS / "cd.yml").read_text()
    assert text.count("passos-magicos gitops set-image --tag") == 1
    mutated = text.replace(
        "passos-magicos gitops set-image --tag", "passos-magicos gitops set-tag --tag"
    )
    jobs = run_cd(cd_runner(workspace, mutated, event="workflow_dispatch"))
    assert jobs["gitops"].status == "failure"
    assert "No such command 'set-tag'" in jobs["gitops"].log()
    mutated = text.replace('--tag "$TAG"', '--version "$TAG"')
    jobs = run_cd(cd_runner(tmp_path / "ws", mutated, event="workflow_dispatch"))
    assert jobs["gitops"].status == "failure"
    assert "No such option: --version" in jobs["gitops"].log()


# ---------------------------------------------------------------------------------------------
# deploy-model.yml: promote / rollback in MLflow, GitOps PR for production


@dataclass
class Registry:
    """An embedded MLflow store with two approved versions of MODEL (@staging = 2)."""

    tracking_uri: str


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One real `train` (logistic regression, synthetic data), and version 2 registered from
    the same run (a second training would only cost time: the workflow never trains)."""
    base = tmp_path_factory.mktemp("registry")
    data = base / "pede.csv"
    data.write_bytes(synthetic_csv(seed=7, students=900))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(base)
        for name in ("MLFLOW_TRACKING_URI", "PEDE_DATA_PATH", "MODEL_SOURCE", "MLFLOW_MODEL_STAGE"):
            patch.delenv(name, raising=False)
        patch.setenv("DATA_DIR", str(base / "data"))
        patch.setenv("MODELS_DIR", str(base / "models"))
        patch.setenv("MLFLOW_MODEL_NAME", MODEL)
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.setenv("CV_FOLDS", "2")
        trained = json.loads(
            cli("train", "--data", str(data), "--model", "logistic_regression", "--json").stdout
        )
        assert trained["aprovado"] is True and trained["versao"] == "1", trained["portao"]
        from passos_magicos import registry as mlflow_registry
        from passos_magicos.settings import get_settings

        client = mlflow_registry.configure(get_settings())
        first = client.get_model_version(MODEL, "1")
        second = client.create_model_version(
            MODEL, first.source, run_id=first.run_id, tags=dict(first.tags)
        )
        client.set_registered_model_alias(MODEL, "staging", second.version)
        yield Registry(get_settings().local_tracking_uri)


@contextmanager
def registry_env(tracking_uri: str, models_dir: Path) -> Iterator[None]:
    """In-process CLI calls against a workspace's registry copy (setup and checks)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        patch.setenv("MLFLOW_MODEL_NAME", MODEL)
        patch.setenv("MODELS_DIR", str(models_dir))
        patch.setenv("PROMOTED_BY", "preparo-do-teste")
        yield


def model_workspace(
    registry: Registry, tmp_path: Path, source: Path = FIXTURES
) -> tuple[Path, str]:
    """A workspace with the fixture manifests and its own copy of the registry database (the
    artifacts stay where training wrote them: the workflow only reads them)."""
    workspace = tmp_path / "ws"
    shutil.copytree(source, workspace / "k8s")
    database = tmp_path / "mlflow.db"
    source = registry.tracking_uri.removeprefix("sqlite:///")
    with sqlite3.connect(source) as src, sqlite3.connect(database) as dst:
        src.backup(dst)
    return workspace, f"sqlite:///{database}"


def deploy(
    workspace: Path, tracking_uri: str, text: str | None = None, **inputs: str
) -> tuple[Runner, JobResult]:
    runner = Runner(
        text or (WORKFLOWS / "deploy-model.yml").read_text(),
        workspace,
        scratch=workspace.parent / f"{workspace.name}-runner",
        event="workflow_dispatch",
        inputs={"model_name": MODEL, **inputs},
        secrets={
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_TRACKING_USERNAME": "usuario-mlflow",
            "MLFLOW_TRACKING_PASSWORD": "senha-mlflow",
        },
    )
    return runner, runner.run("model")[0]


def registry_state(tracking_uri: str, workspace: Path) -> dict[str, Any]:
    with registry_env(tracking_uri, workspace / "models"):
        payload: dict[str, Any] = json.loads(cli("models", "--json").stdout)
    return payload


def aliases_of(payload: dict[str, Any]) -> dict[str, str]:
    return {alias: row["version"] for row in payload["versoes"] for alias in row["aliases"]}


@pytest.mark.slow
def test_deploy_model_runs_every_cli_step(registry: Registry, tmp_path: Path) -> None:
    """promote → Production (GitOps PR), promote → Staging (no PR), rollback (GitOps PR): all
    the CLI steps of the workflow run, against the registry, with the inputs as given."""
    workflow = load("deploy-model.yml")
    source = ROOT / "k8s" if (ROOT / "k8s" / "deployment.yaml").exists() else FIXTURES
    promote = model_workspace(registry, tmp_path / "promote", source)  # real manifests if any
    staging = model_workspace(registry, tmp_path / "staging")
    rollback = model_workspace(registry, tmp_path / "rollback")
    with registry_env(rollback[1], rollback[0] / "models"):  # production was 1, then 2
        cli("promote", "--version", "1")
        cli("promote", "--version", "2")
        cli("gitops", "set-model-version", "--version", "2", "--dir", str(rollback[0] / "k8s"))
    before = {
        name: snapshot(ws / "k8s")
        for name, (ws, _) in (("promote", promote), ("staging", staging), ("rollback", rollback))
    }
    # Independent workspaces and registries: the three runs go in parallel (subprocess-bound).
    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = {
            "promote": pool.submit(deploy, *promote, action="promote", target_stage="Production"),
            "staging": pool.submit(
                deploy, *staging, action="promote", target_stage="Staging", version="1"
            ),
            "rollback": pool.submit(deploy, *rollback, action="rollback"),
        }
        results = {name: future.result() for name, future in runs.items()}
    for _, job in results.values():
        succeeded(job)
    executed = {("model", s.index) for _, job in results.values() for s in job.steps if s.ran}

    # 1. promote @staging (v2, no version given) to Production: alias, manifests, PR
    (workspace, uri), (runner, job) = promote, results["promote"]
    state = registry_state(uri, workspace)
    assert aliases_of(state) == {"staging": "2", "production": "2"}
    assert state["historico"][-1]["por"] == "teste-ci"  # GITHUB_ACTOR, as on GitHub
    assert "@production: versão — → 2" in job.step("passos-magicos promote").stdout
    assert f"({MODEL})" in (runner.tmp / "summary.md").read_text()  # the promote line
    assert uv_calls(runner)[0] == ["sync", "--frozen", "--no-dev", "--extra", "train"]
    assert job.step("Versão agora em @production").outputs == {"version": "2"}
    changed = changes_by_file(before["promote"], snapshot(workspace / "k8s"))
    assert list(changed) == ["deployment.yaml"]
    keys = sorted(row[1].split(":")[0].strip() for row in changed["deployment.yaml"])
    assert keys == [gitops.MODEL_VERSION_ANNOTATION, gitops.RELOAD_ANNOTATION]
    annotations = pod_annotations(workspace / "k8s" / "deployment.yaml")
    assert annotations[gitops.MODEL_VERSION_ANNOTATION] == "2"
    moment = annotations[gitops.RELOAD_ANNOTATION]
    assert abs((datetime.now(UTC) - datetime.fromisoformat(moment)).total_seconds()) < 600
    pull_request = job.step("pull request GitOps")
    assert pull_request.ran and pull_request.with_["add-paths"] == "k8s/**"
    assert pull_request.with_["branch"] == f"gitops/modelo-{MODEL}-v2-4242"
    assert (workspace / "models" / "ponto-virada").is_dir()  # promote exported @production

    # 2. promote v1 to Staging: alias moved, no manifest touched, no PR
    (workspace, uri), (runner, job) = staging, results["staging"]
    assert aliases_of(registry_state(uri, workspace)) == {"staging": "1"}
    assert snapshot(workspace / "k8s") == before["staging"]
    assert not job.step("pull request GitOps").ran
    assert not job.step("passos-magicos gitops").ran

    # 3. rollback with no version: @production goes back to the previous one (2 → 1)
    (workspace, uri), (runner, job) = rollback, results["rollback"]
    assert aliases_of(registry_state(uri, workspace))["production"] == "1"
    assert "rollback de @production: versão 2 → 1" in job.step("passos-magicos rollback").stdout
    changed = changes_by_file(before["rollback"], snapshot(workspace / "k8s"))
    assert [row[0] for row in changed["deployment.yaml"]] == [39, 40]
    annotations = pod_annotations(workspace / "k8s" / "deployment.yaml")
    assert annotations[gitops.MODEL_VERSION_ANNOTATION] == "1"
    assert job.step("pull request GitOps").with_["title"].startswith("GitOps: rollback")

    missing = [step for step in cli_steps(workflow) if step not in executed]
    assert not missing, f"passos da CLI nunca executados: {missing}"


def test_deploy_model_refuses_bad_inputs_before_touching_the_registry(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(FIXTURES, workspace / "k8s")
    uri = f"sqlite:///{tmp_path / 'nada.db'}"
    for inputs, message in (
        ({"action": "rollback", "target_stage": "Staging"}, "rollback só existe para Production"),
        ({"action": "promote", "version": "v3"}, "versão inválida"),
    ):
        runner, job = deploy(workspace, uri, **inputs)
        assert job.status == "failure" and message in job.steps[0].stdout
        assert not any(s.ran for s in job.steps[1:]), "nada deveria rodar depois"
        assert uv_calls(runner) == []
    _, job = deploy(workspace, "", action="promote")
    assert "MLFLOW_TRACKING_URI não está configurado" in job.steps[0].stdout
    assert not (tmp_path / "nada.db").exists()


def test_a_renamed_promote_flag_fails_the_deploy_run(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(FIXTURES, workspace / "k8s")
    text = (WORKFLOWS / "deploy-model.yml").read_text()
    assert text.count('args=(--to "$ALIAS")') == 1
    mutated = text.replace('args=(--to "$ALIAS")', 'args=(--stage "$ALIAS")')
    _, job = deploy(workspace, f"sqlite:///{tmp_path / 'm.db'}", mutated, action="promote")
    assert job.status == "failure"
    assert "No such option: --stage" in plain(job.step("passos-magicos promote").stderr)
    assert not job.step("pull request GitOps").ran


# ---------------------------------------------------------------------------------------------
# ci.yml: the manifest-validation job, executed with the offline copies of the schemas


def test_the_manifest_validation_job_passes_here(tmp_path: Path) -> None:
    needed = [ROOT / "Dockerfile", ROOT / "Dockerfile.dashboard", ROOT / "k8s"]
    needed += [ROOT / "argocd" / "application.yaml", ROOT / "argocd" / "pg-mlflow.yml"]
    absent = [str(path.relative_to(ROOT)) for path in needed if not path.exists()]
    if absent:
        pytest.skip(f"ainda não existem: {', '.join(absent)}")
    schemas = tmp_path / "schemas"
    for catalog_path, (name, digest) in SCHEMA_FILES.items():
        content = (VENDORED_SCHEMAS / name).read_bytes()
        assert hashlib.sha256(content).hexdigest() == digest, name  # the same file CI fetches
        target = schemas / catalog_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    runner = Runner(
        (WORKFLOWS / "ci.yml").read_text(),
        ROOT,  # read-only tools: they run on the checkout itself
        scratch=tmp_path / "runner",
        event="pull_request",
        rewrite={SCHEMA_URL: str(schemas)},
        skip={"checkov (k8s/)"},  # from PyPI through uvx: tests/deploy/test_k8s.py runs it
    )
    job = succeeded(runner.run("manifests")[0])
    assert [s.name for s in job.steps if s.script] == [
        "Ferramentas do grupo dev",
        "hadolint",
        "kubernetes-validate --strict",
        "check-jsonschema (Argo CD Application, CloudNativePG Cluster)",
        "actionlint",
    ]
