"""From action to outcome, end to end on synthetic cycles: a model trained up to 2022, the
2022 roster scored, follow-ups recorded through the API for some flagged students (and one
that was not flagged), the 2023 outcomes evaluated → the report in the realised record has the
counts computed here independently, is stored in the monitoring history and served by the API.
The served model's inputs contain no follow-up field."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from passos_magicos.followups.store import FOLLOWUPS
from passos_magicos.monitoring.realised import record_text
from passos_magicos.performance_history import PerformanceHistory
from passos_magicos.serving.app import create_app
from passos_magicos.settings import get_settings
from tests.flows import cli
from tests.serving.conftest import wait_ready

pytestmark = pytest.mark.slow

READ = {"Authorization": "Bearer token-e2e"}
TEAM = {"Authorization": "Bearer tok-coord"}
DONE = {"em_andamento", "concluido"}


def plan(flagged: list[str], others: list[str]) -> list[tuple[str, str, str]]:
    """(aluno_id, tipo, status) for the first 22 flagged students and one not flagged."""
    rows = [(s, "mentoria", "concluido") for s in flagged[:10]]
    rows += [(s, "reforço escolar", "em_andamento") for s in flagged[10:16]]
    rows += [(s, "conversa com a família", "concluido") for s in flagged[14:16]]  # two types
    rows += [(s, "outro", "planejado") for s in flagged[16:20]]  # planned only: not done
    rows += [(s, "mentoria", "cancelado") for s in flagged[20:22]]  # cancelled: not done
    rows.append((others[0], "outro", "concluido"))  # outside the comparison
    return rows


def expected_report(
    flagged: list[str], outcomes: dict[str, bool | None], rows: list[tuple[str, str, str]]
) -> dict[str, Any]:
    done_types: dict[str, set[str]] = {}
    for student, tipo, status in rows:
        if status in DONE:
            done_types.setdefault(student, set()).add(tipo)
    labelled = [s for s in flagged if outcomes[s] is not None]
    with_, without = (
        [s for s in labelled if s in done_types],
        [s for s in labelled if s not in done_types],
    )
    by_type: Counter[str] = Counter()
    reached_by_type: Counter[str] = Counter()
    for student in with_:
        for tipo in done_types[student]:
            by_type[tipo] += 1
            reached_by_type[tipo] += bool(outcomes[student])
    return {
        "sinalizados": len(flagged),
        "sinalizados_sem_desfecho": len(flagged) - len(labelled),
        "com": (len(with_), sum(bool(outcomes[s]) for s in with_)),
        "sem": (len(without), sum(bool(outcomes[s]) for s in without)),
        "por_tipo": {t: (n, reached_by_type[t]) for t, n in by_type.items()},
    }


def test_follow_ups_to_outcome_on_synthetic_cycles(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv, workbook = isolated / "pede-2020-2022.csv", isolated / "pede-2022-2024.xlsx"
    synth = ("data", "synth", "--students", "600", "--seed", "5")
    cli(*synth, "--output", str(csv))
    cli(*synth, "--format", "xlsx", "--output", str(workbook))
    monkeypatch.setenv("BACKTEST_REPLICATES", "200")
    monkeypatch.setenv("API_TOKENS", "token-e2e")
    monkeypatch.setenv("TEAM_TOKENS", "coordenacao:tok-coord")
    cli("train", "--data", str(csv), "--model", "compact_logistic")
    cli("promote")
    cli("predict", "--data", str(csv), "--output", str(isolated / "previsoes.csv"))
    roster = pd.read_csv(isolated / "previsoes.csv")
    flagged = roster.loc[roster["pv_previsto"], "aluno_id"].tolist()
    others = roster.loc[~roster["pv_previsto"], "aluno_id"].tolist()
    assert len(flagged) >= 30, "poucos sinalizados para o plano de acompanhamentos"

    # The team records its follow-ups through the API (default store: the monitoring DB).
    client = TestClient(create_app(get_settings()))
    client.__enter__()
    wait_ready(client)
    rows = plan(flagged, others)
    for student, tipo, status in rows:
        body = {"aluno_id": student, "ciclo": 2022, "tipo": tipo, "data": "2022-09-01"}
        response = client.post("/acompanhamentos", json=body | {"status": status}, headers=TEAM)
        assert response.status_code == 201, response.text
    assert client.get("/acompanhamentos?ciclo=2022", headers=READ).json()["total"] == len(rows)
    features = client.get("/model/info").json()["features"]
    assert not set(features) & (set(FOLLOWUPS.c.keys()) - {"aluno_id", "ciclo"})

    # The 2023 outcomes arrive.
    result = json.loads(
        cli("evaluate", "--data", str(csv), "--data", str(workbook), "--json", "--no-alerts").stdout
    )
    [record] = result["avaliacoes"]
    report = record["acompanhamentos"]
    page = client.get(
        "/monitoring/realised/1/2022/alunos", params={"por_pagina": 1000}, headers=READ
    ).json()
    outcomes = {s["aluno_id"]: s["pv_real"] for s in page["alunos"]}
    expected = expected_report(flagged, outcomes, rows)
    assert report["estado"] == "ok" and report["descritivo"] is True
    assert "não causal" in report["aviso"]
    assert (report["ciclo"], report["ciclo_desfecho"]) == (2022, 2023)
    assert report["sinalizados"] == expected["sinalizados"] == len(flagged)
    assert report["sinalizados_sem_desfecho"] == expected["sinalizados_sem_desfecho"]
    assert report["registros"] == len(rows) and report["registros_de_nao_sinalizados"] == 1
    with_, without = report["com_acompanhamento"], report["sem_acompanhamento"]
    assert (with_["n"], with_["atingiram_pv"]) == expected["com"]
    assert (without["n"], without["atingiram_pv"]) == expected["sem"]
    assert with_["n"] >= 10 and without["n"] >= 10  # both groups really measured
    assert report["so_planejados_ou_cancelados"] == sum(
        outcomes[s] is not None for s in flagged[16:22]
    )
    assert {g["tipo"]: (g["n"], g["atingiram_pv"]) for g in report["por_tipo"]} == expected[
        "por_tipo"
    ]
    for group in (with_, without, *report["por_tipo"]):
        rate = group["taxa"]
        assert rate["ic_inf"] <= rate["valor"] <= rate["ic_sup"]
    difference = report["diferenca"]
    assert difference["ic_inf"] <= difference["valor"] <= difference["ic_sup"]

    # Stored with the realised record, served by the API, printed by `evaluate`.
    history = PerformanceHistory(get_settings().monitoring_store_url)
    [stored] = history.realised_records()
    history.dispose()
    assert stored["acompanhamentos"] == report
    [served] = client.get("/monitoring/realised", headers=READ).json()["registros"]
    assert served["acompanhamentos"] == report and served["realizado"] == record["realizado"]
    text = record_text(record)
    assert "Da ação ao desfecho" in text and "descritivo, não causal" in text
    client.__exit__(None, None, None)
