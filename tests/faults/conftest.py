"""Shared pieces of the faults drill: the real service stack (the integration fixtures), one
trained and promoted model in a real MLflow server for the whole package, the CLI run as a
real process (so it can be `kill -9`ed), and a seeded source of random kill points.

Every random choice comes from PASSOS_FAULT_SEED (a fresh seed when unset); the seed and every
delay are printed (`pytest -s` or the failure report shows them), so a failing run can be
replayed exactly with PASSOS_FAULT_SEED=<seed>.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from tests.flows import synthetic_csv

# The service fixtures (PostgreSQL, SeaweedFS, `mlflow server`) are the integration suite's:
# imported, not copied, so both suites start the services the same way.
from tests.integration.conftest import (  # noqa: F401  # fixtures, used by name
    mlflow_server,
    postgres_url,
    s3_server,
    services_workdir,
)
from tests.services import (
    ManagedProcess,
    MlflowServer,
    PostgresConfig,
    free_port,
    start_process,
    venv_executable,
    wait_until_ready,
)

SEED: Final = int(os.environ.get("PASSOS_FAULT_SEED") or random.SystemRandom().randrange(10**6))
CLI_TIMEOUT: Final = 240.0
# Variables of the developer's shell that must not leak into the drill's processes.
_DROPPED: Final = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_MODEL_NAME",
    "PEDE_DATA_PATH",
    "MODEL_SOURCE",
    "MLFLOW_MODEL_STAGE",
    "ONLINE_STORE_URL",
    "MONITORING_STORE_URL",
    "FOLLOWUPS_STORE_URL",
    "PREDICTION_LOG_PATH",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "MLFLOW_S3_ENDPOINT_URL",
    "SLACK_WEBHOOK_URL",
)


def rng(name: str) -> random.Random:
    """A random source per drill, derived from the package seed."""
    return random.Random(f"{SEED}:{name}")


def report(message: str) -> None:
    """Print a measured figure of the drill (shown with -s, and in the report on failure)."""
    print(f"[falhas seed={SEED}] {message}", flush=True)


def passos_command() -> list[str]:
    executable = venv_executable("passos-magicos")
    assert executable is not None, "console script passos-magicos não encontrado no venv"
    return [executable]


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    env |= {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "PYTHONUNBUFFERED": "1",
        "BACKTEST_REPLICATES": "100",  # the minimum: the drill is about state, not intervals
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    }
    return env | values


def run_cli(
    env: Mapping[str, str], cwd: Path, *args: str, expect: int = 0
) -> subprocess.CompletedProcess[str]:
    """`passos-magicos <args>` as a real process, to completion."""
    done = subprocess.run(  # our own console script, fixed arguments
        [*passos_command(), *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert done.returncode == expect, (
        f"passos-magicos {' '.join(args)}: código {done.returncode}\n"
        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done


@dataclass(frozen=True)
class Killed:
    delay: float
    killed: bool  # False: it had already finished before the delay ran out
    returncode: int | None
    output_tail: str


def kill_after(env: Mapping[str, str], cwd: Path, log: Path, delay: float, *args: str) -> Killed:
    """Start `passos-magicos <args>` in its own process group and SIGKILL the whole group
    `delay` seconds later (children included), unless it finished first."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*passos_command(), *args],
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            process.wait(timeout=delay)
            killed = False
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            killed = True
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return Killed(delay, killed, process.returncode, "\n".join(lines[-3:]))


def _ready(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_api(env: Mapping[str, str], root: Path, name: str) -> tuple[ManagedProcess, str]:
    """`passos-magicos serve` as a real process on a free port, once /ready answers 200."""
    port = free_port()
    command = [*passos_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = start_process(name, command, root / f"{name}.log", env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(process, lambda: _ready(url), timeout=120)
    return process, url


# ---------------------------------------------------------------------------------------------
# One registry for the package: a model trained and promoted once, on the real MLflow stack


@dataclass(frozen=True)
class Registry:
    server: MlflowServer
    root: Path
    data: Path
    model_name: str
    env: dict[str, str]  # what every `passos-magicos` process of the drill runs with
    train_seconds: float  # one full `train` (the range the kill point is drawn from)
    production: str

    @property
    def tracking_uri(self) -> str:
        return self.server.tracking_uri


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of the drill's own (online store, follow-ups, monitoring)."""
    config = PostgresConfig.from_env()
    name = config.create_database(prefix="passos_faults")
    yield config.sqlalchemy_url(name)
    config.drop_database(name)


@pytest.fixture(scope="session")
def registry(
    mlflow_server: MlflowServer,  # noqa: F811  # the imported fixture, requested by name
    pg_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Registry:
    root = tmp_path_factory.mktemp("faults-registry")
    data = root / "pede.csv"
    data.write_bytes(synthetic_csv(seed=7, students=600))
    name = f"passos-faults-{uuid.uuid4().hex[:8]}"
    env = clean_env(
        MLFLOW_TRACKING_URI=mlflow_server.tracking_uri,
        MLFLOW_MODEL_NAME=name,
        DATA_DIR=str(root / "data"),
        MODELS_DIR=str(root / "models"),
        ONLINE_STORE_URL=pg_database,
        PREDICTION_LOG_PATH=str(root / "logs" / "predictions.jsonl"),
        MONITORING_STORE_URL=f"sqlite:///{root / 'logs' / 'monitoring.db'}",
        MONITOR_REPORT_DIR=str(root / "logs" / "monitoring"),
        API_URL="http://127.0.0.1:9",  # no API in these drills: /metrics is refused at once
    )
    if not mlflow_server.running:
        mlflow_server.start()
    started = time.monotonic()
    trained = json.loads(
        run_cli(
            env, root, "train", "--data", str(data), "--model", "logistic_regression", "--json"
        ).stdout
    )
    seconds = time.monotonic() - started
    assert trained["aprovado"] is True, trained
    run_cli(env, root, "promote")
    report(f"modelo base: versão {trained['versao']} em @production; train levou {seconds:.1f} s")
    return Registry(mlflow_server, root, data, name, env, seconds, str(trained["versao"]))
