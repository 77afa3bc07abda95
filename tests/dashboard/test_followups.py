"""Acompanhamentos in the dashboard (AppTest against the live API): the student's follow-ups,
"sinalizados sem acompanhamento" on the Alunos list, the form without a team token, a status
change through the form, and the report "da ação ao desfecho" on "Como o modelo se saiu"."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from passos_magicos.dashboard import followups
from passos_magicos.followups.outcomes import outcome_report
from passos_magicos.performance_history import RealisedStudent
from tests.dashboard.conftest import APP, TEAM_NAME, TEAM_TOKEN, LiveApi

TEAM = {"Authorization": f"Bearer {TEAM_TOKEN}"}


def _page(key: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["pagina"] = key
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _top_student(live: LiveApi) -> dict[str, Any]:
    roster = httpx.get(
        f"{live.url}/predict/alunos", headers={"X-API-Token": live.token}, timeout=60
    ).json()["previsoes"]
    latest = max(p["ciclo"] for p in roster)
    top: dict[str, Any] = next(p for p in roster if p["ciclo"] == latest)
    assert top["pv_previsto"], "o primeiro da lista deveria estar sinalizado"
    return top


def _record(live: LiveApi, student: dict[str, Any], tipo: str, status: str) -> dict[str, Any]:
    body = {"aluno_id": student["aluno_id"], "ciclo": student["ciclo"], "tipo": tipo}
    response = httpx.post(
        f"{live.url}/acompanhamentos",
        json=body | {"data": "2023-03-01", "status": status},
        headers=TEAM,
        timeout=30,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_students_page_marks_flagged_students_without_follow_up(dashboard_env: LiveApi) -> None:
    top = _top_student(dashboard_env)
    _record(dashboard_env, top, "mentoria", "planejado")
    at = _page("alunos")
    table = at.dataframe[0].value
    counts = dict(zip(table["aluno_id"], table["acompanhamentos"], strict=True))
    assert counts[top["aluno_id"]] >= 1
    flagged = table[table["pv_previsto"]]
    missing = int((flagged["acompanhamentos"] == 0).sum())
    caption = f"**{missing} de {len(flagged)} sinalizados sem acompanhamento**"
    assert any(caption in c.value for c in at.caption), [c.value for c in at.caption]

    at.toggle(key="sem_acompanhamento").set_value(True).run()
    only = at.dataframe[0].value
    assert len(only) == missing and only["pv_previsto"].all()
    assert (only["acompanhamentos"] == 0).all() and top["aluno_id"] not in set(only["aluno_id"])


def test_student_page_lists_follow_ups_and_says_when_writing_is_disabled(
    dashboard_env: LiveApi,
) -> None:
    top = _top_student(dashboard_env)
    _record(dashboard_env, top, "conversa com a família", "concluido")
    at = _page("alunos")
    assert at.selectbox(key="aluno").value == top["aluno_id"]
    listed = at.dataframe[1].value  # the student's follow-ups, after the list
    assert "conversa com a família" in set(listed["tipo"])
    assert set(listed["autor"]) == {TEAM_NAME} and "concluído" in set(listed["status"])
    assert any("configure DASHBOARD_TEAM_TOKEN" in i.value for i in at.info)
    assert not [b for b in at.button if "Registrar" in str(b.label)]


def test_status_changes_through_the_form(
    dashboard_env: LiveApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASHBOARD_TEAM_TOKEN", TEAM_TOKEN)
    top = _top_student(dashboard_env)
    created = _record(dashboard_env, top, "outro", "planejado")
    at = _page("alunos")
    chooser = next(s for s in at.selectbox if s.label == "Acompanhamento")
    chooser.set_value(created["id"])
    next(s for s in at.selectbox if s.label == "Novo status").set_value("cancelado")
    next(b for b in at.button if b.label == "Mudar status").click().run()
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    assert any("Status atualizado" in s.value for s in at.success)
    stored = httpx.get(
        f"{dashboard_env.url}/alunos/{top['aluno_id']}/acompanhamentos", headers=TEAM, timeout=30
    ).json()["itens"]
    [changed] = [r for r in stored if r["id"] == created["id"]]
    assert changed["status"] == "cancelado" and changed["atualizado_por"] == TEAM_NAME


def test_results_page_shows_the_action_to_outcome_report(dashboard_env: LiveApi) -> None:
    [record] = httpx.get(
        f"{dashboard_env.url}/monitoring/realised",
        headers={"X-API-Token": dashboard_env.token},
        timeout=30,
    ).json()["registros"]
    report = record["acompanhamentos"]
    assert report["estado"] == "ok" and report["sinalizados"] > 0
    at = _page("desempenho")
    headers = [h.value for h in at.subheader]
    assert "Da ação ao desfecho: os sinalizados de 2022 com e sem acompanhamento" in headers
    text = " ".join(m.value for m in at.markdown)
    assert "**Descritivo, não causal:** a equipe escolhe quem acompanhar" in text
    assert f"Dos **{report['sinalizados']} alunos sinalizados** em 2022" in text
    table = at.table[1].value  # after the realised figures
    without = table.loc["Sem acompanhamento"]
    assert int(without["Alunos"]) == report["sem_acompanhamento"]["n"]
    assert without["Taxa de PV [IC 95%]"] == followups.rate_cell(report["sem_acompanhamento"])


def test_outcome_table_words_each_group() -> None:
    students = [
        RealisedStudent(f"RA-{i}", i, 0.9, True, i % 3 == 0, "derivado", "lista_pontuada")
        for i in range(1, 31)
    ]
    records = {f"RA-{i}": [("mentoria", "concluido")] for i in range(1, 11)}
    table = followups.outcome_table(outcome_report(students, records, 2023))
    assert list(table["Grupo (sinalizados)"]) == [
        "Com acompanhamento",
        "Sem acompanhamento",
        "… mentoria",
    ]
    assert list(table["Alunos"]) == [10, 20, 10]
    assert list(table["Atingiram o PV em 2024"]) == [3, 7, 3]
    assert table["Taxa de PV [IC 95%]"][0] == "30,0% [10,8%; 60,3%]"
    assert table["Diferença para “sem” [IC 95%]"][1] == "—"
    assert table["Diferença para “sem” [IC 95%]"][0].endswith("]")
