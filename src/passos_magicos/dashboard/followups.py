"""Acompanhamentos in the dashboard: the student's follow-ups with a form to add one and to
change a status, the Alunos list's "sinalizados sem acompanhamento", and the report "da ação
ao desfecho" on the page "Como o modelo se saiu".

Reads go through the API token like every page; writes use DASHBOARD_TEAM_TOKEN (one of the
API's TEAM_TOKENS, whose name the API stores as the author). Without it the form says writing
is disabled. Follow-up reads are not cached: a record just added shows on the next run."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from passos_magicos.dashboard.client import ApiClient, ApiError, ApiUnavailableError

FLASH_KEY = "acompanhamento_registrado"
TABLE_COLUMNS = {
    "ciclo": "Ciclo",
    "tipo": "Tipo",
    "data": "Data",
    "status": "Status",
    "autor": "Registrado por",
    "atualizado_por": "Última mudança por",
}
NOT_CAUSAL_TITLE = "Descritivo, não causal"


def _status_labels(options: dict[str, Any]) -> dict[str, str]:
    return {item["valor"]: item["rotulo"] for item in options.get("status", [])}


def _date_br(value: str) -> str:
    try:
        return date.fromisoformat(value).strftime("%d/%m/%Y")
    except ValueError:
        return value


def followup_table(records: list[dict[str, Any]], labels: dict[str, str]) -> pd.DataFrame:
    rows = [
        {
            "ciclo": r["ciclo"],
            "tipo": r["tipo"],
            "data": _date_br(str(r["data"])),
            "status": labels.get(r["status"], r["status"]),
            "autor": r["autor"],
            "atualizado_por": r["atualizado_por"],
        }
        for r in records
    ]
    frame = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    if any(r.get("nota") for r in records):
        frame["nota"] = [r.get("nota") or "" for r in records]
    return frame


def student_section(api: ApiClient, aluno_id: str, ciclo: int | None) -> None:
    """The student's follow-ups, then the forms (add one; change a status)."""
    st.markdown("**Acompanhamentos**")
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        st.success(flash)
    try:
        options = api.followup_options()
        records = api.student_followups(aluno_id)
    except (ApiError, ApiUnavailableError) as exc:
        st.info(f"Acompanhamentos indisponíveis: {exc}")
        return
    labels = _status_labels(options)
    if records:
        st.dataframe(
            followup_table(records, labels),
            hide_index=True,
            width="stretch",
            column_config=TABLE_COLUMNS | {"nota": "Nota"},
        )
    else:
        st.caption("Nenhum acompanhamento registrado para este aluno.")
    if not api.team_token:
        st.info(
            "Registro de acompanhamentos desabilitado neste painel: configure "
            "DASHBOARD_TEAM_TOKEN com um dos tokens da equipe (TEAM_TOKENS da API)."
        )
        return
    if not options.get("escrita_habilitada"):
        st.info(
            "Registro de acompanhamentos desabilitado: a API não tem tokens da equipe "
            "(TEAM_TOKENS)."
        )
        return
    if ciclo is None:
        st.caption("Sem ciclo conhecido para este aluno: não dá para registrar agora.")
        return
    add_form(api, aluno_id, int(ciclo), options, labels)
    if records:
        status_form(api, aluno_id, records, labels)


