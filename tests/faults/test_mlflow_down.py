"""MLflow unreachable at start-up and during a reload (tests/integration/test_serving_fallback.py
covers a reload that falls back to the local copy and a replica starting on it; this adds what
it does not): a reload with no fallback allowed answers 503 and the current model keeps serving,
/ready names the error; a replica starting with no local copy waits not-ready (503, no crash);
every one of them is back on MLflow once the server returns, within a measured bound."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from passos_magicos.serving.app import create_app
from tests.faults.conftest import Registry, report
from tests.serving.conftest import ADMIN, AUTH, RECORD, settings_for

pytestmark = [pytest.mark.slow, pytest.mark.services]

RECOVERY_SECONDS = 60.0


@pytest.fixture
def fast_failing_mlflow(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The client gives up on a dead server in seconds (what the runtime sets by default)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    yield


def _ready(client: TestClient) -> tuple[int, dict[str, Any]]:
    response = client.get("/ready")
    body: dict[str, Any] = response.json()
    return response.status_code, body


def _until(client: TestClient, fonte: str, timeout: float = RECOVERY_SECONDS) -> float:
    """Seconds until /ready answers 200 from `fonte`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        code, body = _ready(client)
        if code == 200 and (body["modelo"] or {}).get("fonte") == fonte:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"/ready não chegou a {fonte} em {timeout:.0f} s: {_ready(client)}")


def _until_failed(client: TestClient, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, body = _ready(client)
        if code == 503 and body["erro"]:
            return body
        time.sleep(0.2)
    raise AssertionError(f"/ready não registrou a falha: {_ready(client)}")


def test_mlflow_down_at_start_up_and_during_a_reload(
    registry: Registry, tmp_path: Path, fast_failing_mlflow: None
) -> None:
    server = registry.server
    if not server.running:
        server.start()

    def app(folder: str, **overrides: Any) -> Any:
        return create_app(
            settings_for(
                tmp_path / folder,
                MODEL_SOURCE="mlflow",
                MLFLOW_ENABLED=True,
                MLFLOW_TRACKING_URI=registry.tracking_uri,
                MLFLOW_MODEL_NAME=registry.model_name,
                MODEL_RETRY_SECONDS=1.0,
                **overrides,
            )
        )

    production = registry.production
    with ExitStack() as stack:
        strict = stack.enter_context(TestClient(app("estrita", MODEL_FALLBACK_LOCAL=False)))
        _until(strict, "mlflow")
        server.stop()
        try:
            # 1) A reload while MLflow is down, no fallback allowed: 503, the model stays.
            started = time.monotonic()
            reload = strict.post("/admin/reload-model", headers=ADMIN)
            reload_seconds = time.monotonic() - started
            assert reload.status_code == 503, reload.text
            assert "o modelo atual continua servindo" in reload.json()["detail"]
            answers = [strict.post("/predict", json=RECORD, headers=AUTH) for _ in range(10)]
            assert [a.status_code for a in answers] == [200] * 10
            assert {a.json()["modelo"]["versao"] for a in answers} == {production}
            assert {a.json()["modelo"]["fonte"] for a in answers} == {"mlflow"}
            code, body = _ready(strict)
            assert code == 200 and body["modelo"] == {"versao": production, "fonte": "mlflow"}
            assert "recarga falhou" in body["erro"] and "MLflow indisponível" in body["erro"]
            report(
                f"MLflow fora: recarga recusada (503) em {reload_seconds:.1f} s; 10 de 10 "
                f"previsões seguiram com a versão {production} (mlflow); /ready: erro informado"
            )

            # 2) Start-up while MLflow is down, fallback allowed but no local copy: not ready.
            empty = stack.enter_context(TestClient(app("sem-copia")))
            failed = _until_failed(empty)
            assert "MLflow indisponível" in failed["erro"] and failed["modelo"] is None
            assert empty.post("/predict", json=RECORD, headers=AUTH).status_code == 503
            assert empty.get("/health").status_code == 200

            # 3) Start-up while MLflow is down with the local copy: serves the fallback.
            copy = tmp_path / "com-copia" / "models"
            shutil.copytree(tmp_path / "estrita" / "models", copy)
            local = stack.enter_context(TestClient(app("com-copia", MODELS_DIR=copy)))
            _until(local, "fallback")
            code, body = _ready(local)
            assert body["modelo"] == {"versao": production, "fonte": "fallback"}
            assert "MLflow indisponível" in body["erro"]
            fallback = local.post("/predict", json=RECORD, headers=AUTH)
            assert fallback.status_code == 200
            assert fallback.json()["modelo"]["fonte"] == "fallback"
        finally:
            server.start()

        # 4) MLflow back: every one of them returns to it by itself or on the next reload.
        back = {"sem-copia": _until(empty, "mlflow"), "com-copia": _until(local, "mlflow")}
        again = strict.post("/admin/reload-model", headers=ADMIN)
        assert again.status_code == 200 and again.json()["fonte"] == "mlflow", again.text
        code, body = _ready(strict)
        assert code == 200 and body["erro"] is None
        report(
            "MLflow de volta: réplica sem cópia pronta em "
            f"{back['sem-copia']:.1f} s, réplica no fallback de volta ao mlflow em "
            f"{back['com-copia']:.1f} s; recarga 200 e /ready sem erro"
        )
