"""The five pages. Each takes the API client and draws; API errors propagate to `app.main`,
which shows them with a retry button (only optional blocks, such as the current list's
estimate, catch their own error and say so in place). Calls are cached for a minute (the data
changes with a training or a monitoring run, not by the second) and show a spinner meanwhile.

Quality claims follow the backtest's rule: the model "supera" a baseline only when the paired
95 % interval of the difference excludes zero; otherwise it "empata" (or "perde")."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from passos_magicos.dashboard import followups
from passos_magicos.dashboard.client import ApiClient, ApiError, ApiUnavailableError

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


def percent(value: float | None, digits: int = 0) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.{digits}%}".replace(".", ",")


def signed(value: float | None, digits: int = 3) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:+.{digits}f}".replace(".", ",")


def interval_text(value: float | None, low: float | None, high: float | None) -> str:
    """`0,747 [0,702; 0,793]`: a figure and its 95 % interval (just the figure if none)."""
    if low is None or high is None:
        return br(value, 3)
    return f"{br(value, 3)} [{br(low, 3)}; {br(high, 3)}]"


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
    quality(info, fetch(api, "model_backtest", label="Lendo o backtest do modelo…"))
    expected_overview(api)

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


# Short names for tables and legends; phrases for sentences (unknown keys: the API's name).
BASELINE_LABELS = {
    "inde_t": "Só o INDE do ano",
    "ipv_t": "Só o IPV do ano",
    "logistica_simples": "Logística simples",
}
BASELINE_PHRASES = {
    "inde_t": "o INDE do ano sozinho (INDE_t)",
    "ipv_t": "o IPV do ano sozinho (IPV_t)",
    "logistica_simples": "uma regressão logística simples (8 indicadores + PV do ano)",
}
VERDICT_PHRASES = {"supera": "supera", "empata": "empata com", "perde": "perde para"}
MODEL_LABEL = "Modelo"
EXTRA_COLORS = ("#1f4e9c", "#7fb3e6", "#c0392b", "#7f7f7f")
COLORS = {
    MODEL_LABEL: "#1f4e9c",
    "Só o INDE do ano": "#e07b00",
    "Só o IPV do ano": "#2a9d4b",
    "Logística simples": "#8e6bbf",
}


def baseline_label(key: str, names: dict[str, str] | None = None) -> str:
    return BASELINE_LABELS.get(key) or (names or {}).get(key) or key


def baseline_phrase(key: str, names: dict[str, str] | None = None) -> str:
    return BASELINE_PHRASES.get(key) or (names or {}).get(key) or key


def verdict_of(low: float | None, high: float | None) -> str | None:
    """The backtest's rule for ROC-AUC: `supera` only when the paired interval excludes zero."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return None
    if low > 0:
        return "supera"
    return "perde" if high < 0 else "empata"


@dataclass(frozen=True)
class Figure:
    value: float | None
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> Figure:
        data = data or {}
        return cls(data.get("valor"), data.get("ic_inf"), data.get("ic_sup"))

    def text(self) -> str:
        return interval_text(self.value, self.low, self.high)


@dataclass(frozen=True)
class Claim:
    """The model against one baseline on the same students (ROC-AUC)."""

    key: str
    label: str
    phrase: str
    baseline: Figure
    difference: Figure
    verdict: str | None


@dataclass(frozen=True)
class Quality:
    """The model's headline ROC-AUC and its claims, from the backtest's newest year (or, for a
    model without backtest, from /model/info's flat metrics)."""

    where: str
    model: Figure
    claims: list[Claim]
    n: int | None = None
    positives: int | None = None


def newest_year(backtest: dict[str, Any] | None) -> dict[str, Any] | None:
    years = (backtest or {}).get("anos") or []
    return max(years, key=lambda y: int(y["ano_teste"])) if years else None


def quality_from_backtest(backtest: dict[str, Any]) -> Quality | None:
    year = newest_year(backtest)
    if year is None:
        return None
    figures = year.get("metricas", {})
    claims = []
    for key, comparison in year.get("comparacoes", {}).items():
        roc = comparison.get("roc_auc") or {}
        claims.append(
            Claim(
                key=key,
                label=baseline_label(key, backtest.get("referencias")),
                phrase=baseline_phrase(key, backtest.get("referencias")),
                baseline=Figure.of((figures.get(key) or {}).get("roc_auc")),
                difference=Figure.of(roc),
                verdict=roc.get("veredito") or verdict_of(roc.get("ic_inf"), roc.get("ic_sup")),
            )
        )
    return Quality(
        where=f"em {year['transicao']}, um ano que o modelo não viu no treino",
        model=Figure.of((figures.get("modelo") or {}).get("roc_auc")),
        claims=claims,
        n=year.get("n"),
        positives=year.get("positivos"),
    )


def quality_from_info(info: dict[str, Any]) -> Quality | None:
    """Older models and models trained on one transition: the flat metrics of /model/info."""
    metrics, baselines = info.get("metricas", {}), info.get("referencias", {})
    prefix = "oot" if "oot_roc_auc" in metrics else "cv"
    if f"{prefix}_roc_auc" not in metrics:
        return None
    start, end = f"{prefix}_baseline_", "_roc_auc"
    keys = [k[len(start) : -len(end)] for k in baselines if k.startswith(start) and k.endswith(end)]
    order = list(BASELINE_LABELS)
    keys.sort(key=lambda k: (order.index(k) if k in order else len(order), k))
    claims = []
    for key in keys:
        dif = f"{prefix}_dif_{key}_roc_auc"
        low, high = metrics.get(f"{dif}_ic_inf"), metrics.get(f"{dif}_ic_sup")
        claims.append(
            Claim(
                key=key,
                label=baseline_label(key),
                phrase=baseline_phrase(key),
                baseline=Figure(baselines[f"{start}{key}{end}"]),
                difference=Figure(metrics.get(dif), low, high),
                verdict=verdict_of(low, high),
            )
        )
    where = (
        "em anos que não viu no treino" if prefix == "oot" else "em alunos que não viu no treino"
    )
    return Quality(where=where, model=Figure(metrics[f"{prefix}_roc_auc"]), claims=claims)


