"""Página "Equidade": does the model serve every group of students equally well?

For the pedagogic team: per backtest year and grouping (gênero, tipo de escola, fase, anos no
programa), each group's figures with their 95 % intervals, the flagged gaps highlighted with a
plain explanation, and the rule — a gap is flagged only when its interval shows it is real.
Everything comes from GET /model/fairness (aggregate figures, no student's record)."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from passos_magicos.dashboard.client import ApiClient
from passos_magicos.dashboard.pages import br, fetch

GROUPING_ORDER = ("genero", "escola", "fase", "anos_programa")
GROUPING_NAMES = {
    "genero": "Gênero",
    "escola": "Tipo de escola",
    "fase": "Fase",
    "anos_programa": "Anos no programa",
}
RATE_METRICS = {
    "taxa_real": "Atingiram o PV",
    "taxa_prevista": "PV previsto",
    "recall_rotulo": "Com PV e previstos",
    "falsos_positivos_rotulo": "Sem PV, mas previstos",
    "recall_top15": "Com PV entre os 15% mais prováveis",
    "recall_top25": "Com PV entre os 25% mais prováveis",
}
CHART_METRICS = {
    "recall_rotulo": "Com PV e previstos (recall do PV previsto)",
    "roc_auc": "ROC-AUC dentro do grupo",
    "falsos_positivos_rotulo": "Sem PV, mas previstos (falsos positivos)",
    "calibracao": "Probabilidade média − taxa real",
}
EXPLANATIONS = {
    "recall_rotulo": "dos alunos do grupo que atingiram o PV, uma parte menor estava marcada "
    "como “PV previsto” do que nos demais grupos",
    "falsos_positivos_rotulo": "mais alunos do grupo que não atingiram o PV estavam marcados "
    "como “PV previsto” do que nos demais",
    "recall_top15": "a lista dos 15% mais prováveis do ano trazia uma parte menor dos alunos "
    "do grupo que atingiram o PV",
    "recall_top25": "a lista dos 25% mais prováveis do ano trazia uma parte menor dos alunos "
    "do grupo que atingiram o PV",
    "roc_auc": "dentro do grupo, o modelo separa pior quem atinge o PV de quem não atinge",
    "calibracao": "as probabilidades do grupo se afastam mais da taxa real do que nas demais",
}
FLAG_STYLE = "background-color: #fde2e1; color: #7a1c16"


def percent_interval(figure: dict[str, Any] | None) -> str:
    """`14% [10%; 19%]` (just the figure when there is no interval)."""
    figure = figure or {}
    value, low, high = figure.get("valor"), figure.get("ic_inf"), figure.get("ic_sup")
    if value is None:
        return "—"
    if low is None or high is None:
        return _pct(value)
    return f"{_pct(value)} [{_pct(low)}; {_pct(high)}]"


def _pct(value: float) -> str:
    return f"{value:.0%}"


def number_interval(figure: dict[str, Any] | None) -> str:
    figure = figure or {}
    value, low, high = figure.get("valor"), figure.get("ic_inf"), figure.get("ic_sup")
    if value is None:
        return "—"
    if low is None or high is None:
        return br(value, 2)
    return f"{br(value, 2)} [{br(low, 2)}; {br(high, 2)}]"


def _years(report: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(report.get("anos") or [], key=lambda y: int(y["ano_teste"]))


def flagged_metrics(group: dict[str, Any]) -> list[str]:
    return [m for m, gap in (group.get("diferencas") or {}).items() if gap.get("sinalizada")]


def status_text(group: dict[str, Any], names: dict[str, str]) -> str:
    flagged = flagged_metrics(group)
    if flagged:
        return "⚠ sim: " + ", ".join(names.get(m, m) for m in flagged)
    if not group.get("comparado"):
        return f"não comparado ({group.get('motivo') or 'sem dados suficientes'})"
    return "não"


def group_table(year: dict[str, Any], grouping: str, names: dict[str, str]) -> pd.DataFrame:
    """One row per group of `grouping`: every figure with its 95 % interval."""
    rows = []
    for group in year.get("grupos") or []:
        if group["agrupamento"] != grouping:
            continue
        figures = group.get("metricas") or {}
        calibration = figures.get("prob_media")
        rows.append(
            {
                "Grupo": group["grupo"],
                "Alunos (com PV)": f"{group['n']} ({group['positivos']})",
                **{title: percent_interval(figures.get(m)) for m, title in RATE_METRICS.items()},
                "ROC-AUC no grupo": number_interval(figures.get("roc_auc")),
                "Probabilidade média": percent_interval(calibration),
                "Diferença sinalizada": status_text(group, names),
            }
        )
    return pd.DataFrame(rows)


def _highlight(row: pd.Series) -> list[str]:
    flagged = str(row.get("Diferença sinalizada", "")).startswith("⚠")
    return [FLAG_STYLE if flagged else "" for _ in row]


def gap_frame(year: dict[str, Any], grouping: str, metric: str) -> pd.DataFrame:
    rows = []
    for group in year.get("grupos") or []:
        if group["agrupamento"] != grouping:
            continue
        figure = (group.get("metricas") or {}).get(metric) or {}
        if figure.get("valor") is None:
            continue
        flagged = metric in flagged_metrics(group)
        rows.append(
            {
                "grupo": group["grupo"],
                "valor": figure["valor"],
                "ic_inf": figure.get("ic_inf", figure["valor"]),
                "ic_sup": figure.get("ic_sup", figure["valor"]),
                "situacao": "sinalizado" if flagged else "sem diferença sinalizada",
            }
        )
    return pd.DataFrame(rows, columns=["grupo", "valor", "ic_inf", "ic_sup", "situacao"])


def gap_chart(frame: pd.DataFrame, title: str) -> alt.LayerChart:
    color = alt.Color(
        "situacao:N",
        title=None,
        scale=alt.Scale(
            domain=["sem diferença sinalizada", "sinalizado"], range=["#4c78a8", "#d62728"]
        ),
        legend=alt.Legend(orient="bottom"),
    )
    base = alt.Chart(frame).encode(
        x=alt.X("grupo:N", title=None, sort=list(frame["grupo"]), axis=alt.Axis(labelAngle=0)),
        color=color,
        tooltip=[
            alt.Tooltip("grupo:N", title="Grupo"),
            alt.Tooltip("valor:Q", title=title, format=".2f"),
            alt.Tooltip("ic_inf:Q", title="IC 95% inf.", format=".2f"),
            alt.Tooltip("ic_sup:Q", title="IC 95% sup.", format=".2f"),
        ],
    )
    bars = base.mark_rule(strokeWidth=2).encode(
        y=alt.Y("ic_inf:Q", title=title, scale=alt.Scale(zero=False)), y2="ic_sup:Q"
    )
    chart: alt.LayerChart = bars + base.mark_point(filled=True, size=80, opacity=1).encode(
        y="valor:Q"
    )
    return chart


def flag_message(flag: dict[str, Any], names: dict[str, str]) -> str:
    grouping = GROUPING_NAMES.get(flag["agrupamento"], flag["agrupamento"])
    metric = flag["metrica"]
    plain = EXPLANATIONS.get(metric, names.get(metric, metric))
    return f"**{grouping}: {flag['grupo']}** — {plain}. {flag['texto']}."


def page(api: ApiClient) -> None:
    report = fetch(api, "model_fairness", label="Lendo o relatório de equidade…")
    if not report or not report.get("anos"):
        st.info(
            "O modelo em uso não tem relatório de equidade. Ele sai do backtest, que precisa de "
            "pelo menos três ciclos com PV: treine o modelo com mais ciclos para vê-lo aqui."
        )
        return
    names: dict[str, str] = report.get("metricas") or {}
    st.markdown(
        "O modelo atende igualmente bem cada grupo de alunos — meninas e meninos, alunos de "
        "escola pública e de escola privada ou parceira, cada fase, quem está no primeiro ano "
        "e quem já estava no programa? Em cada ano que dava para conferir, o modelo foi "
        "ajustado só com os anos anteriores e testado nesse ano; aqui estão os resultados por "
        f"grupo (modelo v{report.get('versao')})."
    )
    years = _years(report)
    newest = years[-1]
    if newest.get("sinalizadas"):
        st.warning(report.get("resumo") or "")
    else:
        st.success(report.get("resumo") or "")
    st.info(
        "**Uma diferença só é destacada quando o intervalo mostra que ela é real.** Grupos "
        "pequenos têm intervalos largos (entre colchetes: a faixa em que o valor verdadeiro "
        "provavelmente está); uma diferença que cabe no acaso não é destacada, por maior que "
        "pareça. Gênero e escola nunca são usados pelo modelo: servem só para esta conferência."
    )
    labels = [year["transicao"] for year in years]
    choice = st.selectbox("Ano testado", labels, index=len(labels) - 1, key="equidade_ano")
    year = years[labels.index(choice)]
    st.caption(
        f"{year['n']} alunos, {year['positivos']} atingiram o PV; {year['comparacoes']} "
        "comparações entre grupos nesse ano."
    )
    flags = year.get("sinalizadas") or []
    if flags:
        st.markdown(f"**Diferenças sinalizadas em {year['transicao']}**")
        for flag in flags:
            st.error(flag_message(flag, names))
    else:
        st.success(f"Nenhuma diferença sinalizada em {year['transicao']}.")
    for grouping in GROUPING_ORDER:
        table = group_table(year, grouping, names)
        if table.empty:
            continue
        st.subheader(GROUPING_NAMES[grouping])
        st.dataframe(table.style.apply(_highlight, axis=1), hide_index=True, width="stretch")
    st.subheader("Por grupo, com intervalos")
    left, right = st.columns(2)
    with left:
        grouping = st.selectbox(
            "Agrupamento",
            list(GROUPING_ORDER),
            format_func=lambda key: GROUPING_NAMES[key],
            key="equidade_agrupamento",
        )
    with right:
        metric = st.selectbox(
            "Medida",
            list(CHART_METRICS),
            format_func=lambda key: CHART_METRICS[key],
            key="equidade_medida",
        )
    frame = gap_frame(year, grouping, metric)
    if frame.empty:
        st.info("Sem valores para esta combinação.")
    else:
        st.altair_chart(gap_chart(frame, CHART_METRICS[metric]), width="stretch")
    with st.expander("Como ler esta página"):
        st.markdown(
            "- **Atingiram o PV**: a taxa real do grupo; **PV previsto**: quantos o modelo "
            "marcou.\n"
            "- **Com PV e previstos** (recall): dos que atingiram o PV, quantos estavam marcados. "
            "Mais baixo num grupo = o modelo deixa de fora mais alunos dele. Pode vir de uma "
            "taxa de PV menor no grupo: o mesmo limiar pega menos alunos cujas probabilidades "
            "são mais baixas.\n"
            "- **Sem PV, mas previstos** (falsos positivos): dos que não atingiram, quantos "
            "estavam marcados.\n"
            "- **Entre os 15% / 25% mais prováveis**: a lista do ano inteiro, ordenada como a "
            "equipe ordena.\n"
            "- **ROC-AUC no grupo**: 0,5 é sorteio, 1 é perfeito.\n"
            "- **Probabilidade média** ao lado da taxa real: perto uma da outra, as "
            "probabilidades do grupo estão calibradas.\n\n"
            f"**Regra:** {_sentence(report.get('regra'))}"
        )


def _sentence(text: Any) -> str:
    if not isinstance(text, str) or not text:
        return "—"
    return text[0].upper() + text[1:]
