"""Alert tests: a monitoring store in a temp folder, a controllable clock, senders that do not
really sleep, and the API without a model (the alert endpoints do not need one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from passos_magicos.alerts.history import AlertHistory
from passos_magicos.alerts.slack import SlackSender
from passos_magicos.serving.app import create_app
from passos_magicos.settings import Settings
from tests.slack_receiver import SlackReceiver

API_TOKEN = "token-alertas"
ADMIN_TOKEN = "admin-alertas"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
DASHBOARD = "http://painel.teste:8501"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    """A `now` for AlertPolicy that only moves when the test says so."""

    def __init__(self, start: datetime = START) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> datetime:
        self.moment += timedelta(**delta)
        return self.moment


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'logs' / 'monitoring.db'}"


@pytest.fixture
def history(store_url: str) -> Iterator[AlertHistory]:
    made = AlertHistory(store_url)
    yield made
    made.dispose()


@pytest.fixture
def sleeps() -> list[float]:
    """Every wait a sender asked for (the fake `sleep` records instead of sleeping)."""
    return []


@pytest.fixture
def make_sender(slack_receiver: SlackReceiver, sleeps: list[float]) -> Callable[..., SlackSender]:
    def make(**overrides: Any) -> SlackSender:
        values: dict[str, Any] = {
            "webhook_url": slack_receiver.url,
            "timeout": 2.0,
            "max_attempts": 4,
            "backoff_seconds": 1.0,
            "sleep": sleeps.append,
        }
        return SlackSender(**(values | overrides))

    return make


def alert_settings(root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "DATA_DIR": root / "data",
        "MODELS_DIR": root / "models",
        "MODEL_SOURCE": "local",
        "MODEL_FALLBACK_LOCAL": False,
        "MLFLOW_ENABLED": False,
        "MLFLOW_TRACKING_URI": None,
        "API_TOKENS": API_TOKEN,
        "ADMIN_RELOAD_TOKEN": ADMIN_TOKEN,
        "PREDICTION_LOG_PATH": root / "logs" / "predictions.jsonl",
        "MONITORING_STORE_URL": f"sqlite:///{root / 'logs' / 'monitoring.db'}",
        "SLACK_WEBHOOK_URL": None,
        "SLACK_BACKOFF_SECONDS": 0.0,
        "SLACK_TIMEOUT_SECONDS": 2.0,
        "DASHBOARD_URL": DASHBOARD,
        "CORS_ORIGINS": [],
        "FEATURE_REFRESH_SECONDS": 60.0,
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """The real app (lifespan included) on the test's monitoring store; no model is needed."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(create_app(alert_settings(tmp_path, **overrides)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
