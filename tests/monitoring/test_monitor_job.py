"""The CronJob's command, `passos-magicos monitor`, against a served API and a real HTTP server
standing in for Slack: quiet on unshifted traffic, one alert naming the shifted features,
silence during the cooldown, "resolvido" when the traffic is back to normal."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from passos_magicos.data.dataset import SourceFile, build_dataset
from passos_magicos.data.synth import render_synthetic
from passos_magicos.features import build_transitions
from tests.flows import cli, synthetic_csv
from tests.monitoring.conftest import SHIFTED, request_body
from tests.services import free_port, start_process, venv_executable, wait_until_ready

pytestmark = pytest.mark.slow
TOKEN, ADMIN = "token-monitor-teste", "admin-monitor-teste"
WINDOW = 600


def _traffic(seed: int) -> pd.DataFrame:
    content = render_synthetic(students=1500, seed=seed, fmt="csv")
    return build_transitions(build_dataset([SourceFile("t.csv", "t.csv", content)]).table).X


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(url, json=body, headers={"X-API-Token": TOKEN}, timeout=60)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def _get(url: str) -> dict[str, Any]:
    response = httpx.get(url, headers={"X-API-Token": TOKEN}, timeout=30)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def _send(api: str, frame: pd.DataFrame, shifted: bool, seed: int) -> int:
    rows = frame.copy()
    if shifted:
        rows["iaa"] = (rows["iaa"] + 2.0).clip(upper=10.0)
        rows["ida"] = (rows["ida"] - 2.0).clip(lower=0.0)
    rows = rows.sample(frac=1.0, random_state=seed)  # transitions come sorted by year
    bodies = [b for _, row in rows.iterrows() if (b := request_body(row)) is not None][:WINDOW]
    answer = _post(f"{api}/predict/batch", {"registros": bodies})
    assert not answer["invalidos"], answer["invalidos"][:3]
    return len(answer["previsoes"])


def _monitor(env: dict[str, str]) -> dict[str, Any]:
    executable = venv_executable("passos-magicos")
    assert executable, "passos-magicos não instalado no venv"
    done = subprocess.run(
        [executable, "monitor"], check=False, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    path = done.stdout.strip().splitlines()[-1].removeprefix("relatório: ")
    report: dict[str, Any] = json.loads(Path(path).read_text())
    return report


def _states(report: dict[str, Any]) -> dict[str, str]:
    return {c["nome"]: c["estado"] for c in report["verificacoes"]}


def test_monitor_cronjob_command_against_a_served_api(isolated: Path, slack_receiver: Any) -> None:
    data = isolated / "pede.csv"
    data.write_bytes(synthetic_csv(seed=7))
    cli("train", "--data", str(data), "--model", "logistic_regression")
    cli("promote")

    port = free_port()
    api = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "API_TOKENS": TOKEN,
        "ADMIN_RELOAD_TOKEN": ADMIN,
        "API_URL": api,
        "PERFORMANCE_WINDOW": str(WINDOW),
        "SLACK_WEBHOOK_URL": slack_receiver.url,
        "SLACK_BACKOFF_SECONDS": "0",
        "PREDICTION_LOG_PATH": str(isolated / "logs" / "predictions.jsonl"),
        "MONITOR_REPORT_DIR": str(isolated / "logs" / "monitoring"),
        "DASHBOARD_URL": "http://painel.exemplo:8501",
    }
    executable = venv_executable("passos-magicos")
    assert executable
    server = start_process(
        "api", [executable, "serve", "--port", str(port)], isolated / "api.log", env, isolated
    )
    try:
        wait_until_ready(server, lambda: _ready(api), timeout=120)
        fresh = _traffic(seed=101)

        # Unshifted traffic: every check ok, nothing sent to Slack.
        assert _send(api, fresh, shifted=False, seed=0) == WINDOW
        quiet = _monitor(env)
        states = _states(quiet)
        assert quiet["status"] == "ok", [(c["nome"], c["detalhes"]) for c in quiet["verificacoes"]]
        assert states["drift_features"] == "ok" and states["distribuicao_classes"] == "ok"
        assert slack_receiver.bodies == []

        # Shifted traffic fills the window: one alert naming iaa and ida.
        _send(api, fresh, shifted=True, seed=1)
        alerted = _monitor(env)
        drift = next(c for c in alerted["verificacoes"] if c["nome"] == "drift_features")
        assert drift["estado"] == "alerta"
        assert sorted(alerted["versoes"][0]["features_com_drift"]) == sorted(SHIFTED)
        messages = list(slack_receiver.bodies)
        feature_alerts = [m for m in messages if "Drift nas features" in m["text"]]
        assert len(feature_alerts) == 1
        assert all(name in feature_alerts[0]["text"] for name in SHIFTED)
        assert "blocks" in feature_alerts[0]
        assert "painel.exemplo" in json.dumps(feature_alerts[0]["blocks"])

        # Same condition, within the cooldown: nothing new reaches Slack.
        again = _monitor(env)
        assert _states(again)["drift_features"] == "alerta"
        assert len(slack_receiver.bodies) == len(messages)

        # Back to normal: a "resolvido" message for the feature alert.
        _send(api, fresh, shifted=False, seed=2)
        resolved = _monitor(env)
        assert _states(resolved)["drift_features"] == "ok"
        new = slack_receiver.bodies[len(messages) :]
        assert any("Drift nas features" in m["text"] and "esolvid" in m["text"] for m in new)

        # The API reads the same history: last run and its checks, and the alert events.
        status = _get(f"{api}/alerts/status")
        assert status["ultima_execucao"]["id"] == resolved["execucao_id"]
        assert {c["nome"] for c in status["verificacoes"]} >= {"drift_features", "log_previsoes"}
        history = _get(f"{api}/alerts/history?por_pagina=100")
        assert history["total"] >= 2
    finally:
        server.stop()


def _ready(api: str) -> bool:
    try:
        return httpx.get(f"{api}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
