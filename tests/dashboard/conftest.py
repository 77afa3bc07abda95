"""A live API for the dashboard (a model trained and registered by the real CLI, 1,200 students,
predictions in the log, monitoring runs) on a real uvicorn server, the dashboard as a real
process, and the system Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from passos_magicos.data.synth import render_synthetic
from passos_magicos.monitoring.job import run_monitor
from passos_magicos.settings import Settings, get_settings
from tests.flows import cli
from tests.serving.conftest import API_TOKEN, LiveServer, settings_for

STUDENTS = 1200
# The team's token the dashboard writes follow-ups with (its name is the records' author).
TEAM_NAME, TEAM_TOKEN = "painel-coordenacao", "tok-painel-dashboard"
ENV_TO_CLEAR = ("MLFLOW_TRACKING_URI", "PEDE_DATA_PATH", "MODEL_SOURCE", "MLFLOW_MODEL_STAGE")
APP = Path(__file__).resolve().parents[2] / "src" / "passos_magicos" / "dashboard" / "app.py"


@dataclass(frozen=True)
class LiveApi:
    url: str
    token: str
    settings: Settings


@pytest.fixture(scope="session")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """The real chain: `train` on 1,200 synthetic students (embedded MLflow registry, offline
    and online feature stores, the backtest logged with the run), `promote`, the 2022 roster
    scored by `predict` and evaluated against the 2023 outcomes (`evaluate`), the API serving
    @production, the roster scored through it and two monitoring runs."""
    root = tmp_path_factory.mktemp("dashboard")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for name in ENV_TO_CLEAR:
            patch.delenv(name, raising=False)
        patch.setenv("DATA_DIR", str(root / "data"))
        patch.setenv("MODELS_DIR", str(root / "models"))
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.setenv("BACKTEST_REPLICATES", "200")  # intervals are shown, not tuned, here
        data = root / "pede.csv"
        data.write_bytes(render_synthetic(students=STUDENTS, seed=8, fmt="csv"))
        # compact_logistic: on this file it ties with INDE_t alone and beats IPV_t alone (the
        # overview must show both verdicts); logistic_regression loses to INDE_t and the gate
        # refuses it.
        cli("train", "--data", str(data), "--model", "compact_logistic")
        cli("promote")
        # A realised evaluation: the 2022 roster recorded by `predict`, then the 2023 outcomes
        # of the same population (workbook sheets 2022-2023, PV derived by the IPV rule).
        cli("predict", "--data", str(data), "--output", str(root / "previsoes-2022.csv"))
        workbook = root / "pede-2022-2023.xlsx"
        workbook.write_bytes(
            render_synthetic(students=STUDENTS, seed=8, fmt="xlsx", years=[2022, 2023])
        )
        cli("evaluate", "--data", str(data), "--data", str(workbook), "--no-alerts")
        get_settings.cache_clear()
        settings = settings_for(
            root,
            MODEL_SOURCE="mlflow",
            MLFLOW_ENABLED=True,
            MLFLOW_TRACKING_URI=None,
            MONITOR_REPORT_DIR=root / "logs" / "monitoring",
            TEAM_TOKENS=f"{TEAM_NAME}:{TEAM_TOKEN}",
        )
        with LiveServer(settings) as server:
            # Scoring the roster logs predictions; the monitoring job then has data to show.
            roster = httpx.get(
                f"{server.url}/predict/alunos", headers={"X-API-Token": API_TOKEN}, timeout=60
            )
            roster.raise_for_status()
            job = settings_for(
                root,
                MLFLOW_ENABLED=True,
                MLFLOW_TRACKING_URI=None,
                API_URL=server.url,
                PREDICTION_LOG_PATH=settings.PREDICTION_LOG_PATH,
                MONITOR_REPORT_DIR=root / "logs" / "monitoring",
            )
            for _ in range(2):  # two runs: the charts over time need at least two points
                run_monitor(job, echo=lambda _: None)
            yield LiveApi(server.url, API_TOKEN, settings)
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def api_without_evaluations(
    live_api: LiveApi, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveApi]:
    """The same model and feature store served with an empty monitoring store: the state
    before any cycle's outcomes arrived (no realised evaluation, no monitoring run)."""
    root = live_api.settings.DATA_DIR.parent
    empty = tmp_path_factory.mktemp("sem-avaliacao") / "monitoring.db"
    with pytest.MonkeyPatch.context() as patch:
        for name in ENV_TO_CLEAR:
            patch.delenv(name, raising=False)
        patch.setenv("BACKTEST_REPLICATES", "200")
        settings = settings_for(
            root,
            MODEL_SOURCE="mlflow",
            MLFLOW_ENABLED=True,
            MLFLOW_TRACKING_URI=None,
            MONITORING_STORE_URL=f"sqlite:///{empty}",
        )
        with LiveServer(settings) as server:
            yield LiveApi(server.url, API_TOKEN, settings)


def point_dashboard_at(live: LiveApi, monkeypatch: pytest.MonkeyPatch) -> LiveApi:
    """The dashboard reads Settings from the environment."""
    monkeypatch.setenv("API_URL", live.url)
    monkeypatch.setenv("API_TOKEN", live.token)
    monkeypatch.delenv("API_TOKENS", raising=False)
    monkeypatch.delenv("DASHBOARD_TEAM_TOKEN", raising=False)  # tests that write set it
    return live


@pytest.fixture
def dashboard_env(live_api: LiveApi, monkeypatch: pytest.MonkeyPatch) -> LiveApi:
    """Point the dashboard at the live API (with a realised evaluation)."""
    return point_dashboard_at(live_api, monkeypatch)


@pytest.fixture
def dashboard_env_without_evaluations(
    api_without_evaluations: LiveApi, monkeypatch: pytest.MonkeyPatch
) -> LiveApi:
    return point_dashboard_at(api_without_evaluations, monkeypatch)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def dashboard_url(live_api: LiveApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`passos-magicos dashboard` as a real process, talking to the live API."""
    import os

    from tests.services import (
        free_port,
        port_is_open,
        start_process,
        venv_executable,
        wait_until_ready,
    )

    executable = venv_executable("passos-magicos")
    assert executable, "passos-magicos não instalado no venv"
    port = free_port()
    env = {
        **os.environ,
        "API_URL": live_api.url,
        "API_TOKEN": live_api.token,
        "DASHBOARD_TEAM_TOKEN": TEAM_TOKEN,  # the follow-up form writes
    }
    env.pop("API_TOKENS", None)
    log = tmp_path_factory.mktemp("dashboard-proc") / "dashboard.log"
    process = start_process("dashboard", [executable, "dashboard", "--port", str(port)], log, env)
    wait_until_ready(process, lambda: port_is_open(port), timeout=90)
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """System Chromium driven by Playwright (never `playwright install`).

    Module scope: Playwright's sync API keeps an event loop running in the main thread while
    it is open, and later tests that call `asyncio.run` must not find it there."""
    import os

    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} ausente (apt-get install -y chromium)"
        if os.environ.get("PASSOS_REQUIRE_SERVICES", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()