def claim_sentence(claim: Claim, model: Figure) -> str:
    """One line per baseline: the verdict first, then the figures that justify it."""
    figures = f"ROC-AUC {br(model.value, 3)} × {br(claim.baseline.value, 3)}"
    if claim.verdict is None:
        return (
            f"O modelo **não tem veredito** contra {claim.phrase} ({figures}): sem o intervalo "
            "da diferença não dá para dizer que ele é melhor."
        )
    diff = claim.difference
    why = {
        "supera": "o intervalo fica todo acima de zero",
        "empata": "o intervalo inclui o zero, a diferença pode ser acaso",
        "perde": "o intervalo fica todo abaixo de zero",
    }[claim.verdict]
    return (
        f"O modelo **{VERDICT_PHRASES[claim.verdict]}** {claim.phrase}: {figures}; diferença "
        f"{signed(diff.value)} (IC 95% de {signed(diff.low)} a {signed(diff.high)}: {why})."
    )


def quality_table(result: Quality) -> pd.DataFrame:
    rows = [
        {
            "Quem prevê": MODEL_LABEL,
            "ROC-AUC [IC 95%]": result.model.text(),
            "Diferença do modelo [IC 95%]": "",
            "Veredito do modelo": "",
        }
    ]
    for claim in result.claims:
        diff = claim.difference
        rows.append(
            {
                "Quem prevê": claim.label,
                "ROC-AUC [IC 95%]": claim.baseline.text(),
                "Diferença do modelo [IC 95%]": (
                    f"{signed(diff.value)} [{signed(diff.low)}; {signed(diff.high)}]"
                    if diff.low is not None and diff.high is not None
                    else signed(diff.value)
                ),
                "Veredito do modelo": claim.verdict or "sem intervalo",
            }
        )
    return pd.DataFrame(rows)


def quality(info: dict[str, Any], backtest: dict[str, Any] | None) -> None:
    st.subheader("O modelo é melhor do que regras simples?")
    summary = (backtest or {}).get("resumo")
    newest = newest_year(backtest)
    if summary:
        inde = ((newest or {}).get("comparacoes", {}).get("inde_t") or {}).get("roc_auc") or {}
        box = st.success if inde.get("veredito") == "supera" else st.warning
        box(summary)
    result = (quality_from_backtest(backtest) if backtest else None) or quality_from_info(info)
    if result is None or result.model.value is None:
        st.markdown("As métricas de avaliação deste modelo não estão disponíveis.")
        return
    students = (
        f" ({result.n} alunos, {result.positives} atingiram o PV)" if result.n is not None else ""
    )
    brackets = "; entre colchetes, o intervalo de 95%" if result.model.low is not None else ""
    st.markdown(
        f"Testado {result.where}{students}, o modelo coloca um aluno que atingiu o PV acima de "
        f"um que não atingiu em **{result.model.value:.0%}** das comparações (ROC-AUC "
        f"{result.model.text()}{brackets})."
    )
    if result.claims:
        st.markdown(
            "\n".join(f"- {claim_sentence(claim, result.model)}" for claim in result.claims)
        )
        st.caption(
            "Comparações nos mesmos alunos. Só dizemos que o modelo **supera** uma regra simples "
            "quando todo o intervalo de 95% da diferença fica acima de zero; se o intervalo "
            "inclui o zero, ele **empata**; se fica todo abaixo, **perde**."
        )
        st.dataframe(quality_table(result), hide_index=True, width="stretch")


# -- Alunos ---------------------------------------------------------------------------------


ALL_CYCLES = "todos"  # the API's `ciclo` for every cycle's students


