"""MODEL_POLL_SECONDS: the API follows @production by itself when a new version is promoted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from passos_magicos.serving.app import create_app
from passos_magicos.settings import get_settings
from tests.flows import cli, synthetic_csv
from tests.serving.conftest import AUTH, RECORD, settings_for

pytestmark = pytest.mark.slow


def test_the_api_follows_the_production_alias(isolated: Path) -> None:
    data = isolated / "pede.csv"
    data.write_bytes(synthetic_csv(seed=3))
    cli("train", "--data", str(data), "--model", "compact_logistic")
    cli("promote")
    base = get_settings()
    settings = settings_for(
        isolated,
        MODEL_SOURCE="mlflow",
        MLFLOW_ENABLED=True,
        DATA_DIR=base.DATA_DIR,
        MODELS_DIR=base.MODELS_DIR,
        MODEL_POLL_SECONDS=0.5,
    )
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert client.get("/model/info").json()["versao"] == "1"
        cli("train", "--data", str(data), "--model", "hist_gradient_boosting")
        cli("promote")  # v2 → @production; nobody calls /admin/reload-model
        deadline = time.monotonic() + 60
        while client.get("/model/info").json()["versao"] != "2":
            assert time.monotonic() < deadline, "a API não seguiu o alias"
            time.sleep(0.3)
        answer = client.post("/predict", json=RECORD, headers=AUTH).json()
        assert answer["modelo"]["versao"] == "2" and answer["modelo"]["fonte"] == "mlflow"
        assert client.get("/model/info").json()["tipo"] == "hist_gradient_boosting"


def test_following_the_alias_leaves_mlflows_global_uris_alone(isolated: Path) -> None:
    """The poller, the reload and the versions list run in the API's threads, beside whatever
    else the process does with MLflow (a `train` in the same interpreter, in the tests): they
    must not repoint MLflow's process-wide tracking and registry URIs."""
    import mlflow

    data = isolated / "pede.csv"
    data.write_bytes(synthetic_csv(seed=3))
    cli("train", "--data", str(data), "--model", "compact_logistic")
    cli("promote")
    base = get_settings()
    elsewhere = f"sqlite:///{isolated / 'outro-mlflow.db'}"
    mlflow.set_tracking_uri(elsewhere)
    mlflow.set_registry_uri(elsewhere)
    settings = settings_for(
        isolated,
        MODEL_SOURCE="mlflow",
        MLFLOW_ENABLED=True,
        DATA_DIR=base.DATA_DIR,
        MODELS_DIR=base.MODELS_DIR,
        MODEL_POLL_SECONDS=0.2,
    )
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert client.get("/model/info").json()["fonte"] == "mlflow"
        assert client.get("/model/versions", headers=AUTH).status_code == 200
        time.sleep(1.0)  # a few polls
        assert mlflow.get_tracking_uri() == elsewhere
        assert mlflow.get_registry_uri() == elsewhere
