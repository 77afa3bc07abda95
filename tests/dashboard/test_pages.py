"""Each page of the dashboard rendered by Streamlit's AppTest against a live API."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

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


def test_overview_shows_the_model_and_its_quality(dashboard_env: LiveApi) -> None:
    at = _page("visao-geral")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Versão"] == "v1"
    assert int(metrics["Alunos pontuados (total de previsões)"].replace(".", "")) >= STUDENTS * 0.8
    text = " ".join(m.value for m in at.markdown)
    assert "Olhar só o IPV do ano" in text
    assert "Última verificação" in text


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
    assert 0.5 < row["ROC-AUC (anos novos)"] <= 1.0 and row["Portão"] == "aprovado"


@pytest.mark.parametrize("page", ["visao-geral", "alunos", "monitoramento", "modelos"])
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