def roster(api: ApiClient, cycle: str | None = None) -> pd.DataFrame:
    data = fetch(api, "students", cycle, label="Pontuando os alunos…")
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
    older = st.checkbox(
        "Incluir quem não aparece no último ciclo (a previsão usa o último ciclo do aluno)"
    )
    frame = roster(api, ALL_CYCLES if older else None)
    if frame.empty:
        st.info("Nenhum aluno no feature store: rode um treino ou `passos-magicos materialize`.")
        return
    cycle = frame["ciclo"].dropna()
    latest = int(cycle.max()) if not cycle.empty else None
    where = "de todos os ciclos" if older else f"do ciclo {latest or '—'}"
    st.caption(
        f"{len(frame)} alunos {where}, do mais ao menos provável de atingir o Ponto de Virada "
        "no próximo ciclo."
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
    frame = followups.with_followups(api, frame)
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
    shown = followups.filter_flagged_without(frame, shown)
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
            "acompanhamentos": "Acompanhamentos no ciclo",
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
    followups.student_section(api, aluno_id, prediction.get("ciclo"))
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


# -- Como o modelo se saiu ------------------------------------------------------------------

# What each headline figure means, in the team's words (recalls read as percentages).
PERFORMANCE_METRICS: dict[str, tuple[str, str]] = {
    "roc_auc": (
        "ROC-AUC",
        "A lista ordena bem? Chance de pôr quem atinge o PV acima de quem não atinge "
        "(0,5 = sorteio; 1 = perfeito).",
    ),
    "pr_auc": (
        "PR-AUC",
        "O topo da lista acerta? Um sorteio daria a taxa de PV; quanto mais alto, melhor.",
    ),
    "recall_top15": (
        "Recall nos 15% mais prováveis",
        "Dos que atingem o PV, quantos estão entre os 15% do topo da lista.",
    ),
}
SHORT_METRIC_NAMES = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "recall_top15": "Recall top 15%"}
RATE_MEANING = "Fração dos alunos que atingem o PV (esperada: a média das probabilidades)."
OPTIMISM_NOTE = (
    "É uma **estimativa** feita só com as probabilidades do modelo, antes de saber quem atinge "
    "o PV (supõe que as probabilidades estão certas). Estimativas assim costumam ser "
    "**otimistas**: no backtest dos dados reais, o ROC-AUC que se realizou ficou de 0,02 a "
    "0,035 abaixo do estimado em cada ano. Leia a estimativa como um teto."
)
NO_EVALUATION = (
    "Ainda não há resultados reais para comparar com a lista do modelo. Quando chegarem os "
    "resultados do próximo ciclo do PEDE (o arquivo com o PV dos alunos no ano seguinte), a "
    "equipe de dados roda `passos-magicos evaluate --data <arquivos com o novo ciclo>`. A partir "
    "daí, esta página mostra a lista do ciclo passado ao lado de quem atingiu o PV."
)
# How each state of a realised evaluation is named on screen.
STATE_TITLES = {
    "ok": "Dentro do esperado",
    "alerta": "Alerta: abaixo do piso",
    "indeterminado": "Sem conclusão",
}
ORIGIN_LABELS = {"oficial": "oficial", "derivado": "derivado (regra do IPV)"}
ROSTER_PAGE = 1000  # the API's largest page: one or two requests for a whole cycle
LIST_PAGE = 100  # rows per page on screen
OUTCOME_FILTERS = {
    "todos": "Todos",
    "sinalizados": "Só os sinalizados (PV previsto)",
    "atingiram": "Só os que atingiram o PV",
    "sinalizados_atingiram": "Sinalizados que atingiram o PV",
    "sinalizados_nao_atingiram": "Sinalizados que não atingiram",
    "atingiram_sem_sinal": "Atingiram sem ter sido sinalizados",
    "sem_desfecho": "Sem resultado no ciclo seguinte",
}
ROSTER_COLUMNS = ["posicao", "aluno_id", "probabilidade_pv", "pv_previsto", "pv_real", "pv_origem"]


def plural(count: int, singular: str, many: str) -> str:
    return f"{count} {singular if count == 1 else many}"


def metric_text(metric: str, figure: Figure) -> str:
    """A figure and its 95 % interval; recalls as percentages (`54% [43%; 66%]`)."""
    if not metric.startswith("recall"):
        return figure.text()
    if figure.low is None or figure.high is None:
        return percent(figure.value)
    return f"{percent(figure.value)} [{percent(figure.low)}; {percent(figure.high)}]"


def metric_value(metric: str, value: float | None) -> str:
    return percent(value) if metric.startswith("recall") else br(value, 3)


def difference_text(metric: str, value: float | None) -> str:
    """Estimated − realised: positive = the estimate was optimistic."""
    if value is None or math.isnan(value):
        return "—"
    if metric.startswith("recall") or metric == "taxa":
        return f"{value * 100:+.0f} p.p."
    return signed(value)


def _rate_difference(estimated: float | None, real: float | None) -> float | None:
    return None if estimated is None or real is None else estimated - real


def realised_table(record: dict[str, Any]) -> pd.DataFrame:
    """Realised figures beside the estimate that existed before the outcomes (same students)."""
    errors = record.get("erro_estimativa") or {}
    rows = []
    for metric, (name, meaning) in PERFORMANCE_METRICS.items():
        rows.append(
            {
                "Métrica": name,
                "Realizado [IC 95%]": metric_text(
                    metric, Figure.of(record["realizado"].get(metric))
                ),
                "Estimado antes dos resultados [IC 95%]": metric_text(
                    metric, Figure.of(record["estimado"].get(metric))
                ),
                "Estimado − realizado": difference_text(metric, errors.get(metric)),
                "O que mede": meaning,
            }
        )
    rates = record.get("taxas") or {}
    rows.append(
        {
            "Métrica": "Taxa de PV",
            "Realizado [IC 95%]": percent(rates.get("real"), 1),
            "Estimado antes dos resultados [IC 95%]": percent(rates.get("esperada"), 1),
            "Estimado − realizado": difference_text(
                "taxa", _rate_difference(rates.get("esperada"), rates.get("real"))
            ),
            "O que mede": RATE_MEANING,
        }
    )
    return pd.DataFrame(rows)


def expected_table(performance: dict[str, Any]) -> pd.DataFrame:
    """The cohort's expected figures; the realised ones beside them once they exist."""
    realised = performance.get("realizado")
    rows = []
    for metric, (name, meaning) in PERFORMANCE_METRICS.items():
        row = {
            "Métrica": name,
            "Esperado [IC 95%]": metric_text(
                metric, Figure.of(performance["estimado"].get(metric))
            ),
        }
        if realised:
            row["Realizado [IC 95%]"] = metric_text(
                metric, Figure.of(realised["realizado"].get(metric))
            )
        rows.append(row | {"O que mede": meaning})
    rate = {
        "Métrica": "Taxa de PV",
        "Esperado [IC 95%]": percent(performance.get("taxa_pv_esperada"), 1),
    }
    if realised:
        rate["Realizado [IC 95%]"] = percent((realised.get("taxas") or {}).get("real"), 1)
    rows.append(rate | {"O que mede": RATE_MEANING})
    return pd.DataFrame(rows)


