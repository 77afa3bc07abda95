"""Each page of the dashboard rendered by Streamlit's AppTest against a live API."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from passos_magicos.dashboard import pages
from tests.dashboard.conftest import APP, STUDENTS, LiveApi


def _app() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=120)


def _page(key: str) -> AppTest:
    at = _app()
    at.query_params["pagina"] = key
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _backtest(live: LiveApi) -> dict[str, Any]:
    response = httpx.get(f"{live.url}/model/backtest", timeout=30)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _rule(interval: dict[str, float]) -> str:
    """The rule the overview must follow: `supera` only when the interval excludes zero."""
    if interval["ic_inf"] > 0:
        return "supera"
    return "perde" if interval["ic_sup"] < 0 else "empata"


def test_overview_shows_the_model_and_its_quality(dashboard_env: LiveApi) -> None:
    at = _page("visao-geral")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Versão"] == "v1"
    # The default roster holds the newest cycle's students, each counted once however often
    # the list is viewed (the conftest viewed it; this view adds nothing).
    roster = httpx.get(
        f"{dashboard_env.url}/predict/alunos",
        headers={"X-API-Token": dashboard_env.token},
        timeout=60,
    ).json()["previsoes"]
    assert STUDENTS * 0.5 <= len(roster) < STUDENTS
    total = int(metrics["Alunos pontuados (total de previsões)"].replace(".", ""))
    assert len(roster) <= total < len(roster) + 50  # + the few single predictions of other tests
    text = " ".join(m.value for m in at.markdown)
    assert "Testado em 2021→2022, um ano que o modelo não viu no treino" in text
    assert "Última verificação" in text
    assert "Só o PV" not in text


def test_overview_claims_follow_the_paired_intervals(dashboard_env: LiveApi) -> None:
    """Against the real /model/backtest: every baseline's verdict is the interval's, the
    newest-year sentence is shown, and this model gives both sides of the rule (an interval
    that includes zero → "empata", one that excludes it → "supera")."""
    backtest = _backtest(dashboard_env)
    (year,) = backtest["anos"]
    at = _page("visao-geral")
    assert "INDE_t sozinho" in backtest["resumo"]
    assert backtest["resumo"] in [b.value for b in (*at.warning, *at.success)]
    table = at.dataframe[0].value
    verdicts = dict(zip(table["Quem prevê"], table["Veredito do modelo"], strict=True))
    lines = next(m.value for m in at.markdown if m.value.startswith("- O modelo")).split("\n")
    assert len(lines) == len(year["comparacoes"]) == 3  # INDE_t, IPV_t, plain logistic
    for key, comparison in year["comparacoes"].items():
        roc = comparison["roc_auc"]
        verdict = _rule(roc)
        assert verdicts[pages.BASELINE_LABELS[key]] == verdict == roc["veredito"]
        line = next(line for line in lines if pages.BASELINE_PHRASES[key] in line)
        assert f"**{pages.VERDICT_PHRASES[verdict]}** {pages.BASELINE_PHRASES[key]}" in line
        assert f"de {pages.signed(roc['ic_inf'])} a {pages.signed(roc['ic_sup'])}" in line
    assert {"empata", "supera"} <= set(verdicts.values()), (
        f"o modelo do teste deveria empatar com uma referência e superar outra: {verdicts}"
    )


def test_claims_from_model_info_match_the_backtest(dashboard_env: LiveApi) -> None:
    """A model without backtest falls back to /model/info's paired differences (`oot_dif_*`):
    the same verdicts as the backtest's for the same year."""
    info = httpx.get(f"{dashboard_env.url}/model/info", timeout=30).json()
    from_info = pages.quality_from_info(info)
    from_backtest = pages.quality_from_backtest(_backtest(dashboard_env))
    assert from_info is not None and from_backtest is not None
    assert [(c.key, c.verdict) for c in from_info.claims] == [
        (c.key, c.verdict) for c in from_backtest.claims
    ]
    assert from_info.model.value == pytest.approx(from_backtest.model.value)


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (0.001, 0.04, "supera"),
        (0.0, 0.04, "empata"),
        (-0.03, 0.01, "empata"),
        (-0.05, -0.01, "perde"),
    ],
)
def test_verdict_needs_the_interval_to_exclude_zero(low: float, high: float, verdict: str) -> None:
    assert pages.verdict_of(low, high) == verdict