def add_form(
    api: ApiClient, aluno_id: str, ciclo: int, options: dict[str, Any], labels: dict[str, str]
) -> None:
    with st.form(f"novo_acompanhamento_{aluno_id}", clear_on_submit=True):
        st.markdown(f"Registrar um acompanhamento (previsão do ciclo {ciclo})")
        left, middle, right = st.columns(3)
        tipo = left.selectbox("Tipo", options.get("tipos", []), key=f"tipo_{aluno_id}")
        when = middle.date_input("Data", value=date.today(), format="DD/MM/YYYY")
        status = right.selectbox(
            "Status",
            list(labels),
            format_func=lambda value: labels.get(value, value),
            key=f"status_novo_{aluno_id}",
        )
        note = ""
        if options.get("notas_permitidas"):
            note = st.text_area(
                "Nota (opcional; evite detalhes sensíveis sobre o aluno)", max_chars=500
            )
        submitted = st.form_submit_button("Registrar acompanhamento", type="primary")
    if not submitted:
        return
    body: dict[str, Any] = {
        "aluno_id": aluno_id,
        "ciclo": ciclo,
        "tipo": tipo,
        "data": when.isoformat() if isinstance(when, date) else str(when),
        "status": status,
    }
    if note.strip():
        body["nota"] = note.strip()
    try:
        created = api.create_followup(body)
    except (ApiError, ApiUnavailableError) as exc:
        st.error(f"Não foi possível registrar: {exc}")
        return
    # Named: with a filter on, the next run may show another student first.
    st.session_state[FLASH_KEY] = (
        f"Acompanhamento registrado para {created['aluno_id']}: {created['tipo']}, "
        f"{_date_br(str(created['data']))} ({labels.get(created['status'], created['status'])})."
    )
    st.rerun()


def status_form(
    api: ApiClient, aluno_id: str, records: list[dict[str, Any]], labels: dict[str, str]
) -> None:
    by_id = {int(r["id"]): r for r in records}

    def describe(record_id: int) -> str:
        r = by_id[record_id]
        status = labels.get(r["status"], r["status"])
        return f"{r['tipo']} — {_date_br(str(r['data']))} ({status})"

    with st.form(f"status_acompanhamento_{aluno_id}"):
        st.markdown("Mudar o status de um acompanhamento")
        left, right = st.columns(2)
        chosen = left.selectbox("Acompanhamento", list(by_id), format_func=describe)
        status = right.selectbox(
            "Novo status", list(labels), format_func=lambda value: labels.get(value, value)
        )
        submitted = st.form_submit_button("Mudar status")
    if not submitted or chosen is None:
        return
    try:
        api.change_followup_status(int(chosen), str(status))
    except (ApiError, ApiUnavailableError) as exc:
        st.error(f"Não foi possível mudar o status: {exc}")
        return
    st.session_state[FLASH_KEY] = (
        f"Status atualizado para {aluno_id}: {describe(int(chosen)).split(' (')[0]}."
    )
    st.rerun()


# -- Alunos: sinalizados sem acompanhamento --------------------------------------------------


def with_followups(api: ApiClient, frame: pd.DataFrame) -> pd.DataFrame:
    """`acompanhamentos`: each student's follow-ups (not cancelled) of the cycle their
    prediction comes from. Unavailable: the column is left empty and the list still shows."""
    counts: dict[tuple[str, int], int] = {}
    cycles = {int(c) for c in frame["ciclo"].dropna().unique()}
    try:
        for cycle in sorted(cycles):
            for record in api.cycle_followups(cycle):
                if record["status"] != "cancelado":
                    key = (record["aluno_id"], int(record["ciclo"]))
                    counts[key] = counts.get(key, 0) + 1
    except (ApiError, ApiUnavailableError) as exc:
        st.caption(f"Acompanhamentos indisponíveis: {exc}")
        return frame.assign(acompanhamentos=pd.array([pd.NA] * len(frame), dtype="Int64"))
    values = [
        counts.get((str(student), int(cycle)), 0) if pd.notna(cycle) else 0
        for student, cycle in zip(frame["aluno_id"], frame["ciclo"], strict=True)
    ]
    return frame.assign(acompanhamentos=pd.array(values, dtype="Int64"))


def flagged_without_followup(frame: pd.DataFrame) -> pd.Series:
    return frame["pv_previsto"].astype(bool) & frame["acompanhamentos"].fillna(1).eq(0)


def filter_flagged_without(frame: pd.DataFrame, shown: pd.DataFrame) -> pd.DataFrame:
    """The count of flagged students with no follow-up, and a toggle to list only them."""
    if frame["acompanhamentos"].isna().all():
        return shown
    missing = int(flagged_without_followup(frame).sum())
    flagged = int(frame["pv_previsto"].astype(bool).sum())
    st.caption(
        f"**{missing} de {flagged} sinalizados sem acompanhamento** (PV previsto e nenhum "
        "acompanhamento registrado neste ciclo, sem contar os cancelados)."
    )
    if st.toggle("Só sinalizados sem acompanhamento", value=False, key="sem_acompanhamento"):
        return shown[flagged_without_followup(shown)]
    return shown


