"""A served model and feature store in a temp folder, the app in-process (TestClient) and a
real uvicorn server on loopback for tests that need concurrency."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from passos_magicos.data.dataset import build_dataset
from passos_magicos.data.storage import SourceFile
from passos_magicos.data.synth import render_synthetic
from passos_magicos.feature_store.materialize import materialize_online, store_offline
from passos_magicos.features import build_transitions
from passos_magicos.reference_profile import REFERENCE_FILE, build_reference
from passos_magicos.serving.app import create_app
from passos_magicos.settings import Settings
from passos_magicos.training.evaluation import fit_recipe
from passos_magicos.training.packaging import save_local

API_TOKEN = "token-de-teste-1"
ADMIN_TOKEN = "token-admin-teste"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
RECORD: dict[str, Any] = {
    "aluno_id": "RA-123",
    "ano": 2024,
    "fase": 3,
    "idade": 13,
    "anos_pm": 2,
    "pedra": "Ametista",
    "inde": 7.6,
    "iaa": 8.5,
    "ieg": 8.2,
    "ips": 7.5,
    "ipp": 7.3,
    "ida": 6.9,
    "ipv": 8.1,
    "ian": 5.0,
    "pv": False,
    "anterior": {"inde": 7.1, "ipv": 7.6, "ida": 6.2, "ieg": 7.9, "pv": False},
}


def settings_for(root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "DATA_DIR": root / "data",
        "MODELS_DIR": root / "models",
        "MODEL_SOURCE": "local",
        "MLFLOW_ENABLED": False,
        "MLFLOW_TRACKING_URI": None,
        "API_TOKENS": f"{API_TOKEN},outro-token",
        "ADMIN_RELOAD_TOKEN": ADMIN_TOKEN,
        "PREDICTION_LOG_PATH": root / "logs" / f"{uuid.uuid4().hex}.jsonl",
        "MONITORING_STORE_URL": f"sqlite:///{root / 'logs' / 'monitoring.db'}",
        "SLACK_WEBHOOK_URL": None,
        "CORS_ORIGINS": [],
        "FEATURE_REFRESH_SECONDS": 0.5,
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


def publish_local_model(settings: Settings, version: str, kind: str, seed: int) -> None:
    content = render_synthetic(students=500, seed=seed)
    dataset = build_dataset([SourceFile("s.csv", "s.csv", content)])
    transitions = build_transitions(dataset.table)
    classifier, _ = fit_recipe(kind, transitions.X, transitions.y, transitions.groups, 3, seed)
    metadata = {
        "model_name": "passos-magicos-ponto-virada",
        "version": version,
        "kind": kind,
        "metrics": {"oot_roc_auc": 0.8, "oot_baseline_ipv_t_roc_auc": 0.77},
        "trained_at": "2026-01-01T00:00:00+00:00",
    }
    # The monitoring job's reference profile travels with the model, as training writes it.
    scores = classifier.predict_proba(transitions.X)
    profile = build_reference(transitions.X, scores, classifier.threshold, metadata["model_name"])
    extra = {REFERENCE_FILE: json.dumps(profile | {"versao": version})}
    save_local(classifier, settings.local_model_dir, metadata, transitions.X, extra_files=extra)


@pytest.fixture(scope="session")
def served_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-forest model in models/ (version 7) and the feature store (offline Parquet
    with every cycle, online with each student's latest)."""
    root = tmp_path_factory.mktemp("serving")
    settings = settings_for(root)
    publish_local_model(settings, "7", "random_forest", seed=2)
    dataset = build_dataset([SourceFile("s.csv", "s.csv", render_synthetic(students=400, seed=4))])
    table = store_offline(settings, dataset)
    materialize_online(settings, table, dataset.digest)
    return root


def wait_ready(client: TestClient, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/ready").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"API não ficou pronta: {client.get('/ready').json()}")


@pytest.fixture
def make_client(served_root: Path) -> Iterator[Any]:
    clients: list[TestClient] = []

    def make(ready: bool = True, raise_errors: bool = True, **overrides: Any) -> TestClient:
        app = create_app(settings_for(served_root, **overrides))
        client = TestClient(app, raise_server_exceptions=raise_errors)
        client.__enter__()
        clients.append(client)
        if ready:
            wait_ready(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Any) -> TestClient:
    made: TestClient = make_client()
    return made


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LiveServer:
    """The app on a real uvicorn server in a thread (real sockets, real concurrency)."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        import httpx

        self.thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("servidor não ficou pronto")

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