def test_without_an_interval_there_is_no_claim() -> None:
    """Old models logged no paired difference: no "supera", whatever the points say."""
    info = {
        "metricas": {"oot_roc_auc": 0.83},
        "referencias": {"oot_baseline_ipv_t_roc_auc": 0.77, "oot_baseline_pv_t_roc_auc": 0.6},
    }
    quality = pages.quality_from_info(info)
    assert quality is not None
    assert [(c.key, c.verdict) for c in quality.claims] == [("ipv_t", None), ("pv_t", None)]
    sentence = pages.claim_sentence(quality.claims[0], quality.model)
    assert "não tem veredito" in sentence and "supera" not in sentence


def test_students_ranked_filtered_and_exported(dashboard_env: LiveApi) -> None:
    at = _page("alunos")
    table = at.dataframe[0].value
    assert len(table) >= STUDENTS * 0.5  # students present in the latest cycle
    assert table["ciclo"].nunique() == 1
    probabilities = table["probabilidade_pv"].tolist()
    assert probabilities == sorted(probabilities, reverse=True)
    assert table["fase"].notna().all() and table["pedra"].notna().any()

    first_phase = sorted(table["fase"].unique())[0]
    at.multiselect[0].set_value([first_phase]).run()
    filtered = at.dataframe[0].value
    assert set(filtered["fase"]) == {first_phase} and len(filtered) < len(table)

    at.toggle[0].set_value(True).run()
    priority = at.dataframe[0].value
    assert priority["prioridade"].all() and 0 < len(priority) < len(filtered)

    detail = " ".join(m.value for m in at.markdown)
    assert "O que mais pesou" in detail
    assert at.get("download_button")


def test_monitoring_page_charts_the_runs(dashboard_env: LiveApi) -> None:
    at = _page("monitoramento")
    charts = at.get("vega_lite_chart")
    assert len(charts) == 3, "latest PSI bars, PSI over runs, predictions over runs"
    assert not at.info or all("ainda não rodou" not in i.value for i in at.info)


def test_models_page_says_which_version_serves(dashboard_env: LiveApi) -> None:
    at = _page("modelos")
    text = " ".join(m.value for m in at.markdown)
    assert "Em uso agora: **v1**" in text
    versions = at.dataframe[0].value
    row = versions[versions["Versão"] == "v1"].iloc[0]
    assert "production" in row["Aliases"] and row["Em uso"] == "sim"
    assert 0.5 < row["ROC-AUC (ano mais recente)"] <= 1.0 and row["Portão"] == "aprovado"
    assert 0.5 < row["ROC-AUC só INDE"] <= 1.0 and 0.5 < row["ROC-AUC logística simples"] <= 1.0
    assert "ROC-AUC (alunos novos)" not in versions.columns  # no cv_* on a backtested model


def test_models_page_shows_the_backtest_across_years(dashboard_env: LiveApi) -> None:
    """The served version came from the registry: its backtest travelled with the export."""
    backtest = _backtest(dashboard_env)
    (year,) = backtest["anos"]
    at = _page("modelos")
    table = at.dataframe[1].value
    assert list(table["Transição"]) == [year["transicao"]] * 4
    assert list(table["Quem prevê"]) == [
        f"Modelo ({year['modelo_escolhido']})",
        "Só o INDE do ano",
        "Só o IPV do ano",
        "Logística simples",
    ]
    roc = year["metricas"]["modelo"]["roc_auc"]
    assert table["ROC-AUC"].iloc[0] == pages.interval_text(
        roc["valor"], roc["ic_inf"], roc["ic_sup"]
    )
    assert (
        table["Modelo contra esta referência (ROC-AUC)"]
        .iloc[1]
        .startswith(year["comparacoes"]["inde_t"]["roc_auc"]["veredito"])
    )
    charts = at.get("vega_lite_chart")
    assert len(charts) == 4, "ROC-AUC per year, PV rates, estimated × realised, reliability"


