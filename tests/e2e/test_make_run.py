"""`passos-magicos run` (what `make run` does), as a user runs it: train on the embedded synthetic
data, promote, serve the API, the dashboard and the MLflow UI, run a first monitoring pass; every
file it writes under the data, log and model folders is private; Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.services import free_ports, port_is_open

pytestmark = pytest.mark.slow

READY_LINE = "Ctrl-C encerra tudo."
START_TIMEOUT = 300.0


def _get(url: str, token: str | None = None) -> object:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


def _not_private(root: Path) -> list[str]:
    """Paths under `root` that someone other than the owner could read or enter."""
    loose = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            continue
        if mode & 0o077:
            loose.append(f"{path.relative_to(root.parent)} {mode:o}")
    return loose


def test_make_run_serves_monitors_and_keeps_files_private(tmp_path: Path) -> None:
    api_port, dashboard_port = free_ports(2)
    env = os.environ | {
        "DATA_DIR": str(tmp_path / "data"),
        "MODELS_DIR": str(tmp_path / "models"),
        "PREDICTION_LOG_PATH": str(tmp_path / "logs" / "predictions.jsonl"),
        "MONITOR_REPORT_DIR": str(tmp_path / "logs" / "monitoring"),
        "API_PORT": str(api_port),
        "API_URL": f"http://127.0.0.1:{api_port}",
        "DASHBOARD_PORT": str(dashboard_port),
        "SYNTH_STUDENTS": "300",
        "BACKTEST_REPLICATES": "200",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    for name in ("MLFLOW_TRACKING_URI", "PEDE_DATA_PATH", "API_TOKENS", "ADMIN_RELOAD_TOKEN"):
        env.pop(name, None)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "passos_magicos.cli", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT
        assert launcher.stdout is not None
        while time.monotonic() < deadline:
            line = launcher.stdout.readline()
            if not line:
                break
            output.append(line)
            if READY_LINE in line:
                break
        text = "".join(output)
        assert READY_LINE in text, text[-3000:]
        assert "primeira execução: versão 1 promovida para @production" in text
        assert "monitoramento: primeira execução" in text, text[-2000:]

        token = (tmp_path / "data" / "api-token").read_text().strip()
        base = f"http://127.0.0.1:{api_port}"
        runs = _get(f"{base}/monitoring/runs", token)
        assert isinstance(runs, dict) and runs["execucoes"], runs  # the page has a first point
        assert runs["execucoes"][0]["previsoes_na_janela"] > 0
        backtest = _get(f"{base}/model/backtest")
        assert isinstance(backtest, dict) and len(backtest["anos"]) == 3  # cycles 2020-2024
        until = time.monotonic() + 60  # Streamlit starts a few seconds after the announcement
        while not port_is_open(dashboard_port) and time.monotonic() < until:
            time.sleep(0.5)
        assert port_is_open(dashboard_port)

        loose = [
            p for folder in ("data", "logs", "models") for p in _not_private(tmp_path / folder)
        ]
        assert not loose, loose[:20]
    finally:
        launcher.send_signal(signal.SIGINT)  # what Ctrl-C does
        try:
            launcher.wait(timeout=60)
        finally:
            if launcher.poll() is None:
                launcher.kill()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (port_is_open(api_port) or port_is_open(dashboard_port)):
        time.sleep(0.5)
    assert not port_is_open(api_port) and not port_is_open(dashboard_port)
