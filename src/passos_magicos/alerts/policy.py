"""From findings to Slack messages: dedup, cooldown, reminders and resolutions.

Per dedup key (`Finding.key`), with the state kept in `alert_state`:

| finding        | stored state                          | what happens                           |
|----------------|---------------------------------------|----------------------------------------|
| alerta         | not active                            | "alerta" sent; the key becomes active  |
| alerta         | active, nothing delivered yet         | "alerta" sent again (no cooldown)      |
| alerta         | active, severity went up              | "alerta" sent again (escalation)       |
| alerta         | active, delivered < cooldown ago      | nothing sent ("suprimido")             |
| alerta         | active, delivered ≥ cooldown ago      | "lembrete" sent                        |
| alerta         | resolution not yet announced          | simply active again (same rules)       |
| ok             | active, an alert was delivered        | "resolvido" sent; inactive             |
| ok             | active, no alert ever delivered       | inactive, nothing sent ("encerrado")   |
| ok             | resolution not yet announced          | "resolvido" sent again                 |
| ok             | not active                            | nothing                                |
| indeterminado  | anything                              | nothing changes                        |

A failed delivery never counts as sent: the next run tries again, whatever the cooldown. Every
attempt is recorded in `alert_events`. Each key is decided in one transaction and, while its
message is being sent, claimed for the run (`claimed_until`), so two overlapping job runs never
announce the same thing twice; a run that crashes mid-send releases the key when the claim
expires (the sender's worst-case duration plus a minute).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from passos_magicos.alerts.findings import (
    SEVERITIES,
    Finding,
    FindingState,
    Severity,
    severity_rank,
)
from passos_magicos.alerts.history import AlertHistory, AlertState, EventDraft
from passos_magicos.alerts.messages import MessageKind, build_message, format_when, severity_label
from passos_magicos.alerts.slack import Delivery, SlackSender

if TYPE_CHECKING:
    from passos_magicos.settings import Settings

__all__ = ["Action", "AlertPolicy", "Decision", "Finding", "FindingState", "Severity"]

Action = Literal[
    "alerta",  # a new alert (or one whose earlier delivery failed, or that escalated)
    "lembrete",  # still active after the cooldown
    "resolvido",  # back to normal, announced
    "suprimido",  # still active, within the cooldown: nothing sent
    "encerrado",  # back to normal, but no alert had reached Slack: nothing to announce
    "nenhuma",  # nothing to do (ok and not active, or indeterminado)
    "em_andamento",  # another run is sending a message for this key right now
]
CLAIM_MARGIN_SECONDS = 60.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """What the policy did with one finding. `delivered` is True only when a message reached
    Slack; `reason` (pt-BR) says why nothing was sent, or why the delivery failed."""

    key: str
    action: Action
    delivered: bool
    reason: str | None = None


@dataclass(frozen=True)
class _Plan:
    action: Action
    reason: str
    message: MessageKind | None = None  # what to send, if anything
    title: str = ""
    severity: Severity = "aviso"
    since: datetime | None = None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AlertPolicy:
    def __init__(
        self,
        history: AlertHistory,
        sender: SlackSender,
        cooldown_seconds: float,
        dashboard_url: str | None,
        now: Callable[[], datetime] = _utc_now,
        claim_seconds: float | None = None,
    ) -> None:
        if cooldown_seconds < 0:
            raise ValueError("cooldown_seconds não pode ser negativo")
        self.history = history
        self.sender = sender
        self.cooldown = timedelta(seconds=cooldown_seconds)
        self.dashboard_url = dashboard_url
        self._now = now
        if claim_seconds is None:
            claim_seconds = sender.worst_case_seconds + CLAIM_MARGIN_SECONDS
        self.claim = timedelta(seconds=claim_seconds)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        history: AlertHistory | None = None,
        sender: SlackSender | None = None,
    ) -> AlertPolicy:
        return cls(
            history if history is not None else AlertHistory(settings.monitoring_store_url),
            sender if sender is not None else SlackSender.from_settings(settings),
            cooldown_seconds=settings.ALERT_COOLDOWN_MINUTES * 60,
            dashboard_url=settings.DASHBOARD_URL,
        )

    def apply(self, findings: Iterable[Finding]) -> list[Decision]:
        """Decide (and send) for each finding, in order. Never raises because of Slack; a
        database error does raise (the run cannot know what was already announced)."""
        return [self._apply_one(finding) for finding in findings]

    # -- one finding ----------------------------------------------------------------------------

    def _apply_one(self, finding: Finding) -> Decision:
        started = self._now()
        plan = self.history.transition(
            finding.key, lambda current: self._plan(finding, current, started)
        )
        if plan.message is None:
            return Decision(finding.key, plan.action, False, plan.reason)

        shown = replace(finding, title=plan.title, severity=plan.severity)
        text, blocks = build_message(shown, plan.message, self.dashboard_url, since=plan.since)
        try:
            delivery = self.sender.send(text, blocks)
        except Exception as exc:  # the sender never raises; if a bug makes it, release the key
            logger.exception("Slack: erro inesperado ao enviar o alerta %s", finding.key)
            delivery = Delivery(False, f"erro inesperado no envio: {type(exc).__name__}")

        finished = self._now()
        event = EventDraft(
            kind=plan.message,
            severity=plan.severity,
            title=plan.title,
            text=text,
            delivered=delivery.delivered,
            detail=None if delivery.delivered else delivery.reason,
            dedup_key=finding.key,
            created_at=finished,
        )
        self.history.transition(
            finding.key,
            lambda current: (
                _settle(current, plan, finding, delivered=delivery.delivered, now=finished),
                None,
            ),
            event=event,
        )
        reason = plan.reason if delivery.delivered else delivery.reason
        return Decision(finding.key, plan.action, delivery.delivered, reason)

    def _plan(
        self, finding: Finding, current: AlertState | None, now: datetime
    ) -> tuple[AlertState | None, _Plan]:
        if (
            current is not None
            and current.claimed_until is not None
            and current.claimed_until > now
        ):
            return None, _Plan(
                "em_andamento", "outra execução está enviando uma mensagem deste alerta"
            )
        if finding.state == "indeterminado":
            return None, _Plan("nenhuma", "resultado indeterminado: o estado do alerta não muda")
        if finding.state == "alerta":
            return self._plan_alert(finding, current, now)
        return self._plan_ok(current, now)

    def _plan_alert(
        self, finding: Finding, current: AlertState | None, now: datetime
    ) -> tuple[AlertState, _Plan]:
        claim = now + self.claim
        if current is None or not (current.active or current.pending_resolution):
            new = AlertState(
                dedup_key=finding.key,
                active=True,
                severity=finding.severity,
                title=finding.title,
                first_seen_at=now,
                last_sent_at=None,
                pending_resolution=False,
                updated_at=now,
                claimed_until=claim,
            )
            return new, self._send("alerta", "novo alerta", finding)

        came_back = (
            "a condição voltou antes de a resolução ser anunciada: o alerta segue ativo; "
            if current.pending_resolution and not current.active
            else ""
        )
        active = replace(
            current,
            active=True,
            pending_resolution=False,
            title=finding.title,
            updated_at=now,
            claimed_until=None,
        )
        if current.last_sent_at is None:
            reason = "nova tentativa: o alerta ainda não foi entregue"
            return replace(active, claimed_until=claim), self._send("alerta", reason, finding)
        if severity_rank(finding.severity) > severity_rank(current.severity):
            reason = (
                f"severidade subiu de {severity_label(current.severity)} "
                f"para {severity_label(finding.severity)}"
            )
            return replace(active, claimed_until=claim), self._send(
                "alerta", came_back + reason, finding
            )
        next_reminder = current.last_sent_at + self.cooldown
        if now >= next_reminder:
            reason = f"ativo desde {format_when(current.first_seen_at)}"
            plan = self._send("lembrete", came_back + reason, finding, since=current.first_seen_at)
            return replace(active, claimed_until=claim), plan
        reason = (
            f"já notificado em {format_when(current.last_sent_at)}; "
            f"próximo lembrete a partir de {format_when(next_reminder)}"
        )
        return active, _Plan("suprimido", came_back + reason)

    def _plan_ok(
        self, current: AlertState | None, now: datetime
    ) -> tuple[AlertState | None, _Plan]:
        if current is None or not (current.active or current.pending_resolution):
            return None, _Plan("nenhuma", "sem alerta ativo")
        if current.last_sent_at is None and not current.pending_resolution:
            closed = replace(
                current, active=False, pending_resolution=False, updated_at=now, claimed_until=None
            )
            reason = "a condição normalizou antes de o alerta chegar ao Slack: nada a anunciar"
            return closed, _Plan("encerrado", reason)
        reason = (
            "nova tentativa de anunciar a resolução"
            if current.pending_resolution
            else "a condição voltou ao normal"
        )
        claimed = replace(current, updated_at=now, claimed_until=now + self.claim)
        return claimed, _Plan(
            "resolvido",
            reason,
            "resolvido",
            title=current.title,
            severity=_as_severity(current.severity),
        )

    @staticmethod
    def _send(
        kind: MessageKind, reason: str, finding: Finding, since: datetime | None = None
    ) -> _Plan:
        return _Plan(
            kind, reason, kind, title=finding.title, severity=finding.severity, since=since
        )


def _as_severity(value: str) -> Severity:
    for severity in SEVERITIES:
        if severity == value:
            return severity
    return "aviso"


def _settle(
    current: AlertState | None,
    plan: _Plan,
    finding: Finding,
    *,
    delivered: bool,
    now: datetime,
) -> AlertState | None:
    """The state after the delivery of `plan`'s message (the claim is released)."""
    if current is None:
        return None  # the row was removed meanwhile (by hand): nothing to settle
    settled = replace(current, claimed_until=None, updated_at=now)
    if plan.message == "resolvido":
        return replace(settled, active=False, pending_resolution=not delivered)
    if not delivered:
        return settled  # not "sent": the next run tries again, whatever the cooldown
    severity = (
        finding.severity
        if plan.message == "alerta"
        or severity_rank(finding.severity) > severity_rank(current.severity)
        else current.severity
    )
    return replace(settled, last_sent_at=now, severity=severity)