def expected_performance(api: ApiClient) -> dict[str, Any] | None:
    """/model/performance, or None with a note: the rest of the page still has something to
    show when the model or the feature store is not ready."""
    try:
        result: dict[str, Any] = fetch(
            api, "model_performance", label="Estimando o desempenho da lista atual…"
        )
    except (ApiError, ApiUnavailableError) as exc:
        st.info(f"A estimativa da lista atual não está disponível agora. {exc}")
        return None
    return result


def expected_overview(api: ApiClient) -> None:
    """The overview's short version: four figures, the caveat, and a realised figure: the
    current list's once its outcomes are in, else the last cycle evaluated."""
    st.subheader("O que se espera da lista atual")
    performance = expected_performance(api)
    if performance is None:
        return
    latest = None if performance.get("realizado") else latest_evaluation(api)
    expected_figures(performance, latest)


def latest_evaluation(api: ApiClient) -> dict[str, Any] | None:
    try:
        records = fetch(api, "realised", label="Buscando avaliações…").get("registros") or []
    except (ApiError, ApiUnavailableError):
        return None  # the estimate is what this block is for; the other page shows the error
    return newest_evaluations(records)[0] if records else None


def expected_figures(performance: dict[str, Any], latest: dict[str, Any] | None) -> None:
    realised = performance.get("realizado")
    st.markdown(
        f"Para os **{performance['n']} alunos de {performance['ciclo']}** (PV em "
        f"{performance['ciclo_alvo']}), pelas probabilidades do modelo, antes dos resultados:"
    )
    cols = st.columns(4)
    for col, (metric, (_, meaning)) in zip(cols, PERFORMANCE_METRICS.items(), strict=False):
        figure = Figure.of(performance["estimado"].get(metric))
        col.metric(
            f"{SHORT_METRIC_NAMES[metric]} esperado",
            metric_value(metric, figure.value),
            help=meaning,
        )
        note = f"IC 95%: {metric_value(metric, figure.low)} a {metric_value(metric, figure.high)}"
        if realised:
            done = Figure.of(realised["realizado"].get(metric))
            note += f" · realizado: {metric_value(metric, done.value)}"
        col.caption(note)
    cols[3].metric(
        "Taxa de PV esperada", percent(performance.get("taxa_pv_esperada"), 1), help=RATE_MEANING
    )
    flagged = f"O modelo sinaliza {percent(performance.get('taxa_pv_prevista'), 1)}"
    if realised:
        flagged += f" · real: {percent((realised.get('taxas') or {}).get('real'), 1)}"
    cols[3].caption(flagged)
    st.caption(
        "Estimativa feita só com as probabilidades, antes dos resultados. Estimativas assim "
        "costumam ser otimistas (nos dados reais, 0,02 a 0,035 acima do ROC-AUC realizado): "
        "leia como um teto. Detalhes, e a lista do ciclo passado ao lado de quem atingiu o PV, "
        "na página “Como o modelo se saiu”."
    )
    if latest and not realised:
        roc = Figure.of(latest["realizado"].get("roc_auc"))
        estimated = Figure.of(latest["estimado"].get("roc_auc"))
        st.markdown(
            f"No último ciclo com resultados (alunos de {latest['ciclo']} → PV em "
            f"{latest['ciclo_desfecho']}, v{latest['versao']}), o ROC-AUC realizado foi "
            f"**{roc.text()}**; o esperado antes era {estimated.text()}."
        )


