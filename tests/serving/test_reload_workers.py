"""Reload everywhere, against a real MLflow server and a real `passos-magicos serve` with two
uvicorn workers (two processes: each holds its own copy of the model).

- After `POST /admin/reload-model` returns, no worker answers with the old version: 0 of 200
  predictions, each on a new connection, with both workers seen answering.
- A promotion with no reload call reaches every worker within MODEL_POLL_SECONDS plus the
  load time.

Which worker answered: each connection sends its prediction first, then `GET /ready` on the
same connection (same worker), whose `processo` is that worker's pid. The prediction comes
first so that /ready (which also checks the reload marker) cannot freshen the worker for it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
import pytest

from passos_magicos.serving.runtime import MARKER_CHECK_SECONDS
from passos_magicos.settings import get_settings
from tests.flows import aliases, cli, synthetic_csv
from tests.integration.conftest import (  # noqa: F401  # the real service stack, for this module
    mlflow_server,
    postgres_url,
    s3_server,
    services_workdir,
)
from tests.services import (
    ManagedProcess,
    MlflowServer,
    free_port,
    start_process,
    venv_executable,
    wait_until_ready,
)
from tests.serving.conftest import ADMIN, ADMIN_TOKEN, API_TOKEN, AUTH, RECORD

pytestmark = [pytest.mark.slow, pytest.mark.services]

WORKERS: Final = 2
REQUESTS: Final = 200
CLIENTS: Final = 4  # concurrent clients (each request still on its own connection)
POLL_SECONDS: Final = 2.0  # MODEL_POLL_SECONDS of the second test
# Generous for one model download and load on 2 busy cores (measured: a few seconds).
LOAD_SECONDS: Final = 20.0
STARTUP_SECONDS: Final = 120.0


@dataclass(frozen=True)
class Registry:
    """Two approved versions of one registered model on the MLflow server."""

    root: Path
    env: dict[str, str]
    versions: tuple[str, str]


@dataclass(frozen=True)
class Answer:
    version: str
    pid: int
    request_id: str


@pytest.fixture(scope="module")
def registry(
    mlflow_server: MlflowServer,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Registry]:
    """Train two versions once for the module (logistic regression on synthetic data)."""
    import mlflow

    root = tmp_path_factory.mktemp("reload-workers")
    env = {
        "MLFLOW_TRACKING_URI": mlflow_server.tracking_uri,
        "MLFLOW_REGISTRY_URI": mlflow_server.tracking_uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
        "MLFLOW_MODEL_NAME": f"passos-magicos-ponto-virada-{uuid.uuid4().hex[:8]}",
        "DATA_DIR": str(root / "data"),
        "MODELS_DIR": str(root / "models"),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for name in (
            "PEDE_DATA_PATH",
            "MODEL_SOURCE",
            "MLFLOW_MODEL_STAGE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL",
            "MLFLOW_S3_ENDPOINT_URL",
        ):
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        mlflow.set_tracking_uri(mlflow_server.tracking_uri)
        mlflow.set_registry_uri(mlflow_server.tracking_uri)
        get_settings.cache_clear()
        data = root / "pede.csv"
        data.write_bytes(synthetic_csv(seed=3))
        versions = []
        for _ in range(2):
            trained = json.loads(
                cli("train", "--data", str(data), "--model", "logistic_regression", "--json").stdout
            )
            assert trained["aprovado"] is True, trained["portao"]
            versions.append(str(trained["versao"]))
        try:
            yield Registry(root, env, (versions[0], versions[1]))
        finally:
            if mlflow.active_run() is not None:
                mlflow.end_run()
            mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None is accepted: unset
            mlflow.set_registry_uri(None)  # type: ignore[arg-type]
            get_settings.cache_clear()


def promote(version: str) -> None:
    cli("promote", "--version", version)
    assert aliases()["production"] == version


def ask(url: str) -> Answer:
    """One prediction on a new connection, then /ready on the same one: who answered it."""
    with httpx.Client(base_url=url, timeout=60) as client:
        predicted = client.post("/predict", json=RECORD, headers=AUTH)
        assert predicted.status_code == 200, predicted.text
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
    return Answer(
        version=str(predicted.json()["modelo"]["versao"]),
        pid=int(ready.json()["processo"]),
        request_id=predicted.headers["x-request-id"],
    )


def _every_worker(url: str, version: str | None = None) -> bool:
    """True once WORKERS distinct pids answered /ready (with `version`, if given)."""
    pids: set[int] = set()
    for _ in range(40):
        try:
            response = httpx.get(f"{url}/ready", timeout=5)
        except httpx.HTTPError:
            return False
        body = response.json()
        if response.status_code != 200:
            return False
        if version is not None and body["modelo"]["versao"] != version:
            return False
        pids.add(int(body["processo"]))
        if len(pids) == WORKERS:
            return True
    return False


@contextmanager
def serve(registry: Registry, poll_seconds: float) -> Iterator[tuple[str, ManagedProcess]]:
    """`passos-magicos serve` with API_WORKERS=2, serving @production from the MLflow server;
    yields once every worker is ready."""
    executable = venv_executable("passos-magicos")
    assert executable, "passos-magicos não instalado no venv"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    logs = registry.root / f"logs-{port}"
    monitoring = f"sqlite:///{logs / 'monitoring.db'}"
    # A fresh store: both workers create its tables at once (database.create_tables).
    env = {
        **os.environ,
        **registry.env,
        "MODEL_SOURCE": "mlflow",
        "MLFLOW_ENABLED": "true",
        "API_WORKERS": str(WORKERS),
        "MODEL_POLL_SECONDS": str(poll_seconds),
        "API_TOKENS": API_TOKEN,
        "ADMIN_RELOAD_TOKEN": ADMIN_TOKEN,
        "PREDICTION_LOG_PATH": str(logs / "predictions.jsonl"),
        "MONITORING_STORE_URL": monitoring,
        "LOG_LEVEL": "INFO",
    }
    server = start_process(
        "api (2 workers)",
        [executable, "serve", "--port", str(port)],
        logs / "api.log",
        env,
        registry.root,
    )
    try:
        wait_until_ready(server, lambda: _every_worker(url), timeout=STARTUP_SECONDS, interval=0.3)
        yield url, server
    finally:
        server.stop()


def reload_model(url: str, expected: str, previous: str) -> float:
    """POST /admin/reload-model; the seconds it took to return."""
    started = time.monotonic()
    response = httpx.post(f"{url}/admin/reload-model", headers=ADMIN, timeout=120)
    seconds = time.monotonic() - started
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["versao_anterior"] == previous and body["versao"] == expected, body
    assert body["fonte"] == "mlflow" and body["propagada"] is True, body
    return seconds


def ask_many(url: str, count: int) -> list[Answer]:
    """`count` predictions, each on its own connection, a few at a time."""
    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(lambda _: ask(url), range(count)))


def test_after_the_reload_returns_no_worker_serves_the_old_version(registry: Registry) -> None:
    first, second = registry.versions
    promote(first)
    # MODEL_POLL_SECONDS=0: the workers do not follow the alias; only the reload moves them.
    with serve(registry, poll_seconds=0) as (url, server):
        assert {a.version for a in ask_many(url, 10)} == {first}
        promote(second)  # @production moves; without a reload nobody notices
        assert {a.version for a in ask_many(url, 10)} == {first}

        # Asked at once: the worker that did not get the reload call reloads before answering.
        seconds = [reload_model(url, second, first)]
        answers = ask_many(url, REQUESTS // 2)
        stale = [a for a in answers if a.version != second]

        # Back to the first version. This time nobody asks for a second: the other worker's
        # background check (every second) starts its reload first, and requests that arrive
        # meanwhile wait for it instead of getting the old model.
        promote(first)
        seconds.append(reload_model(url, first, second))
        time.sleep(MARKER_CHECK_SECONDS * 1.2)
        later = ask_many(url, REQUESTS - len(answers))
        stale += [a for a in later if a.version != first]
        answers += later
        per_worker = Counter(a.pid for a in answers)
        # The request id's prefix is random per process: one per worker, as the pids say.
        prefixes = {a.pid: a.request_id[:8] for a in answers}
        log = server.log_tail()

    assert not stale, (
        f"{len(stale)} de {REQUESTS} respostas com a versão antiga depois da recarga: "
        f"{stale[:5]}\n{log}"
    )
    assert len(answers) == REQUESTS
    assert len(per_worker) == WORKERS, f"só {dict(per_worker)} responderam: os 2 workers?"
    assert len(set(prefixes.values())) == WORKERS, prefixes
    print(  # the measured figures, for the report (pytest -s)
        f"recargas em {', '.join(f'{s:.1f}' for s in seconds)} s; 0 de {REQUESTS} com a versão "
        f"antiga (por worker: {dict(per_worker)})"
    )


def test_a_promotion_reaches_every_worker_within_the_poll_bound(registry: Registry) -> None:
    first, latest = registry.versions
    promote(first)
    with serve(registry, poll_seconds=POLL_SECONDS) as (url, server):
        promote(latest)  # no reload call
        promoted = time.monotonic()
        bound = POLL_SECONDS + LOAD_SECONDS
        converged: dict[int, float] = {}  # pid → seconds until it first answered `latest`
        seen: set[int] = set()
        while len(converged) < WORKERS:
            elapsed = time.monotonic() - promoted
            assert elapsed <= bound, (
                f"a promoção não chegou a todos os workers em MODEL_POLL_SECONDS "
                f"({POLL_SECONDS:g} s) + carga ({LOAD_SECONDS:g} s): {converged} de {seen}\n"
                f"{server.log_tail()}"
            )
            answer = ask(url)
            seen.add(answer.pid)
            if answer.version == latest:
                converged.setdefault(answer.pid, time.monotonic() - promoted)
            else:
                assert answer.version == first, answer
                # A worker never goes back to the old version once it served the new one.
                assert answer.pid not in converged, (answer, converged)
            time.sleep(0.05)
        after = ask_many(url, 20)

    assert {a.version for a in after} == {latest}
    slowest = max(converged.values())
    assert slowest <= bound, (
        f"o último worker levou {slowest:.1f} s (limite: MODEL_POLL_SECONDS {POLL_SECONDS:g} s "
        f"+ carga {LOAD_SECONDS:g} s)"
    )
    print(
        f"promoção sem recarga: todos os workers na v{latest} em {slowest:.1f} s "
        f"(MODEL_POLL_SECONDS={POLL_SECONDS:g}; por worker: "
        f"{ {pid: round(s, 1) for pid, s in converged.items()} })"
    )