def _get(live: LiveApi, path: str, **params: Any) -> Any:
    response = httpx.get(
        f"{live.url}{path}", params=params, headers={"X-API-Token": live.token}, timeout=60
    )
    response.raise_for_status()
    return response.json()


def _evaluation(live: LiveApi) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The fixture's one realised evaluation and its whole roster, as the API gives them."""
    [record] = _get(live, "/monitoring/realised")["registros"]
    path = f"/monitoring/realised/{record['versao']}/{record['ciclo']}/alunos"
    roster = _get(live, path, por_pagina=1000)
    assert roster["total"] == len(roster["alunos"]) == record["previsoes"]
    return record, roster["alunos"]


def _outcome(student: dict[str, Any], outcome: int) -> str:
    if student["pv_real"] is None:
        return f"sem registro em {outcome}"
    return "Sim" if student["pv_real"] else "Não"


def _text(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


def test_results_page_shows_the_realised_evaluation(dashboard_env: LiveApi) -> None:
    """Counts, figures, state and the first page of the list are the API's."""
    record, students = _evaluation(dashboard_env)
    cycle, outcome = record["ciclo"], record["ciclo_desfecho"]
    matrix = record["matriz_confusao"]
    hits, misses = matrix["previstos_e_atingiram"], matrix["previstos_e_nao_atingiram"]
    missed = matrix["nao_previstos_e_atingiram"]
    # The fixture must exercise every case the page words differently.
    assert (cycle, outcome, record["estado"]) == (2022, 2023, "ok")
    assert min(hits, misses, missed, record["sem_registro"]) > 1

    at = _page("desempenho")
    assert at.selectbox(key="avaliacao").value == 0
    assert record["verificacao"]["resumo"] in at.success[0].value
    assert at.success[0].value.startswith("**Dentro do esperado.**")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[f"Alunos na lista de {cycle}"] == str(record["previsoes"])
    assert metrics[f"Com resultado em {outcome}"] == str(record["n"])
    assert metrics["Atingiram o PV"].startswith(f"{record['positivos']} (")
    assert metrics[f"Sem registro em {outcome}"] == str(record["sem_registro"])
    text = _text(at)
    assert (
        f"Dos **{hits + misses} sinalizados** (PV previsto), **{hits} atingiram o PV** e "
        f"{misses} não; **{missed} alunos atingiram o PV sem ter sido sinalizados**"
    ) in text
    assert f"**{record['n']}** têm o PV de {outcome} conhecido" in text
    assert "derivado pela regra do IPV" in text

    figures = at.table[0].value
    roc, estimated = record["realizado"]["roc_auc"], record["estimado"]["roc_auc"]
    assert figures.loc["ROC-AUC", "Realizado [IC 95%]"] == pages.interval_text(
        roc["valor"], roc["ic_inf"], roc["ic_sup"]
    )
    assert figures.loc["ROC-AUC", "Estimado antes dos resultados [IC 95%]"] == (
        pages.interval_text(estimated["valor"], estimated["ic_inf"], estimated["ic_sup"])
    )
    assert figures.loc["ROC-AUC", "Estimado − realizado"] == pages.signed(
        record["erro_estimativa"]["roc_auc"]
    )
    pr = record["realizado"]["pr_auc"]
    assert figures.loc["PR-AUC", "Realizado [IC 95%]"].startswith(pages.br(pr["valor"], 3))
    recall = record["realizado"]["recall_top15"]
    assert figures.loc["Recall nos 15% mais prováveis", "Realizado [IC 95%]"] == (
        f"{recall['valor']:.0%} [{recall['ic_inf']:.0%}; {recall['ic_sup']:.0%}]"
    )
    assert figures.loc["Taxa de PV", "Realizado [IC 95%]"] == pages.percent(
        record["taxas"]["real"], 1
    )

    listed = at.dataframe[0].value
    first = students[: pages.LIST_PAGE]
    assert list(listed["aluno_id"]) == [s["aluno_id"] for s in first]
    assert list(listed["posicao"]) == list(range(1, pages.LIST_PAGE + 1))
    assert list(listed["atingiu_pv"]) == [_outcome(s, outcome) for s in first]
    assert list(listed["pv_previsto"]) == ["Sim" if s["pv_previsto"] else "Não" for s in first]
    assert list(listed["probabilidade_pv"]) == pytest.approx(
        [s["probabilidade_pv"] * 100 for s in first], abs=0.051
    )
    assert at.get("download_button")


@pytest.mark.parametrize(
    ("choice", "keep"),
    [
        ("atingiram", lambda s: s["pv_real"] is True),
        ("sinalizados", lambda s: s["pv_previsto"]),
        ("atingiram_sem_sinal", lambda s: s["pv_real"] is True and not s["pv_previsto"]),
        ("sem_desfecho", lambda s: s["pv_real"] is None),
    ],
)
def test_results_list_filters_and_pages(
    dashboard_env: LiveApi, choice: str, keep: Callable[[dict[str, Any]], bool]
) -> None:
    """Each filter keeps exactly the API's students of that kind, across every page."""
    record, students = _evaluation(dashboard_env)
    expected = [s["aluno_id"] for s in students if keep(s)]
    counts = {
        "atingiram": record["positivos"],
        "atingiram_sem_sinal": record["matriz_confusao"]["nao_previstos_e_atingiram"],
        "sem_desfecho": record["sem_registro"] + record["sem_rotulo"],
    }
    assert len(expected) == counts.get(choice, len(expected)) > 0

    at = _page("desempenho")
    at.selectbox(key="filtro_desfecho").set_value(choice).run()
    shown: list[str] = list(at.dataframe[0].value["aluno_id"])
    pages_total = math.ceil(len(expected) / pages.LIST_PAGE)
    assert len(at.number_input) == (1 if pages_total > 1 else 0)
    for page in range(2, pages_total + 1):
        at.number_input[0].set_value(page).run()
        shown += list(at.dataframe[0].value["aluno_id"])
    assert shown == expected


def test_results_page_before_any_outcome(dashboard_env_without_evaluations: LiveApi) -> None:
    """No realised evaluation yet: say what to do, and still show the estimate alone."""
    live = dashboard_env_without_evaluations
    assert _get(live, "/monitoring/realised")["registros"] == []
    at = _page("desempenho")
    assert "passos-magicos evaluate --data" in at.info[0].value
    assert not at.get("download_button")
    assert not at.dataframe
    [expected] = [t.value for t in at.table]
    assert "Realizado [IC 95%]" not in expected.columns
    assert "o desempenho realizado aparece ao lado da estimativa" in " ".join(
        c.value for c in at.caption
    )


def test_expected_performance_of_the_current_list(dashboard_env: LiveApi) -> None:
    """The estimate for the cohort being scored, on the overview and the results page, is the
    API's; the fixture's cohort has been evaluated, so its realised figure is beside it."""
    performance = _get(dashboard_env, "/model/performance")
    realised = performance["realizado"]
    assert realised is not None and performance["ciclo"] == realised["ciclo"]
    estimated = performance["estimado"]

    overview = _page("visao-geral")
    metrics = {m.label: m.value for m in overview.metric}
    assert metrics["ROC-AUC esperado"] == pages.br(estimated["roc_auc"]["valor"], 3)
    assert metrics["Recall top 15% esperado"] == f"{estimated['recall_top15']['valor']:.0%}"
    assert metrics["Taxa de PV esperada"] == pages.percent(performance["taxa_pv_esperada"], 1)
    captions = " ".join(c.value for c in overview.caption)
    assert "costumam ser otimistas" in captions
    assert f"realizado: {pages.br(realised['realizado']['roc_auc']['valor'], 3)}" in captions
    assert f"**{performance['n']} alunos de {performance['ciclo']}**" in _text(overview)

    at = _page("desempenho")
    table = at.table[-1].value
    roc = estimated["roc_auc"]
    assert table.loc["ROC-AUC", "Esperado [IC 95%]"] == pages.interval_text(
        roc["valor"], roc["ic_inf"], roc["ic_sup"]
    )
    done = realised["realizado"]["roc_auc"]
    assert table.loc["ROC-AUC", "Realizado [IC 95%]"] == pages.interval_text(
        done["valor"], done["ic_inf"], done["ic_sup"]
    )
    assert table.loc["Taxa de PV", "Esperado [IC 95%]"] == pages.percent(
        performance["taxa_pv_esperada"], 1
    )
    assert "otimistas" in " ".join(c.value for c in at.caption)


def _summary(record: dict[str, object]) -> None:
    # AppTest runs this function's source as a script: no names from this module in there.
    from passos_magicos.dashboard import pages

    pages.realised_summary(record)


@pytest.mark.parametrize(
    ("state", "severity", "box", "title"),
    [
        ("alerta", "aviso", "warning", "**Alerta: abaixo do piso.**"),
        ("alerta", "critico", "error", "**Alerta: abaixo do piso.**"),
        ("indeterminado", "info", "info", "**Sem conclusão** sobre os alunos de 2022: poucos"),
    ],
)
def test_realised_states_are_told_apart(
    live_api: LiveApi, state: str, severity: str, box: str, title: str
) -> None:
    """The fixture's evaluation is "ok"; the other states, on the same record, change the box
    and its title (the check's own sentence, or the reason when there is no conclusion)."""
    record, _ = _evaluation(live_api)
    check = record["verificacao"] | {"estado": state, "severidade": severity}
    changed = record | {"estado": state, "verificacao": check, "motivo": "poucos alunos"}
    at = AppTest.from_function(_summary, kwargs={"record": changed}, default_timeout=30).run()
    assert not at.exception
    [shown] = getattr(at, box)
    assert shown.value.startswith(title)
    assert not at.success


def _figures(performance: dict[str, object], latest: dict[str, object]) -> None:
    from passos_magicos.dashboard import pages  # see _summary

    pages.expected_figures(performance, latest)


def test_overview_shows_the_last_cycle_when_the_current_list_has_no_outcomes(
    live_api: LiveApi,
) -> None:
    """The usual state after a retrain: the list scored now has no outcomes yet, an older
    cycle has. The overview then quotes that cycle's realised ROC-AUC beside its estimate."""
    record, _ = _evaluation(live_api)
    current = _get(live_api, "/model/performance") | {"realizado": None}
    at = AppTest.from_function(
        _figures, kwargs={"performance": current, "latest": record}, default_timeout=30
    ).run()
    assert not at.exception
    roc, estimated = record["realizado"]["roc_auc"], record["estimado"]["roc_auc"]
    text = _text(at)
    assert "No último ciclo com resultados (alunos de 2022 → PV em 2023, v1)" in text
    assert f"**{pages.interval_text(roc['valor'], roc['ic_inf'], roc['ic_sup'])}**" in text
    assert pages.interval_text(estimated["valor"], estimated["ic_inf"], estimated["ic_sup"]) in text
    assert "realizado:" not in " ".join(c.value for c in at.caption)


def test_unknown_outcome_says_why_when_it_can() -> None:
    record = {"ciclo_desfecho": 2024, "sem_rotulo": 0}
    assert pages.unknown_outcome(record) == "sem registro em 2024"
    assert pages.unknown_outcome(record | {"sem_rotulo": 3}) == "sem PV conhecido em 2024"


@pytest.mark.parametrize(
    "page", ["visao-geral", "alunos", "desempenho", "monitoramento", "modelos"]
)
def test_api_down_is_a_friendly_message_with_retry(
    page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("API_TOKEN", "qualquer")
    at = _app()
    at.query_params["pagina"] = page
    at.run()
    assert not at.exception
    assert "Não foi possível falar com a API" in at.error[0].value
    assert [b.label for b in at.button] == ["Tentar de novo"]


def test_slow_api_is_a_friendly_message_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts connections and never answers: the page says the API is slow."""
    import socket

    with socket.socket() as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(8)
        monkeypatch.setenv("API_URL", f"http://127.0.0.1:{hanging.getsockname()[1]}")
        monkeypatch.setenv("API_TOKEN", "qualquer")
        monkeypatch.setenv("DASHBOARD_API_TIMEOUT", "1")
        at = _app()
        at.query_params["pagina"] = "visao-geral"
        at.run()
    assert not at.exception
    assert "demorou mais de 1 s" in at.error[0].value
    assert [b.label for b in at.button] == ["Tentar de novo"]
