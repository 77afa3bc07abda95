"""Shared fixtures: isolated settings per test, the real data directory, synthetic files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from passos_magicos.settings import get_settings
from tests.slack_receiver import SlackReceiver

REAL_FILES = {
    "csv": "PEDE_PASSOS_DATASET_FIAP.csv",
    "xlsx": "BASE DE DADOS PEDE 2024 - DATATHON.xlsx",
}


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory with its own data/, models/ and embedded MLflow store."""
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "PEDE_DATA_PATH", "MODEL_SOURCE", "MLFLOW_MODEL_STAGE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture
def slack_receiver() -> Iterator[SlackReceiver]:
    """A real HTTP stand-in for the Slack webhook (see tests/slack_receiver.py): `.url`,
    `.respond_with(500, 429, 200, retry_after=1)`, `.delay`, `.requests`, `.bodies`,
    `.wait_for(n)`, `.clear()`. Stopped after the test."""
    with SlackReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real PEDE files, read through PEDE_DATA_DIR (never copied into the project)."""
    value = os.environ.get("PEDE_DATA_DIR")
    if not value:
        pytest.skip("PEDE_DATA_DIR não definido: testes com os dados reais da PEDE ignorados")
    path = Path(value)
    missing = [f for f in REAL_FILES.values() if not (path / f).exists()]
    if missing:
        pytest.skip(f"arquivos reais ausentes em {path}: {', '.join(missing)}")
    return path


@pytest.fixture(scope="session")
def real_csv(real_data_dir: Path) -> Path:
    return real_data_dir / REAL_FILES["csv"]


@pytest.fixture(scope="session")
def real_xlsx(real_data_dir: Path) -> Path:
    return real_data_dir / REAL_FILES["xlsx"]
