"""The monitoring job's findings, run in-process on logs written in the API's format: too few
predictions, malformed lines, a version without reference, an empty log, an unreachable API or
webhook are findings (reported, alerted, exit 0); only a job that cannot run is an error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from passos_magicos.alerts.history import AlertHistory
from passos_magicos.features import MODEL_INPUTS
from passos_magicos.monitoring.job import MonitorError, run_monitor
from passos_magicos.serving.prediction_log import PredictionLog, PredictionRecord
from passos_magicos.settings import Settings
from tests.flows import cli
from tests.monitoring.conftest import Scenario, scored
from tests.slack_receiver import Reply, SlackReceiver

MODEL = "modelo-teste"


def _settings(root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "DATA_DIR": root / "data",
        "MODELS_DIR": root / "models",
        "MLFLOW_ENABLED": False,
        "PREDICTION_LOG_PATH": root / "logs" / "predictions.jsonl",
        "MONITOR_REPORT_DIR": root / "logs" / "monitoring",
        "MONITORING_STORE_URL": f"sqlite:///{root / 'logs' / 'monitoring.db'}",
        "API_URL": "http://127.0.0.1:9",  # nothing listens there
        "SLACK_WEBHOOK_URL": None,
        "SLACK_BACKOFF_SECONDS": 0.0,
        "SLACK_TIMEOUT_SECONDS": 0.5,
        "SLACK_MAX_ATTEMPTS": 2,
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


def _install_reference(settings: Settings, scenario: Scenario, version: str) -> None:
    folder = settings.DATA_DIR / "monitoring" / "referencias" / MODEL
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{version}.json").write_text(json.dumps(scenario.reference | {"versao": version}))


def _log(settings: Settings, scenario: Scenario, n: int, version: str, seed: int = 0) -> None:
    frame = scenario.traffic(n, seed)
    scores, predicted = scored(scenario.model, frame)
    features = frame[list(MODEL_INPUTS)].astype(object).where(frame.notna(), None)
    records: list[PredictionRecord] = [
        {
            "ts": "2026-11-27T12:00:00.000Z",
            "request_id": f"r-{seed}-{i}",
            "aluno_id": None,
            "endpoint": "/predict",
            "modelo": MODEL,
            "versao": version,
            "fonte": "local",
            "features": row,
            "probabilidade": float(scores[i]),
            "pv_previsto": bool(predicted[i]),
            "limiar": scenario.model.threshold,
            "latencia_ms": 1.0,
        }
        for i, row in enumerate(features.to_dict("records"))
    ]
    with PredictionLog(settings.PREDICTION_LOG_PATH, 10**9, daily=False) as log:
        log.append(records)


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["chave"]: c for c in report["verificacoes"]}


def test_insufficient_data_and_unreachable_api(tmp_path: Path, scenario: Scenario) -> None:
    settings = _settings(tmp_path)
    _install_reference(settings, scenario, "1")
    _log(settings, scenario, 50, "1")
    with SlackReceiver() as slack:
        report = run_monitor(_settings(tmp_path, SLACK_WEBHOOK_URL=slack.url), echo=lambda _: None)
        checks = _by_name(report)
        for name in ("drift_features", "drift_previsoes", "taxa_positiva"):
            assert checks[f"{name}:{MODEL}:1"]["estado"] == "indeterminado"
        api = checks["distribuicao_classes"]
        assert api["estado"] == "alerta" and "inacessível" in api["resumo"]
        # Only the API finding reaches Slack; "dados insuficientes" is not an alert.
        assert len(slack.bodies) == 1
        assert "API inacessível" in slack.bodies[0]["text"]
    assert Path(report["relatorio"]).is_file()


def test_malformed_lines_and_version_without_reference(tmp_path: Path, scenario: Scenario) -> None:
    settings = _settings(tmp_path)
    _install_reference(settings, scenario, "1")
    _log(settings, scenario, 300, "1")
    with settings.PREDICTION_LOG_PATH.open("ab") as handle:
        handle.write(b'isto nao e json\n{"probabilidade": "alta"}\n')
    _log(settings, scenario, 250, "2", seed=1)  # a version whose profile is damaged
    damaged = settings.DATA_DIR / "monitoring" / "referencias" / MODEL / "2.json"
    damaged.write_text("{corrompido")
    report = run_monitor(settings, echo=lambda _: None)
    checks = _by_name(report)
    assert report["log"]["linhas_invalidas"] == 2
    assert checks["log_previsoes"]["estado"] == "alerta"
    assert checks[f"referencia:{MODEL}:2"]["estado"] == "alerta"
    assert "ilegível" in checks[f"referencia:{MODEL}:2"]["resumo"]
    assert checks[f"drift_features:{MODEL}:1"]["estado"] == "ok"
    assert {v["versao"]: v["estado"] for v in report["versoes"]} == {
        "1": "ok",
        "2": "sem_referencia",
    }
    # Without a webhook: recorded as not delivered, the job goes on.
    assert report["alertas"] and all(a["entregue"] is False for a in report["alertas"])


def test_webhook_failing_never_fails_the_job(tmp_path: Path, scenario: Scenario) -> None:
    settings = _settings(tmp_path)
    _install_reference(settings, scenario, "1")
    _log(settings, scenario, 300, "1")
    with SlackReceiver() as slack:
        slack.respond_with(*[Reply(500)] * 4, Reply(200, delay=2.0), Reply(200, delay=2.0))
        report = run_monitor(_settings(tmp_path, SLACK_WEBHOOK_URL=slack.url), echo=lambda _: None)
        attempts = len(slack.requests)
    assert report["status"] == "alerta"  # the API is unreachable
    assert report["alertas"] and all(a["entregue"] is False for a in report["alertas"])
    assert attempts >= 2  # retried: 500, then a reply slower than the timeout


def test_empty_log_is_a_finding_and_a_bad_path_is_an_error(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    report = run_monitor(settings, echo=lambda _: None)
    assert report["log"]["previsoes_na_janela"] == 0 and report["versoes"] == []
    assert _by_name(report)["janela"]["estado"] == "indeterminado"
    assert report["status"] == "alerta"  # the unreachable API, not the empty log

    folder = tmp_path / "uma-pasta"
    folder.mkdir()
    with pytest.raises(MonitorError, match="pasta"):
        run_monitor(_settings(tmp_path, PREDICTION_LOG_PATH=folder), echo=lambda _: None)


def test_cli_exit_codes(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("PREDICTION_LOG_PATH", str(isolated / "logs" / "p.jsonl"))
    fine = cli("monitor", "--no-alerts")
    assert "(0 previsões)" in fine.stdout and "API inacessível" in fine.stdout
    (isolated / "logs" / "p.jsonl").mkdir(parents=True)
    broken = cli("monitor", expect=2)
    assert "PREDICTION_LOG_PATH aponta para uma pasta" in broken.output
    assert "Traceback" not in broken.output
    assert cli("monitor", "--window", "0", expect=2).output.count("--window") == 1


def test_alerts_of_a_version_out_of_use_are_resolved(tmp_path: Path, scenario: Scenario) -> None:
    settings = _settings(tmp_path)
    _install_reference(settings, scenario, "1")
    _log(settings, scenario, 300, "1")
    _log(settings, scenario, 250, "2", seed=1)  # v2 has no reference profile: an alert
    first = _by_name(run_monitor(settings, echo=lambda _: None))
    assert first[f"referencia:{MODEL}:2"]["estado"] == "alerta"

    # v2 was rolled back: only v1 predicts now, and the window no longer reaches v2's lines.
    _log(settings, scenario, 300, "1", seed=2)
    second = run_monitor(settings, window_size=300, echo=lambda _: None)
    resolved = _by_name(second)[f"referencia:{MODEL}:2"]
    assert resolved["estado"] == "ok" and "fora de uso" in resolved["titulo"]
    history = AlertHistory(settings.monitoring_store_url)
    try:
        active = {state.dedup_key for state in history.active_alerts()}
    finally:
        history.dispose()
    assert f"referencia:{MODEL}:2" not in active
    assert f"drift_features:{MODEL}:1" not in active

    # With no prediction at all nothing can be said: an active alert stays as it is.
    empty = _settings(tmp_path, PREDICTION_LOG_PATH=tmp_path / "vazio" / "predictions.jsonl")
    (tmp_path / "vazio").mkdir()
    _log(settings, scenario, 250, "2", seed=3)
    again = _by_name(run_monitor(settings, window_size=250, echo=lambda _: None))
    assert again[f"referencia:{MODEL}:2"]["estado"] == "alerta"
    quiet = _by_name(run_monitor(empty, echo=lambda _: None))
    assert f"referencia:{MODEL}:2" not in quiet
