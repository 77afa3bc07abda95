"""The Slack sender against a real HTTP receiver: content, retries, backoff, timeouts."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import pytest

from passos_magicos.alerts.findings import Finding
from passos_magicos.alerts.messages import build_message
from passos_magicos.alerts.slack import NOT_CONFIGURED, RETRY_AFTER_CAP_SECONDS, SlackSender
from passos_magicos.settings import Settings
from tests.alerts.conftest import DASHBOARD
from tests.slack_receiver import WEBHOOK_PATH, Reply, SlackReceiver

MakeSender = Callable[..., SlackSender]

DRIFT = Finding(
    key="drift_features:passos-magicos-ponto-virada:3",
    state="alerta",
    severity="critico",
    title="Drift nas features do modelo",
    summary="2 de 12 features mudaram de distribuição em relação ao treino.",
    facts=(("Modelo", "passos-magicos-ponto-virada v3"), ("Previsões analisadas", "1.000")),
    details=(
        "iaa: PSI 0,41 · KS D=0,22 (p<0,001) · média 6,1 → 7,3",
        "ipv: PSI 0,27 · KS D=0,15 (p=0,002) · média 7,0 → 6,2",
    ),
)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/services/fechado"


def test_delivers_block_kit_with_a_text_fallback(
    slack_receiver: SlackReceiver, make_sender: MakeSender, sleeps: list[float]
) -> None:
    text, blocks = build_message(DRIFT, "alerta", DASHBOARD)

    delivery = make_sender().send(text, blocks)

    assert delivery.delivered and delivery.status == 200 and delivery.attempts == 1
    assert delivery.reason is None and sleeps == []
    (request,) = slack_receiver.requests
    assert request.method == "POST" and request.path == WEBHOOK_PATH
    assert request.headers["Content-Type"].startswith("application/json")
    body = request.body
    assert body["blocks"] == blocks
    for expected in ("Drift nas features", "CRÍTICO", "2 de 12 features", "iaa", "ipv", "v3"):
        assert expected in body["text"], expected
    assert DASHBOARD in body["text"]
    header = body["blocks"][0]
    assert header["type"] == "header" and "🔴" in header["text"]["text"]
    assert "CRÍTICO" in header["text"]["text"]
    fields = [f["text"] for b in body["blocks"] if "fields" in b for f in b["fields"]]
    assert "*Modelo*\npassos-magicos-ponto-virada v3" in fields
    details = next(b for b in body["blocks"] if "Detalhes" in b.get("text", {}).get("text", ""))
    assert "• iaa: PSI 0,41" in details["text"]["text"]
    context = body["blocks"][-1]
    assert context["type"] == "context"
    assert f"<{DASHBOARD}|" in context["elements"][0]["text"]
    assert DRIFT.key in context["elements"][1]["text"]


def test_a_500_then_a_200_is_delivered_on_the_second_attempt(
    slack_receiver: SlackReceiver, make_sender: MakeSender, sleeps: list[float]
) -> None:
    slack_receiver.respond_with(500, 200)

    delivery = make_sender().send("oi")

    assert delivery.delivered and delivery.attempts == 2 and delivery.status == 200
    assert len(slack_receiver.requests) == 2
    assert sleeps == [1.0]  # the first backoff


def test_429_waits_what_retry_after_asks(
    slack_receiver: SlackReceiver, make_sender: MakeSender, sleeps: list[float]
) -> None:
    slack_receiver.respond_with(429, retry_after=7)

    delivery = make_sender().send("oi")

    assert delivery.delivered and delivery.attempts == 2
    assert sleeps == [7.0]
    assert [r.body["text"] for r in slack_receiver.requests] == ["oi", "oi"]


def test_429_retry_after_is_capped_and_its_absence_means_backoff(
    slack_receiver: SlackReceiver, make_sender: MakeSender, sleeps: list[float]
) -> None:
    slack_receiver.respond_with(
        Reply(429, retry_after=3600), Reply(429), Reply(429, retry_after="Wed, 21 Oct 2026")
    )

    delivery = make_sender().send("oi")

    assert delivery.delivered and delivery.attempts == 4
    assert sleeps == [RETRY_AFTER_CAP_SECONDS, 2.0, 4.0]


def test_persistent_500_gives_up_after_max_attempts_without_raising(
    slack_receiver: SlackReceiver, make_sender: MakeSender, sleeps: list[float]
) -> None:
    slack_receiver.respond_with(500, 502, 503, 500, 200)

    delivery = make_sender().send("oi")

    assert not delivery.delivered and delivery.attempts == 4 and delivery.status == 500
    assert delivery.reason == "Slack respondeu 500 (após 4 tentativas)"
    assert len(slack_receiver.requests) == 4  # the queued 200 was never asked for
    assert sleeps == [1.0, 2.0, 4.0]


def test_a_timeout_is_retried(slack_receiver: SlackReceiver, make_sender: MakeSender) -> None:
    slack_receiver.respond_with(Reply(200, delay=1.0), Reply(200))

    delivery = make_sender(timeout=0.15).send("oi")

    assert delivery.delivered and delivery.attempts == 2


def test_persistent_timeouts_are_not_delivered(
    slack_receiver: SlackReceiver, make_sender: MakeSender, sleeps: list[float]
) -> None:
    slack_receiver.delay = 1.0
    started = time.monotonic()

    delivery = make_sender(timeout=0.15, max_attempts=3).send("oi")

    assert not delivery.delivered and delivery.attempts == 3 and delivery.status is None
    assert delivery.reason is not None and "sem resposta do Slack em 0.15 s" in delivery.reason
    assert len(slack_receiver.wait_for(3)) == 3
    assert sleeps == [1.0, 2.0]
    assert time.monotonic() - started < 2.5  # each attempt stopped at the timeout


def test_other_4xx_are_not_retried(
    slack_receiver: SlackReceiver, make_sender: MakeSender, sleeps: list[float]
) -> None:
    slack_receiver.respond_with(Reply(400, "invalid_blocks"))

    delivery = make_sender().send("oi", [{"type": "nada"}])

    assert not delivery.delivered and delivery.attempts == 1 and delivery.status == 400
    assert delivery.reason == "Slack respondeu 400: invalid_blocks"
    assert len(slack_receiver.requests) == 1 and sleeps == []


def test_unreachable_webhook_is_retried_and_never_raises(
    make_sender: MakeSender, sleeps: list[float]
) -> None:
    delivery = make_sender(webhook_url=closed_port_url(), max_attempts=2).send("oi")

    assert not delivery.delivered and delivery.attempts == 2 and delivery.status is None
    assert delivery.reason is not None and "webhook inacessível" in delivery.reason
    assert sleeps == [1.0]


@pytest.mark.parametrize("url", [None, "", "   "])
def test_without_a_webhook_nothing_is_tried(url: str | None) -> None:
    sender = SlackSender(url, sleep=pytest.fail)

    assert not sender.configured
    assert sender.send("oi").__dict__ == {
        "delivered": False,
        "reason": NOT_CONFIGURED,
        "status": None,
        "attempts": 0,
    }


def test_a_non_http_webhook_is_refused() -> None:
    delivery = SlackSender("file:///etc/passwd").send("oi")
    assert not delivery.delivered and delivery.attempts == 0
    assert delivery.reason is not None and "inválido" in delivery.reason


def test_from_settings(slack_receiver: SlackReceiver) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        SLACK_WEBHOOK_URL=slack_receiver.url,
        SLACK_TIMEOUT_SECONDS=1.5,
        SLACK_MAX_ATTEMPTS=2,
        SLACK_BACKOFF_SECONDS=0.25,
    )
    sender = SlackSender.from_settings(settings)
    assert sender.configured
    assert (sender.timeout, sender.max_attempts, sender.backoff_seconds) == (1.5, 2, 0.25)
    assert sender.send("oi").delivered
    unset = Settings(_env_file=None, SLACK_WEBHOOK_URL="")  # type: ignore[call-arg]
    assert not SlackSender.from_settings(unset).configured


def test_the_webhook_url_is_never_logged_nor_shown(
    slack_receiver: SlackReceiver, make_sender: MakeSender, caplog: pytest.LogCaptureFixture
) -> None:
    slack_receiver.respond_with(500, 200, Reply(404, f"no_service {WEBHOOK_PATH}"))
    sender = make_sender()
    with caplog.at_level(logging.DEBUG):
        delivered = sender.send("oi")
        refused = sender.send("oi")
        unreachable = make_sender(webhook_url=closed_port_url(), max_attempts=2).send("oi")

    assert delivered.delivered and not refused.delivered and not unreachable.delivered
    assert "Slack: mensagem entregue (status 200, 2 tentativa(s))" in caplog.text
    assert "tentativa 1/4 falhou (Slack respondeu 500)" in caplog.text
    shown = caplog.text + repr(sender) + str(refused) + str(unreachable)
    assert WEBHOOK_PATH not in shown and "/services/fechado" not in shown
    assert "127.0.0.1" not in caplog.text
