"""Slack messages (Block Kit plus a plain-text fallback) for findings and manual alerts.

Layout: a header with the severity marker, the summary, the facts side by side, the details as
a list, and a context line with the dashboard link and the dedup key. Slack's limits are
respected by construction (header ≤150 characters, section text ≤3000, ≤10 fields per
section, ≤50 blocks), so that a long finding never makes Slack reject the whole message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, Literal

from passos_magicos.alerts.findings import SEVERITY_LABELS, Finding

MessageKind = Literal["alerta", "lembrete", "resolvido"]
ManualKind = Literal["teste", "manual"]
Blocks = list[dict[str, Any]]

HEADER_CHARS: Final = 150
SECTION_CHARS: Final = 3000
FIELD_CHARS: Final = 2000
FIELDS_PER_SECTION: Final = 10
MAX_FIELDS: Final = 20  # two sections side by side; more would bury the summary
MAX_BLOCKS: Final = 50
MAX_DETAIL_LINES: Final = 15
DETAIL_LINE_CHARS: Final = 300
TEXT_CHARS: Final = 3500  # the notification fallback; Slack truncates far later

MARKERS: Final[dict[str, str]] = {"info": "🔵", "aviso": "🟠", "critico": "🔴"}
RESOLVED_MARKER: Final = "✅"
DASHBOARD_LABEL: Final = "Abrir o painel de monitoramento"
MANUAL_CONTEXT: Final[dict[str, str]] = {
    "teste": "Mensagem de teste enviada pela API",
    "manual": "Alerta manual enviado pela API",
}


def build_message(
    finding: Finding,
    kind: MessageKind,
    dashboard_url: str | None,
    *,
    since: datetime | None = None,
) -> tuple[str, Blocks]:
    """`(text, blocks)` for a finding: a new alert, a reminder (still active after the
    cooldown; `since` = when it became active) or a resolution (`finding.title` and
    `finding.severity` should then be those of the alert being resolved)."""
    label = severity_label(finding.severity)
    marker = MARKERS.get(finding.severity, MARKERS["aviso"])
    if kind == "resolvido":
        header = f"{RESOLVED_MARKER} Resolvido: {finding.title}"
        first_line = f"{header} (alerta {label})"
        lead = ""
    elif kind == "lembrete":
        header = f"{marker} {label} · Ainda ativo: {finding.title}"
        first_line = header
        lead = (
            f"_Lembrete: alerta ativo desde {format_when(since)}._\n"
            if since is not None
            else "_Lembrete: o alerta continua ativo._\n"
        )
    else:
        header = first_line = f"{marker} {label} · {finding.title}"
        lead = ""

    details, hidden = _detail_lines(finding.details)
    blocks: Blocks = [
        _header(header),
        _section(lead + mrkdwn_escape(finding.summary)),
        *_fact_sections(finding.facts),
    ]
    if details:
        blocks.append(_section("*Detalhes*\n" + _bullets(details, hidden)))
    blocks.append(_context(dashboard_url, f"Chave: `{mrkdwn_escape(finding.key)}`"))

    lines = [first_line, lead.strip("_\n") if lead else "", finding.summary]
    if finding.facts:
        lines.append(" · ".join(f"{name}: {value}" for name, value in finding.facts))
    if details:
        lines.append(_bullets(details, hidden, escape=False))
    if dashboard_url:
        lines.append(f"Painel: {dashboard_url}")
    return _fallback(lines), blocks[:MAX_BLOCKS]


def build_manual_message(
    title: str,
    text: str,
    severity: str,
    *,
    kind: ManualKind = "manual",
    dashboard_url: str | None = None,
) -> tuple[str, Blocks]:
    """`(text, blocks)` for an alert written by a person (POST /alerts/send) or the test one."""
    label = severity_label(severity)
    header = f"{MARKERS.get(severity, MARKERS['aviso'])} {label} · {title}"
    blocks: Blocks = [
        _header(header),
        _section(mrkdwn_escape(text)),
        _context(dashboard_url, MANUAL_CONTEXT[kind]),
    ]
    lines = [header, text]
    if dashboard_url:
        lines.append(f"Painel: {dashboard_url}")
    return _fallback(lines), blocks


# -- helpers ----------------------------------------------------------------------------------


def severity_label(severity: str) -> str:
    return SEVERITY_LABELS.get(severity, severity.upper())


def format_when(moment: datetime) -> str:
    """ "12/05/2026 14:00 UTC" (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%d/%m/%Y %H:%M UTC")


def mrkdwn_escape(text: str) -> str:
    """The three characters Slack reserves for links and mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _header(text: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": clip(text, HEADER_CHARS), "emoji": True},
    }


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_CHARS) or " "}}


def _fact_sections(facts: tuple[tuple[str, str], ...]) -> Blocks:
    shown = list(facts[:MAX_FIELDS])
    if len(facts) > MAX_FIELDS:
        shown[-1] = ("…", f"e mais {len(facts) - MAX_FIELDS + 1}")
    fields = [
        {
            "type": "mrkdwn",
            "text": clip(f"*{mrkdwn_escape(name)}*\n{mrkdwn_escape(value)}", FIELD_CHARS),
        }
        for name, value in shown
    ]
    return [
        {"type": "section", "fields": fields[start : start + FIELDS_PER_SECTION]}
        for start in range(0, len(fields), FIELDS_PER_SECTION)
    ]


def _detail_lines(details: tuple[str, ...]) -> tuple[list[str], int]:
    """The lines that fit (count and characters) and how many were left out."""
    budget = SECTION_CHARS - len("*Detalhes*\n") - len("\n… e mais 99999")
    shown: list[str] = []
    for line in details[:MAX_DETAIL_LINES]:
        item = clip(line.strip(), DETAIL_LINE_CHARS)
        cost = len(mrkdwn_escape(item)) + 3  # "• " and the newline
        if cost > budget:
            break
        budget -= cost
        shown.append(item)
    return shown, len(details) - len(shown)


def _bullets(lines: list[str], hidden: int, *, escape: bool = True) -> str:
    text = "\n".join(f"• {mrkdwn_escape(line) if escape else line}" for line in lines)
    return text + (f"\n… e mais {hidden}" if hidden else "")


def _context(dashboard_url: str | None, note: str) -> dict[str, Any]:
    elements: list[dict[str, Any]] = []
    if dashboard_url:
        safe = dashboard_url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
        elements.append({"type": "mrkdwn", "text": f"<{safe}|{DASHBOARD_LABEL}>"})
    elements.append({"type": "mrkdwn", "text": clip(note, SECTION_CHARS)})
    return {"type": "context", "elements": elements}


def _fallback(lines: list[str]) -> str:
    return clip(mrkdwn_escape("\n".join(line for line in lines if line)), TEXT_CHARS)
