"""The API against a real MLflow server that goes away: it keeps serving from the local copy
(fallback), and without a fallback it waits not-ready and recovers when MLflow returns."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from passos_magicos.serving.app import create_app
from passos_magicos.settings import get_settings
from tests.flows import aliases, cli, synthetic_csv
from tests.services import MlflowServer
from tests.serving.conftest import ADMIN, AUTH, RECORD, settings_for

pytestmark = pytest.mark.slow


def _wait(client: TestClient, code: int, timeout: float = 90) -> dict[str, Any]:
    """Until /ready answers `code` (for 503: once a load attempt has failed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get("/ready")
        body: dict[str, Any] = response.json()
        if response.status_code == code and (code == 200 or body["erro"]):
            return body
        time.sleep(0.2)
    raise AssertionError(f"/ready não chegou a {code}: {client.get('/ready').json()}")


def test_fallback_when_mlflow_stops_mid_test(
    isolated: Path, mlflow_env: dict[str, str], mlflow_server: MlflowServer
) -> None:
    data = isolated / "pede.csv"
    data.write_bytes(synthetic_csv(seed=3))
    cli("train", "--data", str(data), "--model", "logistic_regression")
    cli("promote")
    # The MLflow server is shared by the session: other tests may have registered versions.
    version = aliases()["production"]
    base = get_settings()

    def settings(**overrides: Any) -> Any:
        return settings_for(
            isolated,
            MODEL_SOURCE="mlflow",
            MLFLOW_ENABLED=True,
            MLFLOW_TRACKING_URI=mlflow_server.tracking_uri,
            DATA_DIR=base.DATA_DIR,
            MODELS_DIR=base.MODELS_DIR,
            MODEL_RETRY_SECONDS=1.0,
            **overrides,
        )

    with TestClient(create_app(settings())) as client:
        assert _wait(client, 200)["modelo"] == {"versao": version, "fonte": "mlflow"}
        assert client.post("/predict", json=RECORD, headers=AUTH).status_code == 200
        # The serving copy of @production is now also the local fallback.
        assert (base.MODELS_DIR / "ponto-virada" / "MLmodel").exists()

        mlflow_server.stop()
        reload = client.post("/admin/reload-model", headers=ADMIN)
        assert reload.status_code == 200 and reload.json()["fonte"] == "fallback"
        answer = client.post("/predict", json=RECORD, headers=AUTH).json()
        assert answer["modelo"] == {
            "nome": base.MLFLOW_MODEL_NAME,
            "versao": version,
            "alias": None,
            "fonte": "fallback",
        }
        assert "MLflow indisponível" in client.get("/ready").json()["erro"]

        # A new replica starting while MLflow is down comes up on the fallback…
        with TestClient(create_app(settings())) as late:
            assert _wait(late, 200)["modelo"]["fonte"] == "fallback"
        # …and one that may not fall back stays not-ready, without crashing, until MLflow is back.
        with TestClient(create_app(settings(MODEL_FALLBACK_LOCAL=False))) as strict:
            assert "MLflow indisponível" in _wait(strict, 503)["erro"]
            assert strict.post("/predict", json=RECORD, headers=AUTH).status_code == 503
            mlflow_server.start()
            assert _wait(strict, 200)["modelo"] == {"versao": version, "fonte": "mlflow"}
        # The first API went back to MLflow by itself (background retry).
        assert _wait(client, 200)["modelo"]["fonte"] in ("mlflow", "fallback")
        deadline = time.monotonic() + 60
        while client.get("/ready").json()["modelo"]["fonte"] != "mlflow":
            assert time.monotonic() < deadline, "a API não voltou para o MLflow"
            time.sleep(0.5)
