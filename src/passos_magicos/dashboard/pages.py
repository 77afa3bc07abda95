"""The four pages. Each takes the API client and draws; API errors propagate to `app.main`,
which shows them with a retry button. Calls are cached for a minute (the data changes with a
training or a monitoring run, not by the second) and show a spinner while they run."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

from passos_magicos.dashboard.client import ApiClient, ApiError

CACHE_SECONDS = 60
INDICATORS = ["inde", "iaa", "ieg", "ips", "ipp", "ida", "ipv", "ian"]
INDICATOR_NAMES = {
    "inde": "INDE",
    "iaa": "Autoavaliação (IAA)",
    "ieg": "Engajamento (IEG)",
    "ips": "Psicossocial (IPS)",
    "ipp": "Psicopedagógico (IPP)",
    "ida": "Desempenho acadêmico (IDA)",
    "ipv": "Ponto de virada (IPV)",
    "ian": "Adequação de nível (IAN)",
}


def br(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}".replace(".", ",")


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def _call(api: ApiClient, method: str, *args: Any) -> Any:
    return getattr(api, method)(*args)


def fetch(api: ApiClient, method: str, *args: Any, label: str = "Carregando…") -> Any:
    with st.spinner(label):
        return _call(api, method, *args)


# -- Visão geral ----------------------------------------------------------------------------


def overview(api: ApiClient) -> None:
    info = fetch(api, "model_info", label="Consultando o modelo em uso…")
    metrics = fetch(api, "metrics")
    alerts = fetch(api, "alerts_status")

    st.subheader("Modelo em produção")
    cols = st.columns(4)
    cols[0].metric("Versão", f"v{info['versao']}")
    cols[1].metric("Origem", str(info.get("fonte", "—")))
    cols[2].metric("Treinado em", str(info.get("treinado_em") or "—")[:10])
    cols[3].metric("Limiar de decisão", br(info.get("limiar"), 3))
    st.markdown(quality_sentence(info))
    table = quality_table(info)
    if not table.empty:
        st.dataframe(table, hide_index=True, width="stretch")

    st.subheader("Previsões")
    counts = st.columns(3)
    total = f"{metrics['total_predicoes']:,}".replace(",", ".")
    counts[0].metric("Alunos pontuados (total de previsões)", total)
    share = metrics.get("distribuicao_classes", {}).get("pv_sim")
    counts[1].metric("Previstos para atingir o PV", percent(share))
    counts[2].metric("Última previsão", str(metrics.get("ultima_predicao_em") or "—")[:16])

    st.subheader("Monitoramento")
    last = alerts.get("ultima_execucao")
    if last is None:
        st.info("O monitoramento ainda não rodou.")
    else:
        st.markdown(f"Última verificação em **{str(last['started_at'])[:16]}**: {last['status']}.")
    active = alerts.get("alertas_ativos") or []
    if active:
        st.warning(f"{len(active)} alerta(s) ativo(s):")
        st.dataframe(pd.DataFrame(active), hide_index=True, width="stretch")
    elif last is not None:
        st.success("Nenhum alerta ativo.")


def quality_table(info: dict[str, Any]) -> pd.DataFrame:
    metrics, baselines = info.get("metricas", {}), info.get("referencias", {})
    prefix = "oot" if "oot_roc_auc" in metrics else "cv"
    rows = []
    for label, source, key in (
        ("Modelo", metrics, f"{prefix}_roc_auc"),
        ("Só o IPV do ano", baselines, f"{prefix}_baseline_ipv_t_roc_auc"),
        ("Só o PV do ano", baselines, f"{prefix}_baseline_pv_t_roc_auc"),
    ):
        if key in source:
            rows.append({"Quem prevê": label, "ROC-AUC": round(float(source[key]), 3)})
    return pd.DataFrame(rows)


def quality_sentence(info: dict[str, Any]) -> str:
    metrics, baselines = info.get("metricas", {}), info.get("referencias", {})
    prefix = "oot" if "oot_roc_auc" in metrics else "cv"
    model = metrics.get(f"{prefix}_roc_auc")
    ipv = baselines.get(f"{prefix}_baseline_ipv_t_roc_auc")
    if model is None:
        return "As métricas de avaliação deste modelo não estão disponíveis."
    how = "em anos que não viu no treino" if prefix == "oot" else "em alunos que não viu no treino"
    sentence = (
        f"Testado {how}, o modelo coloca um aluno que atingiu o PV acima de um que não atingiu "
        f"em **{model:.0%}** das comparações."
    )
    if ipv is not None:
        verdict = "melhor" if model > ipv else "pior"
        sentence += f" Olhar só o IPV do ano acerta {ipv:.0%}: o modelo é {verdict}."
    return sentence


# -- Alunos ---------------------------------------------------------------------------------


def roster(api: ApiClient) -> pd.DataFrame:
    data = fetch(api, "students", label="Pontuando os alunos do último ciclo…")
    rows = []
    for item in data.get("previsoes", []):
        profile = item.get("perfil") or {}
        rows.append(
            {
                "aluno_id": item["aluno_id"],
                "ciclo": item.get("ciclo"),
                "fase": profile.get("fase"),
                "turma": profile.get("turma"),
                "pedra": profile.get("pedra"),
                "probabilidade_pv": item["probabilidade_pv"],
                "pv_previsto": item["pv_previsto"],
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "aluno_id",
            "ciclo",
            "fase",
            "turma",
            "pedra",
            "probabilidade_pv",
            "pv_previsto",
        ],
    )


def top_share_per_phase(frame: pd.DataFrame, share: float) -> pd.Series:
    """True for the students in the top `share` of their phase by probability (at least one)."""
    ranks = frame.groupby("fase", dropna=False)["probabilidade_pv"].rank(
        ascending=False, method="first"
    )
    sizes = frame.groupby("fase", dropna=False)["probabilidade_pv"].transform("size")
    limit = (sizes * share).apply(math.ceil).clip(lower=1)
    return ranks <= limit


def students(api: ApiClient) -> None:
    frame = roster(api)
    if frame.empty:
        st.info("Nenhum aluno no feature store: rode um treino ou `passos-magicos materialize`.")
        return
    cycle = frame["ciclo"].dropna()
    latest = int(cycle.max()) if not cycle.empty else None
    if latest is not None and not st.checkbox(
        "Incluir quem não aparece no último ciclo (a previsão usa o último ciclo do aluno)"
    ):
        frame = frame[frame["ciclo"] == latest].reset_index(drop=True)
    st.caption(
        f"{len(frame)} alunos do ciclo {latest or '—'}, do mais ao menos provável de atingir o "
        "Ponto de Virada no próximo ciclo."
    )
    filters = st.columns([1, 1, 1, 1])
    fases = filters[0].multiselect(
        "Fase", sorted(frame["fase"].dropna().unique()), placeholder="Todas"
    )
    turmas = filters[1].multiselect(
        "Turma", sorted(frame["turma"].dropna().unique()), placeholder="Todas"
    )
    pedras = filters[2].multiselect(
        "Pedra", sorted(frame["pedra"].dropna().unique()), placeholder="Todas"
    )
    search = filters[3].text_input("Buscar id", placeholder="RA-123 ou ALUNO-45")
    capacity = st.slider(
        "Capacidade da equipe: quantos % de cada fase acompanhar de perto",
        min_value=5,
        max_value=100,
        value=15,
        step=5,
    )
    frame["prioridade"] = top_share_per_phase(frame, capacity / 100)
    shown = frame
    if fases:
        shown = shown[shown["fase"].isin(fases)]
    if turmas:
        shown = shown[shown["turma"].isin(turmas)]
    if pedras:
        shown = shown[shown["pedra"].isin(pedras)]
    if search.strip():
        shown = shown[shown["aluno_id"].str.contains(search.strip(), case=False, regex=False)]
    only_priority = st.toggle(f"Só os {capacity}% de cada fase", value=False)
    if only_priority:
        shown = shown[shown["prioridade"]]
    st.dataframe(
        shown.assign(probabilidade_pv=(shown["probabilidade_pv"] * 100).round(1)),
        hide_index=True,
        width="stretch",
        column_config={
            "aluno_id": "Aluno",
            "ciclo": "Ciclo",
            "fase": "Fase",
            "turma": "Turma",
            "pedra": "Pedra",
            "probabilidade_pv": st.column_config.ProgressColumn(
                "Probabilidade de PV (%)", min_value=0, max_value=100, format="%.1f"
            ),
            "pv_previsto": "PV previsto",
            "prioridade": f"Top {capacity}% da fase",
        },
    )
    st.download_button(
        "Baixar CSV",
        shown.to_csv(index=False).encode("utf-8"),
        file_name="alunos_ponto_de_virada.csv",
        mime="text/csv",
    )
    if shown.empty:
        return
    st.divider()
    chosen = st.selectbox("Ver um aluno", shown["aluno_id"].tolist(), key="aluno")
    if chosen:
        student_detail(api, str(chosen))


def student_detail(api: ApiClient, aluno_id: str) -> None:
    prediction = fetch(api, "student", aluno_id, label="Calculando a previsão…")
    st.subheader(f"Aluno {aluno_id}")
    cols = st.columns(3)
    cols[0].metric("Probabilidade de PV no próximo ciclo", percent(prediction["probabilidade_pv"]))
    cols[1].metric("PV previsto", "Sim" if prediction["pv_previsto"] else "Não")
    cols[2].metric("Dados do ciclo", str(prediction.get("ciclo") or "—"))
    factors = prediction.get("fatores") or []
    if factors:
        st.markdown("**O que mais pesou nesta previsão**")
        for factor in factors:
            arrow = "↑" if factor.get("impacto", 0) > 0 else "↓"
            st.markdown(f"{arrow} {factor['texto']}")
    try:
        history = fetch(api, "history", aluno_id, label="Buscando o histórico…")
    except ApiError as exc:
        st.info(f"Histórico indisponível: {exc}")
        return
    cycles = pd.DataFrame(history.get("ciclos", []))
    present = [c for c in INDICATORS if c in cycles.columns]
    if cycles.empty or not present:
        st.info("Sem histórico de indicadores para este aluno.")
        return
    st.markdown("**Indicadores ao longo dos ciclos**")
    chart = cycles.set_index("ano")[present].rename(columns=INDICATOR_NAMES)
    chart.index = chart.index.astype(str)
    st.line_chart(chart)


# -- Monitoramento --------------------------------------------------------------------------


def monitoring(api: ApiClient) -> None:
    runs = fetch(api, "monitoring_runs", 60, label="Lendo as execuções do monitoramento…")
    items = runs.get("execucoes", [])
    if not items:
        st.info("O monitoramento ainda não rodou (`passos-magicos monitor`, a cada 6 h).")
    else:
        psi_rows, score_rows = [], []
        for run in items:
            when = f"{str(run.get('inicio', ''))[:16]} (#{run.get('id')})"
            for version in run.get("versoes", []):
                for feature, values in (version.get("features") or {}).items():
                    psi_rows.append({"execucao": when, "feature": feature, "psi": values["psi"]})
                score_rows.append(
                    {
                        "execucao": when,
                        "versao": version.get("versao"),
                        "probabilidade_media": version.get("probabilidade_media"),
                        "taxa_pv_prevista": version.get("taxa_positiva"),
                    }
                )
        latest = pd.DataFrame([r for r in psi_rows if r["execucao"] == psi_rows[0]["execucao"]])
        st.subheader("Drift por feature (PSI) na última execução")
        st.caption("Acima de 0,2 a distribuição mudou o suficiente para importar.")
        if not latest.empty:
            st.bar_chart(latest.groupby("feature")["psi"].max(), horizontal=True)
        else:
            st.info("A última execução não teve previsões suficientes para medir drift.")
        scores = pd.DataFrame(score_rows).dropna(subset=["probabilidade_media"])
        if len(items) < 2:
            st.caption("Os gráficos ao longo do tempo aparecem a partir da 2ª execução.")
        else:
            st.subheader("Drift por feature ao longo das execuções")
            if psi_rows:
                psi = pd.DataFrame(psi_rows).pivot_table(
                    index="execucao", columns="feature", values="psi", aggfunc="max"
                )
                st.line_chart(psi)
            st.subheader("Distribuição das previsões ao longo do tempo")
            if not scores.empty:
                columns = ["probabilidade_media", "taxa_pv_prevista"]
                st.line_chart(scores.groupby("execucao")[columns].mean())
    st.subheader("Histórico de alertas")
    history = fetch(api, "alerts_history")
    events = pd.DataFrame(history.get("itens", []))
    if events.empty:
        st.info("Nenhum alerta até agora.")
        return
    columns = ["created_at", "kind", "severity", "title", "delivered", "detail"]
    st.dataframe(
        events[[c for c in columns if c in events.columns]].rename(
            columns={
                "created_at": "Quando",
                "kind": "Tipo",
                "severity": "Severidade",
                "title": "Alerta",
                "delivered": "Entregue no Slack",
                "detail": "Motivo",
            }
        ),
        hide_index=True,
        width="stretch",
    )


# -- Modelos --------------------------------------------------------------------------------


def models(api: ApiClient) -> None:
    data = fetch(api, "model_versions", label="Consultando o registry…")
    serving = data.get("em_uso") or {}
    if serving:
        st.markdown(
            f"Em uso agora: **v{serving.get('versao')}** (origem {serving.get('fonte', '—')})."
        )
    if data.get("erro"):
        st.warning(str(data["erro"]))
    rows = [version_row(v) for v in data.get("versoes", [])]
    if not rows:
        st.info("Nenhuma versão registrada no MLflow.")
        return
    st.caption(
        "ROC-AUC: chance de o modelo pôr acima quem atinge o PV; 0,5 é sorteio, 1 é perfeito."
    )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def version_row(version: dict[str, Any]) -> dict[str, Any]:
    metrics = version.get("metricas") or {}
    baselines = version.get("referencias") or {}

    def pick(source: dict[str, Any], key: str) -> float | None:
        value = source.get(key)
        return None if value is None else round(float(value), 3)

    return {
        "Versão": f"v{version.get('versao')}",
        "Em uso": "sim" if version.get("em_uso") else "",
        "Aliases": ", ".join(version.get("aliases") or []),
        "Portão": version.get("portao") or "—",
        "Modelo": version.get("tipo") or "—",
        "ROC-AUC (anos novos)": pick(metrics, "oot_roc_auc"),
        "ROC-AUC (alunos novos)": pick(metrics, "cv_roc_auc"),
        "PR-AUC": pick(metrics, "oot_pr_auc"),
        "Brier": pick(metrics, "oot_brier"),
        "ROC-AUC só IPV": pick(baselines, "oot_baseline_ipv_t_roc_auc"),
        "Criada em": str(version.get("criada_em") or "—")[:16],
        "Promovida em": str(version.get("promovida_em") or "—")[:16],
    }