def newest_evaluations(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest cycle first; within a cycle, the latest evaluated first."""
    return sorted(
        records, key=lambda r: (int(r["ciclo"]), str(r.get("avaliado_em") or "")), reverse=True
    )


def evaluation_label(record: dict[str, Any], with_model: bool = False) -> str:
    model = f"{record['modelo']} " if with_model else ""
    return (
        f"{model}v{record['versao']} — alunos de {record['ciclo']}, PV em "
        f"{record['ciclo_desfecho']} (avaliado em {str(record.get('avaliado_em') or '—')[:10]})"
    )


def results(api: ApiClient) -> None:
    """Como o modelo se saiu: a realised evaluation (newest by default), its list beside the
    outcomes, then what is expected of the list being scored now."""
    data = fetch(api, "realised", label="Buscando as avaliações com resultados reais…")
    records = newest_evaluations(data.get("registros") or [])
    if not records:
        st.info(NO_EVALUATION)
    else:
        several_models = len({r["modelo"] for r in records}) > 1
        index = st.selectbox(
            "Avaliação (versão do modelo e ciclo)",
            range(len(records)),
            format_func=lambda i: evaluation_label(records[i], several_models),
            key="avaliacao",
        )
        record = records[int(index or 0)]
        realised_summary(record)
        followups.outcome_section(record)
        realised_list(api, record)
    st.divider()
    expected_section(api)


def origin_sentence(origins: dict[str, int], outcome: int) -> str:
    if not origins:
        return ""
    if set(origins) == {"oficial"}:
        return f" O PV de {outcome} é o oficial."
    rule = "derivado pela regra do IPV (IPV ≥ média + 1 desvio-padrão do ano)"
    if set(origins) == {"derivado"}:
        return f" O PV de {outcome} foi {rule}, porque o arquivo não traz o oficial."
    return (
        f" O PV de {outcome}: {origins.get('oficial', 0)} oficiais, "
        f"{origins.get('derivado', 0)} {rule}."
    )


def realised_summary(record: dict[str, Any]) -> None:
    cycle, outcome = record["ciclo"], record["ciclo_desfecho"]
    check = record.get("verificacao") or {}
    state = record.get("estado", "indeterminado")
    title = STATE_TITLES.get(state, state)
    summary = check.get("resumo") or ""
    if state == "ok":
        st.success(f"**{title}.** {summary}")
    elif state == "alerta":
        # Critical only when the whole interval is below the floor (the check's severity).
        box = st.error if check.get("severidade") == "critico" else st.warning
        box(f"**{title}.** {summary}")
    else:
        st.info(
            f"**{title}** sobre os alunos de {cycle}: {record.get('motivo') or 'sem motivo'}. "
            "Os números abaixo não permitem concluir nada sobre a lista."
        )

    rates = record.get("taxas") or {}
    cols = st.columns(4)
    cols[0].metric(f"Alunos na lista de {cycle}", str(record["previsoes"]))
    cols[1].metric(f"Com resultado em {outcome}", str(record["n"]))
    cols[2].metric("Atingiram o PV", f"{record['positivos']} ({percent(rates.get('real'), 1)})")
    cols[3].metric(f"Sem registro em {outcome}", str(record["sem_registro"]))

    matrix = record["matriz_confusao"]
    hits, misses = matrix["previstos_e_atingiram"], matrix["previstos_e_nao_atingiram"]
    missed, rest = matrix["nao_previstos_e_atingiram"], matrix["nao_previstos_e_nao_atingiram"]
    left = plural(record["sem_registro"], "aluno não aparece", "alunos não aparecem")
    no_label = record.get("sem_rotulo") or 0
    lines = [
        f"Dos **{record['previsoes']} alunos de {cycle}** que o modelo pontuou, "
        f"**{record['n']}** têm o PV de {outcome} conhecido e entram nas contas; {left} em "
        f"{outcome} (saíram do programa ou não estão nos arquivos)"
        + (f" e {plural(no_label, 'aparece', 'aparecem')} sem PV" if no_label else "")
        + "."
        + origin_sentence(record.get("origem_rotulos") or {}, outcome),
        f"Dos **{hits + misses} sinalizados** (PV previsto), **{hits} atingiram o PV** e "
        f"{misses} não; **{plural(missed, 'aluno atingiu', 'alunos atingiram')} o PV sem ter "
        f"sido {'sinalizado' if missed == 1 else 'sinalizados'}**; {rest} não foram "
        "sinalizados e não atingiram.",
        f"O modelo sinalizou {percent(rates.get('prevista'), 1)} desses alunos; "
        f"{percent(rates.get('real'), 1)} atingiram o PV; pela média das probabilidades, "
        f"esperavam-se {percent(rates.get('esperada'), 1)}.",
    ]
    st.markdown("\n\n".join(lines))
    st.markdown("**Como a lista se saiu, e o que se esperava dela antes dos resultados**")
    # A static table: four rows whose explanations must wrap, not be cut.
    st.table(realised_table(record).set_index("Métrica"))
    st.caption(
        "Contas feitas só com os alunos que têm resultado no ciclo seguinte. Entre colchetes, o "
        "intervalo de 95%. “Estimado antes” é o que as probabilidades do modelo prometiam para "
        "estes mesmos alunos; uma diferença positiva quer dizer que a estimativa foi otimista."
    )


def realised_roster(api: ApiClient, record: dict[str, Any]) -> pd.DataFrame:
    """The whole evaluated roster, fetched page by page (each page cached)."""
    args = (record["modelo"], str(record["versao"]), int(record["ciclo"]))
    label = "Buscando a lista do ciclo…"
    first = fetch(api, "realised_students", *args, 1, ROSTER_PAGE, label=label)
    items = list(first.get("alunos") or [])
    for page in range(2, math.ceil(int(first.get("total") or 0) / ROSTER_PAGE) + 1):
        items.extend(fetch(api, "realised_students", *args, page, ROSTER_PAGE)["alunos"])
    frame = pd.DataFrame(items, columns=ROSTER_COLUMNS)
    return frame.sort_values("posicao", kind="stable").reset_index(drop=True)


def outcome_mask(frame: pd.DataFrame, choice: str) -> pd.Series:
    flagged = frame["pv_previsto"].astype(bool)
    reached = frame["pv_real"].eq(True)
    known = frame["pv_real"].notna()
    masks = {
        "todos": pd.Series(True, index=frame.index),
        "sinalizados": flagged,
        "atingiram": reached,
        "sinalizados_atingiram": flagged & reached,
        "sinalizados_nao_atingiram": flagged & known & ~reached,
        "atingiram_sem_sinal": ~flagged & reached,
        "sem_desfecho": ~known,
    }
    return masks[choice]


def unknown_outcome(record: dict[str, Any]) -> str:
    """What a null `pv_real` means here: the student left, or (rarely) has a record without PV."""
    outcome = record["ciclo_desfecho"]
    if record.get("sem_rotulo"):
        return f"sem PV conhecido em {outcome}"
    return f"sem registro em {outcome}"


def outcome_frame(frame: pd.DataFrame, record: dict[str, Any]) -> pd.DataFrame:
    """The roster in words: flagged or not, reached PV or not (or no outcome)."""
    unknown = unknown_outcome(record)

    def reached(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return unknown
        return "Sim" if value else "Não"

    return pd.DataFrame(
        {
            "posicao": frame["posicao"],
            "aluno_id": frame["aluno_id"],
            "probabilidade_pv": frame["probabilidade_pv"],
            "pv_previsto": frame["pv_previsto"].map(lambda v: "Sim" if v else "Não"),
            "atingiu_pv": frame["pv_real"].map(reached),
            "origem_pv": frame["pv_origem"].map(lambda v: ORIGIN_LABELS.get(v, v or "")),
        }
    )


def realised_list(api: ApiClient, record: dict[str, Any]) -> None:
    cycle, outcome = record["ciclo"], record["ciclo_desfecho"]
    st.subheader(f"A lista de {cycle} ao lado de quem atingiu o PV em {outcome}")
    frame = realised_roster(api, record)
    if frame.empty:
        st.info("A lista desta avaliação está vazia.")
        return
    st.caption(
        f"{len(frame)} alunos de {cycle}, do mais ao menos provável de atingir o PV segundo o "
        f"modelo v{record['versao']}. Só ids (pseudônimos), sem nomes."
    )
    left, right = st.columns([2, 1])
    choice = left.selectbox(
        "Mostrar",
        list(OUTCOME_FILTERS),
        format_func=lambda key: (
            f"Sem resultado em {outcome}" if key == "sem_desfecho" else OUTCOME_FILTERS[key]
        ),
        key="filtro_desfecho",
    )
    search = right.text_input("Buscar id", placeholder="RA-123 ou ALUNO-45", key="busca_desfecho")
    shown = frame[outcome_mask(frame, str(choice))]
    if search.strip():
        shown = shown[shown["aluno_id"].str.contains(search.strip(), case=False, regex=False)]
    words = outcome_frame(shown, record)
    if words.empty:
        st.info("Nenhum aluno com este filtro.")
        return
    pages = math.ceil(len(words) / LIST_PAGE)
    page = 1
    if pages > 1:
        # A new key per filter: changing the filter goes back to the first page.
        page = int(
            st.number_input(
                f"Página (de {pages})",
                min_value=1,
                max_value=pages,
                value=1,
                step=1,
                key=f"pagina_desfecho_{record['versao']}_{cycle}_{choice}_{search.strip()}",
            )
        )
    start = (page - 1) * LIST_PAGE
    window = words.iloc[start : start + LIST_PAGE]
    st.caption(f"Alunos {start + 1}–{start + len(window)} de {len(words)}.")
    st.dataframe(
        window.assign(probabilidade_pv=(window["probabilidade_pv"] * 100).round(1)),
        hide_index=True,
        width="stretch",
        column_config={
            "posicao": "Posição",
            "aluno_id": "Aluno",
            "probabilidade_pv": st.column_config.ProgressColumn(
                "Probabilidade de PV (%)", min_value=0, max_value=100, format="%.1f"
            ),
            "pv_previsto": "Sinalizado (PV previsto)",
            "atingiu_pv": f"Atingiu o PV em {outcome}",
            "origem_pv": f"Origem do PV de {outcome}",
        },
    )
    st.download_button(
        "Baixar CSV",
        words.rename(columns={"atingiu_pv": f"atingiu_pv_{outcome}"})
        .to_csv(index=False)
        .encode("utf-8"),
        file_name=f"como_o_modelo_se_saiu_v{record['versao']}_{cycle}.csv",
        mime="text/csv",
    )


def backtest_estimate_sentence(backtest: dict[str, Any] | None) -> str:
    """How far the estimate was from the realised ROC-AUC in this model's backtest years."""
    parts = []
    for year in _years(backtest or {}):
        estimated = Figure.of((year.get("estimado") or {}).get("roc_auc")).value
        realised = Figure.of(year.get("metricas", {}).get("modelo", {}).get("roc_auc")).value
        if estimated is not None and realised is not None:
            parts.append(
                f"{year['transicao']}: estimado {br(estimated, 3)}, realizado {br(realised, 3)}"
            )
    if not parts:
        return ""
    return "No backtest deste modelo (ROC-AUC): " + "; ".join(parts) + "."


def expected_section(api: ApiClient) -> None:
    st.subheader("O que se espera da lista atual")
    performance = expected_performance(api)
    if performance is None:
        return
    model = performance.get("modelo") or {}
    realised = performance.get("realizado")
    st.markdown(
        f"A lista atual tem **{performance['n']} alunos de {performance['ciclo']}**, pontuados "
        f"pelo modelo v{model.get('versao', '—')}. O modelo sinaliza "
        f"{percent(performance.get('taxa_pv_prevista'), 1)} deles (probabilidade ≥ "
        f"{br(performance.get('limiar'), 3)}). Pelas probabilidades, isto é o que se espera "
        f"da lista quando chegarem os resultados de {performance['ciclo_alvo']}:"
    )
    st.table(expected_table(performance).set_index("Métrica"))
    try:
        backtest = fetch(api, "model_backtest", label="Lendo o backtest do modelo…")
    except (ApiError, ApiUnavailableError):
        backtest = None  # only a footnote depends on it
    st.caption(" ".join(filter(None, [OPTIMISM_NOTE, backtest_estimate_sentence(backtest)])))
    if realised:
        st.markdown(
            f"Os resultados de {performance['ciclo_alvo']} já chegaram: o realizado conta os "
            f"{realised['n']} alunos com PV conhecido em {performance['ciclo_alvo']}."
        )
    else:
        st.caption(
            f"Quando os resultados de {performance['ciclo_alvo']} chegarem e forem avaliados, "
            "o desempenho realizado aparece ao lado da estimativa."
        )


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
    if rows:
        st.caption(
            "ROC-AUC: chance de o modelo pôr acima quem atinge o PV; 0,5 é sorteio, 1 é perfeito. "
            "As métricas são do ano mais recente do backtest de cada versão (o modelo ajustado só "
            "nos anos anteriores); “alunos novos” é a validação cruzada de versões antigas, "
            "treinadas com uma só transição."
        )
        table = pd.DataFrame(rows)
        optional = [c for c in OPTIONAL_VERSION_COLUMNS if table[c].isna().all()]
        st.dataframe(table.drop(columns=optional), hide_index=True, width="stretch")
    else:
        st.info("Nenhuma versão registrada no MLflow.")
    backtest_section(fetch(api, "model_backtest", label="Lendo o backtest do modelo…"))


OPTIONAL_VERSION_COLUMNS = ("ROC-AUC (alunos novos)",)


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
        "ROC-AUC (ano mais recente)": pick(metrics, "oot_roc_auc"),
        "ROC-AUC (alunos novos)": pick(metrics, "cv_roc_auc"),
        "PR-AUC": pick(metrics, "oot_pr_auc"),
        "Brier": pick(metrics, "oot_brier"),
        "ROC-AUC só INDE": pick(baselines, "oot_baseline_inde_t_roc_auc"),
        "ROC-AUC só IPV": pick(baselines, "oot_baseline_ipv_t_roc_auc"),
        "ROC-AUC logística simples": pick(baselines, "oot_baseline_logistica_simples_roc_auc"),
        "Criada em": str(version.get("criada_em") or "—")[:16],
        "Promovida em": str(version.get("promovida_em") or "—")[:16],
    }


