"""The alert policy against a real receiver and a real SQLite store: dedup, cooldown,
reminders, resolutions, failed deliveries, overlapping runs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from passos_magicos.alerts.findings import Finding
from passos_magicos.alerts.history import AlertHistory, AlertState
from passos_magicos.alerts.policy import AlertPolicy, Decision
from passos_magicos.alerts.slack import NOT_CONFIGURED, SlackSender
from tests.alerts.conftest import DASHBOARD, START, Clock
from tests.alerts.test_slack import DRIFT, closed_port_url
from tests.slack_receiver import SlackReceiver

COOLDOWN_MINUTES = 720
OK = replace(
    DRIFT,
    state="ok",
    severity="info",
    title="Sem drift nas features",
    summary="Nenhuma feature mudou de distribuição.",
    details=(),
)
UNKNOWN = replace(DRIFT, state="indeterminado", severity="info", title="Dados insuficientes")
MakePolicy = Callable[..., AlertPolicy]


@pytest.fixture
def make_policy(
    history: AlertHistory, make_sender: Callable[..., SlackSender], clock: Clock
) -> MakePolicy:
    def make(**overrides: Any) -> AlertPolicy:
        values: dict[str, Any] = {
            "history": history,
            "sender": make_sender(),
            "cooldown_seconds": COOLDOWN_MINUTES * 60,
            "dashboard_url": DASHBOARD,
            "now": clock,
        }
        return AlertPolicy(**(values | overrides))

    return make


def _one(policy: AlertPolicy, finding: Finding) -> Decision:
    (decision,) = policy.apply([finding])
    return decision


def _headers(receiver: SlackReceiver) -> list[str]:
    return [body["blocks"][0]["text"]["text"] for body in receiver.bodies]


def test_alert_once_then_silence_then_a_reminder_after_the_cooldown(
    make_policy: MakePolicy, slack_receiver: SlackReceiver, history: AlertHistory, clock: Clock
) -> None:
    policy = make_policy()

    first = _one(policy, DRIFT)
    assert first == Decision(DRIFT.key, "alerta", True, "novo alerta")
    assert _headers(slack_receiver) == ["🔴 CRÍTICO · Drift nas features do modelo"]

    clock.advance(minutes=COOLDOWN_MINUTES - 1)
    second = _one(policy, DRIFT)
    assert second.action == "suprimido" and not second.delivered
    assert second.reason is not None and "próximo lembrete a partir de 02/03/2026 21:00" in (
        second.reason
    )
    assert len(slack_receiver.requests) == 1  # no Slack request at all

    clock.advance(minutes=1)
    third = _one(policy, DRIFT)
    assert third.action == "lembrete" and third.delivered
    assert _headers(slack_receiver)[-1] == "🔴 CRÍTICO · Ainda ativo: Drift nas features do modelo"
    assert "ativo desde 02/03/2026 09:00 UTC" in slack_receiver.bodies[-1]["text"]

    clock.advance(minutes=1)
    assert _one(policy, DRIFT).action == "suprimido"  # the cooldown restarts at the reminder
    state = history.alert_state(DRIFT.key)
    assert state is not None and state.active and state.first_seen_at == START
    assert state.last_sent_at == START + timedelta(minutes=COOLDOWN_MINUTES)
    assert [e.kind for e in history.events(1, 10)[0]] == ["lembrete", "alerta"]


def test_resolved_when_ok_then_quiet(
    make_policy: MakePolicy, slack_receiver: SlackReceiver, history: AlertHistory, clock: Clock
) -> None:
    policy = make_policy()
    _one(policy, DRIFT)
    clock.advance(hours=1)

    resolved = _one(policy, OK)
    assert resolved == Decision(DRIFT.key, "resolvido", True, "a condição voltou ao normal")
    assert _headers(slack_receiver)[-1] == "✅ Resolvido: Drift nas features do modelo"
    assert "Nenhuma feature mudou" in slack_receiver.bodies[-1]["text"]
    assert history.active_alerts() == []

    assert _one(policy, OK) == Decision(DRIFT.key, "nenhuma", False, "sem alerta ativo")
    assert len(slack_receiver.requests) == 2

    again = _one(policy, DRIFT)  # a new episode: alerted at once, whatever the cooldown
    assert again.action == "alerta" and again.delivered
    state = history.alert_state(DRIFT.key)
    assert state is not None and state.first_seen_at == clock()


def test_every_delivery_attempt_is_recorded(
    make_policy: MakePolicy, slack_receiver: SlackReceiver, history: AlertHistory, clock: Clock
) -> None:
    slack_receiver.respond_with(400)
    policy = make_policy()
    _one(policy, DRIFT)
    _one(policy, DRIFT)
    clock.advance(minutes=5)
    _one(policy, OK)

    events, total = history.events(1, 10)
    assert total == 3
    resolved, alert, failed = events
    assert (failed.kind, failed.delivered, failed.dedup_key) == ("alerta", False, DRIFT.key)
    assert failed.detail == "Slack respondeu 400: invalid_payload"
    assert (alert.kind, alert.delivered, alert.detail, alert.severity) == (
        "alerta",
        True,
        None,
        "critico",
    )
    assert alert.title == DRIFT.title and "iaa: PSI 0,41" in alert.text
    assert (resolved.kind, resolved.delivered, resolved.title) == ("resolvido", True, DRIFT.title)
    assert resolved.created_at == clock().isoformat()


def test_a_failed_alert_is_retried_next_run_despite_the_cooldown(
    make_policy: MakePolicy, slack_receiver: SlackReceiver, history: AlertHistory, clock: Clock
) -> None:
    slack_receiver.respond_with(500, 500)
    policy = make_policy(sender=SlackSender(slack_receiver.url, max_attempts=2, sleep=id))

    failed = _one(policy, DRIFT)
    assert failed.action == "alerta" and not failed.delivered
    assert failed.reason == "Slack respondeu 500 (após 2 tentativas)"
    state = history.alert_state(DRIFT.key)
    assert state is not None and state.active and state.last_sent_at is None
    assert [a.dedup_key for a in history.active_alerts()] == [DRIFT.key]

    clock.advance(minutes=10)
    retried = _one(policy, DRIFT)
    assert retried.action == "alerta" and retried.delivered
    assert retried.reason == "nova tentativa: o alerta ainda não foi entregue"
    assert len(slack_receiver.requests) == 3

    clock.advance(minutes=10)
    assert _one(policy, DRIFT).action == "suprimido"


def test_without_a_webhook_nothing_is_sent_and_it_is_recorded(
    make_policy: MakePolicy, history: AlertHistory
) -> None:
    policy = make_policy(sender=SlackSender(None))

    decision = _one(policy, DRIFT)

    assert decision == Decision(DRIFT.key, "alerta", False, NOT_CONFIGURED)
    ((event,), _) = history.events(1, 10)
    assert not event.delivered and event.detail is not None and "não configurado" in event.detail


def test_an_unreachable_webhook_never_raises(make_policy: MakePolicy) -> None:
    sender = SlackSender(closed_port_url(), timeout=0.5, max_attempts=2, sleep=id)
    decision = _one(make_policy(sender=sender), DRIFT)
    assert decision.action == "alerta" and not decision.delivered


def test_a_failed_resolution_is_retried_next_run(
    make_policy: MakePolicy, slack_receiver: SlackReceiver, history: AlertHistory, clock: Clock
) -> None:
    policy = make_policy(sender=SlackSender(slack_receiver.url, max_attempts=1))
    _one(policy, DRIFT)
    slack_receiver.respond_with(503)
    clock.advance(hours=1)

    failed = _one(policy, OK)
    assert failed.action == "resolvido" and not failed.delivered
    state = history.alert_state(DRIFT.key)
    assert state is not None and not state.active and state.pending_resolution
    assert history.active_alerts() == []

    clock.advance(hours=1)
    unknown = _one(policy, UNKNOWN)  # pending resolutions wait for a real answer too
    assert unknown.action == "nenhuma" and history.alert_state(DRIFT.key) == state

    clock.advance(hours=1)
    retried = _one(policy, OK)
    assert retried == Decision(
        DRIFT.key, "resolvido", True, "nova tentativa de anunciar a resolução"
    )
    state = history.alert_state(DRIFT.key)
    assert state is not None and not state.active and not state.pending_resolution
    assert _headers(slack_receiver) == [
        "🔴 CRÍTICO · Drift nas features do modelo",
        "✅ Resolvido: Drift nas features do modelo",
        "✅ Resolvido: Drift nas features do modelo",
    ]
    assert _one(policy, OK).action == "nenhuma"


def test_a_condition_that_comes_back_before_its_resolution_is_announced_is_still_active(
    make_policy: MakePolicy, slack_receiver: SlackReceiver, history: AlertHistory, clock: Clock
) -> None:
    policy = make_policy(sender=SlackSender(slack_receiver.url, max_attempts=1))
    _one(policy, DRIFT)
    slack_receiver.respond_with(500)
    clock.advance(hours=1)
    assert not _one(policy, OK).delivered

    clock.advance(hours=1)
    back = _one(policy, DRIFT)

    assert back.action == "suprimido" and back.reason is not None
    assert back.reason.startswith("a condição voltou antes de a resolução ser anunciada")
    assert len(slack_receiver.requests) == 2  # nothing new: Slack still shows it active
    state = history.alert_state(DRIFT.key)
    assert state is not None and state.active and not state.pending_resolution
    assert state.first_seen_at == START and state.last_sent_at == START


def test_indeterminado_changes_nothing(
    make_policy: MakePolicy, slack_receiver: SlackReceiver, history: AlertHistory, clock: Clock
) -> None:
    policy = make_policy()
    assert _one(policy, UNKNOWN).action == "nenhuma"
    assert history.alert_state(DRIFT.key) is None

    _one(policy, DRIFT)
    before = history.alert_state(DRIFT.key)
    clock.advance(days=3)  # well past the cooldown: still no reminder, no resolution

    decision = _one(policy, UNKNOWN)

    assert decision == Decision(
        DRIFT.key, "nenhuma", False, "resultado indeterminado: o estado do alerta não muda"
    )
    assert history.alert_state(DRIFT.key) == before
    assert len(slack_receiver.requests) == 1


def test_an_alert_never_delivered_closes_silently(
    make_policy: MakePolicy, slack_receiver: SlackReceiver, history: AlertHistory
) -> None:
    slack_receiver.respond_with(400)
    policy = make_policy()
    assert not _one(policy, DRIFT).delivered

    closed = _one(policy, OK)

    assert closed.action == "encerrado" and not closed.delivered
    assert len(slack_receiver.requests) == 1  # no "resolvido" for an alert nobody saw
    state = history.alert_state(DRIFT.key)
    assert state is not None and not state.active and not state.pending_resolution


def test_a_higher_severity_is_announced_within_the_cooldown(
    make_policy: MakePolicy, slack_receiver: SlackReceiver, history: AlertHistory, clock: Clock
) -> None:
    policy = make_policy()
    _one(policy, replace(DRIFT, severity="aviso"))
    clock.advance(minutes=30)

    escalated = _one(policy, DRIFT)
    assert escalated.action == "alerta" and escalated.delivered
    assert escalated.reason == "severidade subiu de AVISO para CRÍTICO"
    assert _headers(slack_receiver)[-1].startswith("🔴 CRÍTICO")

    clock.advance(minutes=30)
    assert _one(policy, replace(DRIFT, severity="aviso")).action == "suprimido"
    clock.advance(minutes=30)
    assert _one(policy, DRIFT).action == "suprimido"  # critico was already announced
    state = history.alert_state(DRIFT.key)
    assert state is not None and state.severity == "critico"


def test_state_is_shared_between_two_job_runs_on_the_same_store(
    store_url: str, make_sender: Callable[..., SlackSender], slack_receiver: SlackReceiver
) -> None:
    clock = Clock()
    first_run = AlertPolicy(
        AlertHistory(store_url), make_sender(), COOLDOWN_MINUTES * 60, None, clock
    )
    second_run = AlertPolicy(
        AlertHistory(store_url), make_sender(), COOLDOWN_MINUTES * 60, None, clock
    )

    assert _one(first_run, DRIFT).action == "alerta"
    clock.advance(hours=1)
    assert _one(second_run, DRIFT).action == "suprimido"
    clock.advance(hours=12)
    assert _one(second_run, DRIFT).action == "lembrete"
    clock.advance(hours=1)
    assert _one(first_run, DRIFT).action == "suprimido"
    assert _one(first_run, OK).action == "resolvido"
    assert _one(second_run, OK).action == "nenhuma"
    assert len(slack_receiver.requests) == 3


def test_overlapping_runs_announce_a_new_alert_once(
    store_url: str, make_sender: Callable[..., SlackSender], slack_receiver: SlackReceiver
) -> None:
    slack_receiver.delay = 0.3  # the first run is still sending when the second one decides
    policies = [
        AlertPolicy(AlertHistory(store_url), make_sender(), COOLDOWN_MINUTES * 60, None)
        for _ in range(2)
    ]
    decisions: list[Decision] = []
    barrier = threading.Barrier(len(policies))

    def run(policy: AlertPolicy) -> None:
        barrier.wait()
        decisions.extend(policy.apply([DRIFT]))

    threads = [threading.Thread(target=run, args=(p,)) for p in policies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(decisions) == 2 and len(slack_receiver.requests) == 1
    actions = sorted(d.action for d in decisions)
    assert actions in (["alerta", "em_andamento"], ["alerta", "suprimido"])


def test_a_claim_left_by_a_crashed_run_expires(
    make_policy: MakePolicy, slack_receiver: SlackReceiver, history: AlertHistory, clock: Clock
) -> None:
    policy = make_policy(claim_seconds=120)
    crashed = AlertState(
        dedup_key=DRIFT.key,
        active=True,
        severity="critico",
        title=DRIFT.title,
        first_seen_at=clock(),
        last_sent_at=None,
        pending_resolution=False,
        updated_at=clock(),
        claimed_until=clock() + timedelta(seconds=120),
    )
    history.transition(DRIFT.key, lambda _: (crashed, None))

    assert _one(policy, DRIFT).action == "em_andamento"
    assert slack_receiver.requests == []

    clock.advance(seconds=121)
    decision = _one(policy, DRIFT)
    assert decision.action == "alerta" and decision.delivered
    state = history.alert_state(DRIFT.key)
    assert state is not None and state.claimed_until is None and state.last_sent_at == clock()


def test_the_status_lists_active_alerts_oldest_first(
    make_policy: MakePolicy, history: AlertHistory, clock: Clock
) -> None:
    policy = make_policy()
    other = replace(DRIFT, key="distribuicao_classes", severity="aviso", title="Classes")
    policy.apply([DRIFT])
    clock.advance(minutes=1)
    policy.apply([other, UNKNOWN])

    assert [(a.dedup_key, a.severity) for a in history.active_alerts()] == [
        (DRIFT.key, "critico"),
        ("distribuicao_classes", "aviso"),
    ]
    policy.apply([OK])
    assert [a.dedup_key for a in history.active_alerts()] == ["distribuicao_classes"]


def test_a_sender_bug_releases_the_key_and_the_run_goes_on(
    make_policy: MakePolicy, history: AlertHistory, slack_receiver: SlackReceiver
) -> None:
    class Broken(SlackSender):
        def send(self, text: str, blocks: list[dict[str, Any]] | None = None) -> Any:
            raise RuntimeError("bug")

    other = replace(DRIFT, key="outro")
    decisions = make_policy(sender=Broken(slack_receiver.url)).apply([DRIFT, other])

    assert [(d.action, d.delivered) for d in decisions] == [("alerta", False)] * 2
    assert decisions[0].reason == "erro inesperado no envio: RuntimeError"
    state = history.alert_state(DRIFT.key)
    assert state is not None and state.claimed_until is None and state.last_sent_at is None
    assert _one(make_policy(), DRIFT).delivered  # the next run is not blocked by a claim