# -- Como o modelo se saiu: da ação ao desfecho ----------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}".replace(".", ",")


def rate_cell(group: dict[str, Any] | None) -> str:
    if not group or group["taxa"]["valor"] is None:
        return "—"
    rate = group["taxa"]
    return f"{_pct(rate['valor'])} [{_pct(rate['ic_inf'])}; {_pct(rate['ic_sup'])}]"


def difference_cell(value: dict[str, Any] | None) -> str:
    if not value or value["valor"] is None:
        return "—"

    def points(x: float) -> str:
        return f"{x * 100:+.1f}".replace(".", ",")

    return f"{points(value['valor'])} p.p. [{points(value['ic_inf'])}; {points(value['ic_sup'])}]"


def outcome_table(report: dict[str, Any]) -> pd.DataFrame:
    outcome = report["ciclo_desfecho"]
    rows = []
    groups = [
        ("Com acompanhamento", report["com_acompanhamento"], report["diferenca"]),
        ("Sem acompanhamento", report["sem_acompanhamento"], None),
        *((f"… {g['tipo']}", g, g["diferenca_vs_sem"]) for g in report.get("por_tipo") or []),
    ]
    for name, group, difference in groups:
        rows.append(
            {
                "Grupo (sinalizados)": name,
                "Alunos": group["n"] if group else 0,
                f"Atingiram o PV em {outcome}": group["atingiram_pv"] if group else 0,
                "Taxa de PV [IC 95%]": rate_cell(group),
                "Diferença para “sem” [IC 95%]": difference_cell(difference),
            }
        )
    return pd.DataFrame(rows)


def outcome_section(record: dict[str, Any]) -> None:
    """Da ação ao desfecho, from the report stored with the realised record."""
    cycle, outcome = record["ciclo"], record["ciclo_desfecho"]
    st.subheader(f"Da ação ao desfecho: os sinalizados de {cycle} com e sem acompanhamento")
    report = record.get("acompanhamentos")
    if not report:
        st.caption(
            "Esta avaliação foi gravada antes do relatório de acompanhamentos existir: rode "
            "`passos-magicos evaluate` de novo para vê-lo."
        )
        return
    if report["estado"] != "ok":
        st.warning(f"Relatório de acompanhamentos não calculado: {report['motivo']}.")
        return
    warning = str(report["aviso"]).removeprefix(f"{NOT_CAUSAL_TITLE}:").strip()
    st.markdown(
        f"**{NOT_CAUSAL_TITLE}:** {warning} Dos **{report['sinalizados']} alunos "
        f"sinalizados** em {cycle}, {report['sinalizados_sem_desfecho']} não têm PV conhecido "
        f"em {outcome} e ficam de fora; "
        + ("foi registrado " if report["registros"] == 1 else "foram registrados ")
        + f"{_plural(report['registros'], 'acompanhamento')} para {cycle}."
    )
    st.table(outcome_table(report).set_index("Grupo (sinalizados)"))
    notes = [report["metodo"]]
    if planned := report.get("so_planejados_ou_cancelados"):
        notes.append(
            f"{_plural(planned, 'sinalizado')} só com acompanhamentos planejados ou cancelados "
            "(contam como “sem”)."
        )
    if outside := report.get("registros_de_nao_sinalizados"):
        notes.append(
            f"{_plural(outside, 'registro')} de alunos que o modelo não sinalizou (fora da "
            "comparação)."
        )
    small = [g for g in (report["com_acompanhamento"], report["sem_acompanhamento"]) if g]
    if any(g["n"] < 20 for g in small):
        notes.append("Grupos pequenos: os intervalos são largos, leia-os antes dos pontos.")
    st.caption(" ".join(notes))
