"""Block Kit messages: content per kind, Slack's limits, escaping."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from passos_magicos.alerts.findings import Finding
from passos_magicos.alerts.messages import build_manual_message, build_message
from tests.alerts.conftest import DASHBOARD
from tests.alerts.test_slack import DRIFT


def _texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every text Slack would render, block by block."""
    found: list[str] = []
    for block in blocks:
        if "text" in block:
            found.append(block["text"]["text"])
        found += [field["text"] for field in block.get("fields", [])]
        found += [element["text"] for element in block.get("elements", [])]
    return found


def _check_limits(blocks: list[dict[str, Any]]) -> None:
    assert 1 <= len(blocks) <= 50
    for block in blocks:
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text" and len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert 0 < len(block["text"]["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
        if block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
    json.dumps(blocks)  # plain JSON


def test_alert_reminder_and_resolution_headers() -> None:
    _, alert = build_message(DRIFT, "alerta", DASHBOARD)
    since = datetime(2026, 3, 1, 14, 5, tzinfo=UTC)
    reminder_text, reminder = build_message(DRIFT, "lembrete", DASHBOARD, since=since)
    resolved_text, resolved = build_message(DRIFT, "resolvido", DASHBOARD)

    assert alert[0]["text"]["text"] == "🔴 CRÍTICO · Drift nas features do modelo"
    assert reminder[0]["text"]["text"] == "🔴 CRÍTICO · Ainda ativo: Drift nas features do modelo"
    assert "ativo desde 01/03/2026 14:05 UTC" in reminder[1]["text"]["text"]
    assert "ativo desde 01/03/2026 14:05 UTC" in reminder_text
    assert resolved[0]["text"]["text"] == "✅ Resolvido: Drift nas features do modelo"
    assert resolved_text.startswith("✅ Resolvido: Drift nas features do modelo (alerta CRÍTICO)")
    for blocks in (alert, reminder, resolved):
        _check_limits(blocks)


@pytest.mark.parametrize(
    ("severity", "marker", "label"),
    [("info", "🔵", "INFO"), ("aviso", "🟠", "AVISO"), ("critico", "🔴", "CRÍTICO")],
)
def test_severity_marker(severity: str, marker: str, label: str) -> None:
    finding = Finding("k", "alerta", severity, "Título", "Resumo")  # type: ignore[arg-type]
    text, blocks = build_message(finding, "alerta", None)
    assert blocks[0]["text"]["text"] == f"{marker} {label} · Título"
    assert text.splitlines()[0] == f"{marker} {label} · Título"


def test_without_a_dashboard_there_is_no_link_but_the_key_stays() -> None:
    text, blocks = build_message(DRIFT, "alerta", None)
    assert "Painel" not in text and "http" not in text
    assert blocks[-1]["elements"] == [{"type": "mrkdwn", "text": f"Chave: `{DRIFT.key}`"}]


def test_long_findings_stay_within_slack_limits() -> None:
    finding = Finding(
        key="drift_features:modelo:9",
        state="alerta",
        severity="aviso",
        title="T" * 400,
        summary="S" * 9000,
        facts=tuple((f"Fato {i}", "v" * 3000) for i in range(35)),
        details=tuple(f"feature_{i}: PSI 0,{i:02d} " + "x" * 80 for i in range(100)),
    )
    text, blocks = build_message(finding, "alerta", DASHBOARD)

    _check_limits(blocks)
    fields = [f for b in blocks for f in b.get("fields", [])]
    assert len(fields) == 20 and fields[-1]["text"] == "*…*\ne mais 16"
    details = next(t for t in _texts(blocks) if t.startswith("*Detalhes*"))
    assert details.count("• feature_") == 15 and details.endswith("\n… e mais 85")
    assert text.endswith("…") and len(text) <= 3500
    assert text.splitlines()[0].startswith("🟠 AVISO · TTT")


def test_many_long_detail_lines_are_cut_to_the_section_limit() -> None:
    finding = Finding("k", "alerta", "aviso", "T", "S", details=tuple("y" * 900 for _ in range(14)))
    _, blocks = build_message(finding, "alerta", None)
    _check_limits(blocks)
    details = next(t for t in _texts(blocks) if t.startswith("*Detalhes*"))
    shown = details.count("• ")
    assert 0 < shown < 14 and details.endswith(f"… e mais {14 - shown}")


def test_mrkdwn_control_characters_are_escaped() -> None:
    finding = Finding(
        "k", "alerta", "aviso", "<b>", "média <7 & >3", facts=(("a<b", "c&d"),), details=("<x>",)
    )
    text, blocks = build_message(finding, "alerta", None)
    rendered = _texts(blocks)
    assert blocks[0]["text"]["text"].endswith("<b>")  # plain_text: shown as typed
    assert "média &lt;7 &amp; &gt;3" in rendered
    assert "*a&lt;b*\nc&amp;d" in rendered
    assert "<x>" not in text and "&lt;x&gt;" in text


def test_manual_and_test_messages() -> None:
    text, blocks = build_manual_message(
        "Drift no IPV", "PSI 0,31", "critico", dashboard_url=DASHBOARD
    )
    assert blocks[0]["text"]["text"] == "🔴 CRÍTICO · Drift no IPV"
    assert blocks[1]["text"]["text"] == "PSI 0,31"
    assert "Alerta manual" in blocks[2]["elements"][1]["text"]
    assert text == f"🔴 CRÍTICO · Drift no IPV\nPSI 0,31\nPainel: {DASHBOARD}"
    _, test_blocks = build_manual_message("Teste", "oi", "info", kind="teste")
    assert test_blocks[0]["text"]["text"] == "🔵 INFO · Teste"
    assert test_blocks[-1]["elements"] == [
        {"type": "mrkdwn", "text": "Mensagem de teste enviada pela API"}
    ]
    _check_limits(test_blocks)


def test_findings_are_validated() -> None:
    with pytest.raises(ValueError, match="chave"):
        Finding("", "alerta", "aviso", "T", "S")
    with pytest.raises(ValueError, match="chave"):
        Finding("k" * 201, "alerta", "aviso", "T", "S")
    with pytest.raises(ValueError, match="severidade"):
        Finding("k", "alerta", "grave", "T", "S")  # type: ignore[arg-type]
