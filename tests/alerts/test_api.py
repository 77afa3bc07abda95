"""The alert endpoints on the real app: active alerts in /alerts/status, paged history, and
test/manual alerts through the same sender (retries) and Block Kit layout."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from passos_magicos.alerts.history import AlertHistory
from passos_magicos.alerts.policy import AlertPolicy
from passos_magicos.alerts.slack import SlackSender
from tests.alerts.conftest import ADMIN, AUTH, DASHBOARD, START, Clock, alert_settings
from tests.alerts.test_policy import OK
from tests.alerts.test_slack import DRIFT
from tests.slack_receiver import Reply, SlackReceiver

MakeApi = Callable[..., TestClient]


def test_status_shows_active_alerts_and_the_latest_run(
    make_api: MakeApi, slack_receiver: SlackReceiver, tmp_path: Path
) -> None:
    client = make_api(SLACK_WEBHOOK_URL=slack_receiver.url)
    # The monitoring job's side: same store, its own engine (another process in production).
    settings = alert_settings(tmp_path, SLACK_WEBHOOK_URL=slack_receiver.url)
    history = AlertHistory(settings.monitoring_store_url)
    clock = Clock()
    defaults = AlertPolicy.from_settings(settings, history=history)
    assert defaults.cooldown == timedelta(minutes=720) and defaults.dashboard_url == DASHBOARD
    policy = AlertPolicy(history, SlackSender.from_settings(settings), 720 * 60, DASHBOARD, clock)
    classes = replace(DRIFT, key="distribuicao_classes", severity="aviso", title="Classes")
    slack_receiver.respond_with(400)  # the classes alert will not reach Slack
    policy.apply([classes, DRIFT])
    checks = [{"nome": "drift_features", "estado": "alerta"}, {"nome": "log", "estado": "ok"}]
    history.record_run(START.isoformat(), "alerta", {"verificacoes": checks, "outro": 1})

    status = client.get("/alerts/status", headers=AUTH).json()

    assert status["slack_configurado"] is True
    assert status["verificacoes"] == checks
    assert status["ultima_execucao"]["status"] == "alerta"
    assert status["ultima_execucao"]["started_at"] == START.isoformat()
    assert status["alertas_ativos"] == [
        {
            "chave": "distribuicao_classes",
            "severidade": "aviso",
            "titulo": "Classes",
            "desde": START.isoformat(),
            "ultimo_envio": None,  # delivery failed: not "sent"
        },
        {
            "chave": DRIFT.key,
            "severidade": "critico",
            "titulo": DRIFT.title,
            "desde": START.isoformat(),
            "ultimo_envio": START.isoformat(),
        },
    ]

    clock.advance(hours=1)
    policy.apply([OK])
    after = client.get("/alerts/status", headers=AUTH).json()
    assert [a["chave"] for a in after["alertas_ativos"]] == ["distribuicao_classes"]
    history.dispose()


def test_history_is_paged(make_api: MakeApi) -> None:
    client = make_api()
    for number in range(5):
        client.post("/alerts/send", json={"titulo": f"t{number}", "mensagem": "m"}, headers=ADMIN)

    pages = [
        client.get(f"/alerts/history?pagina={page}&por_pagina=2", headers=AUTH).json()
        for page in (1, 2, 3)
    ]

    assert [[item["title"] for item in page["itens"]] for page in pages] == [
        ["t4", "t3"],
        ["t2", "t1"],
        ["t0"],
    ]
    assert {(page["total"], page["por_pagina"]) for page in pages} == {(5, 2)}
    assert [page["pagina"] for page in pages] == [1, 2, 3]
    item = pages[0]["itens"][0]
    assert item["kind"] == "manual" and item["delivered"] is False
    assert "não configurado" in item["detail"]
    for query in ("pagina=0", "por_pagina=0", "por_pagina=201"):
        assert client.get(f"/alerts/history?{query}", headers=AUTH).status_code == 422


def test_test_alert_retries_like_the_monitoring_alerts(
    make_api: MakeApi, slack_receiver: SlackReceiver
) -> None:
    client = make_api(SLACK_WEBHOOK_URL=slack_receiver.url)
    slack_receiver.respond_with(500, Reply(429, retry_after=0))

    body = client.post("/alerts/test", headers=ADMIN).json()

    assert body["enviado"] is True and body["tentativas"] == 3 and body["motivo"] is None
    assert len(slack_receiver.requests) == 3
    blocks = slack_receiver.bodies[-1]["blocks"]
    assert blocks[0]["text"]["text"] == "🔵 INFO · Teste de alerta — Passos Mágicos"
    assert f"<{DASHBOARD}|" in blocks[-1]["elements"][0]["text"]
    assert body["evento"]["kind"] == "teste" and body["evento"]["delivered"] is True


def test_a_refused_manual_alert_is_recorded_with_the_reason(
    make_api: MakeApi, slack_receiver: SlackReceiver
) -> None:
    client = make_api(SLACK_WEBHOOK_URL=slack_receiver.url)
    slack_receiver.respond_with(Reply(404, "no_service"))
    manual = {"titulo": "Drift no IPV", "mensagem": "PSI 0,31", "severidade": "critico"}

    body = client.post("/alerts/send", json=manual, headers=ADMIN).json()

    assert body["enviado"] is False and body["tentativas"] == 1
    assert body["motivo"] == "Slack respondeu 404: no_service"
    assert slack_receiver.bodies[-1]["blocks"][0]["text"]["text"] == "🔴 CRÍTICO · Drift no IPV"
    (event,) = client.get("/alerts/history", headers=AUTH).json()["itens"]
    assert event["delivered"] is False and event["detail"] == "Slack respondeu 404: no_service"
    assert event["severity"] == "critico" and event["text"] == "PSI 0,31"


def test_the_api_sender_comes_from_the_settings(make_api: MakeApi) -> None:
    client = make_api(SLACK_WEBHOOK_URL="", SLACK_MAX_ATTEMPTS=3, SLACK_TIMEOUT_SECONDS=1.5)
    sender: SlackSender = client.app.state.passos.slack  # type: ignore[attr-defined]
    assert not sender.configured
    assert (sender.max_attempts, sender.timeout) == (3, 1.5)
    assert client.get("/alerts/status", headers=AUTH).json()["slack_configurado"] is False