BACKTEST_METRICS = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "brier": "Brier",
    "recall_top15": "Recall top 15%",
    "recall_top25": "Recall top 25%",
}


def _who(backtest: dict[str, Any], year: dict[str, Any]) -> dict[str, str]:
    """Who predicts, in display order: the model (with its type), then each baseline."""
    names = {"modelo": f"{MODEL_LABEL} ({year.get('modelo_escolhido', '—')})"}
    for key in year.get("metricas", {}):
        if key != "modelo":
            names[key] = baseline_label(key, backtest.get("referencias"))
    return names


def _years(backtest: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(backtest.get("anos") or [], key=lambda y: int(y["ano_teste"]))


def backtest_table(backtest: dict[str, Any]) -> pd.DataFrame:
    """One row per test year and predictor; every figure with its 95 % interval."""
    rows = []
    for year in _years(backtest):
        counts = year.get("origem_rotulos") or {}
        origins = (
            next(iter(counts))
            if len(counts) == 1
            else ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
        )
        for key, label in _who(backtest, year).items():
            figures = year["metricas"].get(key, {})
            verdict = ""
            if key != "modelo":
                roc = (year.get("comparacoes", {}).get(key) or {}).get("roc_auc") or {}
                if roc:
                    verdict = f"{roc.get('veredito', '—')} ({signed(roc.get('valor'))})"
            rows.append(
                {
                    "Transição": year["transicao"],
                    "Alunos (com PV)": f"{year['n']} ({year['positivos']})",
                    "Rótulos": origins,
                    "Quem prevê": label,
                    **{
                        title: Figure.of(figures.get(metric)).text()
                        for metric, title in BACKTEST_METRICS.items()
                    },
                    "Modelo contra esta referência (ROC-AUC)": verdict,
                }
            )
    return pd.DataFrame(rows)


def roc_frame(backtest: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for year in _years(backtest):
        for key in _who(backtest, year):
            label = MODEL_LABEL if key == "modelo" else baseline_label(key)
            figure = Figure.of(year["metricas"].get(key, {}).get("roc_auc"))
            rows.append(_interval_row(year["transicao"], label, figure))
    return pd.DataFrame(rows)


def estimate_frame(backtest: dict[str, Any]) -> pd.DataFrame:
    """Estimated from the probabilities alone (before outcomes) beside the realised ROC-AUC."""
    rows = []
    for year in _years(backtest):
        estimated = (year.get("estimado") or {}).get("roc_auc")
        if estimated:
            rows.append(_interval_row(year["transicao"], "Estimado (antes)", Figure.of(estimated)))
        realised = Figure.of(year["metricas"].get("modelo", {}).get("roc_auc"))
        rows.append(_interval_row(year["transicao"], "Realizado", realised))
    return pd.DataFrame(rows)


def _interval_row(transition: str, who: str, figure: Figure) -> dict[str, Any]:
    return {
        "transicao": transition,
        "quem": who,
        "valor": figure.value,
        "ic_inf": figure.low,
        "ic_sup": figure.high,
        "texto": figure.text(),
    }


def rate_frame(backtest: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for year in _years(backtest):
        rows.append({"transicao": year["transicao"], "taxa": "Real", "valor": year["taxa_real"]})
        rows.append(
            {"transicao": year["transicao"], "taxa": "Prevista", "valor": year["taxa_prevista"]}
        )
    return pd.DataFrame(rows)


def reliability_frame(backtest: dict[str, Any]) -> pd.DataFrame:
    rows = [
        {"transicao": year["transicao"], **point}
        for year in _years(backtest)
        for point in year.get("confiabilidade") or []
    ]
    return pd.DataFrame(rows, columns=["transicao", "prob_media", "taxa_real", "n"])


def interval_chart(frame: pd.DataFrame, title: str) -> alt.LayerChart:
    """Points with 95 % interval bars, side by side per transition."""
    order = list(dict.fromkeys(frame["quem"]))
    palette = [COLORS.get(who, EXTRA_COLORS[i % len(EXTRA_COLORS)]) for i, who in enumerate(order)]
    base = alt.Chart(frame).encode(
        x=alt.X("transicao:N", title="Transição testada", axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("quem:N", sort=order),
        color=alt.Color(
            "quem:N",
            sort=order,
            title=None,
            scale=alt.Scale(domain=order, range=palette),
            legend=alt.Legend(orient="bottom", columns=2, labelLimit=260),
        ),
        tooltip=[
            alt.Tooltip("transicao:N", title="Transição"),
            alt.Tooltip("quem:N", title="Quem"),
            alt.Tooltip("texto:N", title=title),
        ],
    )
    bars = base.mark_rule(strokeWidth=2).encode(
        y=alt.Y("ic_inf:Q", title=title, scale=alt.Scale(zero=False)), y2="ic_sup:Q"
    )
    chart: alt.LayerChart = bars + base.mark_point(filled=True, size=70, opacity=1).encode(
        y="valor:Q"
    )
    return chart


def rate_chart(frame: pd.DataFrame) -> alt.Chart:
    chart: alt.Chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("transicao:N", title="Transição testada", axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("taxa:N", sort=["Real", "Prevista"]),
            y=alt.Y("valor:Q", title="Alunos com PV", axis=alt.Axis(format="%")),
            color=alt.Color(
                "taxa:N", sort=["Real", "Prevista"], title=None, legend=alt.Legend(orient="bottom")
            ),
            tooltip=[
                alt.Tooltip("transicao:N", title="Transição"),
                alt.Tooltip("taxa:N", title="Taxa"),
                alt.Tooltip("valor:Q", title="Alunos com PV", format=".1%"),
            ],
        )
    )
    return chart


def reliability_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """Predicted probability against the observed PV rate per group; the diagonal is perfect."""
    top = float(max(frame["prob_media"].max(), frame["taxa_real"].max(), 0.1))
    top = math.ceil(top * 10) / 10
    scale = alt.Scale(domain=[0, top])
    diagonal = (
        alt.Chart(pd.DataFrame({"x": [0.0, top], "y": [0.0, top]}))
        .mark_line(strokeDash=[4, 4], color="gray")
        .encode(x="x:Q", y="y:Q")
    )
    points = (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "prob_media:Q",
                title="Probabilidade prevista (média do grupo)",
                scale=scale,
                axis=alt.Axis(format="%"),
            ),
            y=alt.Y("taxa_real:Q", title="Atingiram o PV", scale=scale, axis=alt.Axis(format="%")),
            color=alt.Color("transicao:N", title=None, legend=alt.Legend(orient="bottom")),
            tooltip=[
                alt.Tooltip("transicao:N", title="Transição"),
                alt.Tooltip("prob_media:Q", title="Prevista", format=".1%"),
                alt.Tooltip("taxa_real:Q", title="Real", format=".1%"),
                alt.Tooltip("n:Q", title="Alunos"),
            ],
        )
    )
    chart: alt.LayerChart = diagonal + points
    return chart


def backtest_section(backtest: dict[str, Any] | None) -> None:
    st.subheader("Backtest: como o modelo em uso teria se saído em cada ano")
    if not backtest or not backtest.get("anos"):
        st.info(
            "O modelo em uso não tem backtest: foi treinado com uma só transição rotulada (o "
            "backtest precisa de pelo menos três ciclos com PV)."
        )
        return
    st.caption(
        "Para cada ano, o modelo e as regras simples foram ajustados só com os anos anteriores "
        "e testados nesse ano, como teria sido na prática. Entre colchetes, o intervalo de 95%: "
        "a faixa em que o valor verdadeiro provavelmente está, dado o número de alunos."
    )
    if backtest.get("resumo"):
        st.markdown(f"**Resumo:** {backtest['resumo']}")
    table = backtest_table(backtest)
    st.dataframe(table, hide_index=True, width="stretch", height=36 * (len(table) + 1) + 2)
    left, right = st.columns(2)
    with left:
        st.markdown("**ROC-AUC por ano: modelo e referências**")
        st.altair_chart(interval_chart(roc_frame(backtest), "ROC-AUC"), width="stretch")
    with right:
        st.markdown("**Taxa de PV prevista pelo modelo × real**")
        st.altair_chart(rate_chart(rate_frame(backtest)), width="stretch")
    left, right = st.columns(2)
    with left:
        st.markdown("**ROC-AUC estimado antes dos resultados × realizado**")
        st.caption(
            "O estimado sai só das probabilidades, antes de saber quem atingiu o PV: é o que o "
            "painel pode dizer de um ciclo ainda sem resultados."
        )
        st.altair_chart(interval_chart(estimate_frame(backtest), "ROC-AUC"), width="stretch")
    reliability = reliability_frame(backtest)
    if not reliability.empty:
        with right:
            st.markdown("**Confiabilidade das probabilidades**")
            st.caption(
                "Alunos agrupados pela probabilidade prevista: perto da diagonal, uma "
                "probabilidade de 20% quer dizer que cerca de 20% do grupo atingiu o PV."
            )
            st.altair_chart(reliability_chart(reliability), width="stretch")
    rules = [
        ("Como o tipo de modelo é escolhido", backtest.get("regra_escolha")),
        ("Como o “PV previsto” é decidido", backtest.get("regra_rotulo")),
    ]
    rules = [(title, text) for title, text in rules if text]
    if rules:
        with st.expander("Regras do treino"):
            for title, text in rules:
                st.markdown(f"**{title}:** {text}")
