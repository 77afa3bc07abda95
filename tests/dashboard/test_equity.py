"""The "Equidade" page rendered by Streamlit's AppTest against the live API (a model trained by
the real CLI, whose backtest wrote the fairness report), and its helpers."""

from __future__ import annotations

from typing import Any

import httpx
from streamlit.testing.v1 import AppTest

from passos_magicos.dashboard import equity
from tests.dashboard.conftest import APP, LiveApi


def _fairness(live: LiveApi) -> dict[str, Any]:
    response = httpx.get(f"{live.url}/model/fairness", timeout=30)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def test_equity_page_shows_every_group_with_intervals_and_the_rule(
    dashboard_env: LiveApi,
) -> None:
    report = _fairness(dashboard_env)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["pagina"] = "equidade"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [h.value for h in at.header] == ["Equidade"]
    assert "Equidade" in at.radio(key="pagina").options  # in the sidebar

    (year,) = report["anos"]  # the fixture's CSV has 2020-2022: one backtest year
    assert at.selectbox(key="equidade_ano").value == year["transicao"] == "2021→2022"
    notes = " ".join(b.value for b in at.info)
    assert "Uma diferença só é destacada quando o intervalo mostra que ela é real" in notes
    verdicts = [b.value for b in (*at.success, *at.warning)]
    assert report["resumo"] in verdicts

    titles = [s.value for s in at.subheader]
    shown = [g for g in equity.GROUPING_ORDER if any(x["agrupamento"] == g for x in year["grupos"])]
    assert [equity.GROUPING_NAMES[g] for g in shown] == titles[: len(shown)]
    tables = [frame.value for frame in at.dataframe]
    assert len(tables) == len(shown)
    for grouping, table in zip(shown, tables, strict=True):
        groups = [g for g in year["grupos"] if g["agrupamento"] == grouping]
        assert list(table["Grupo"]) == [g["grupo"] for g in groups]
        for row, group in zip(table.to_dict("records"), groups, strict=True):
            assert row["Alunos (com PV)"] == f"{group['n']} ({group['positivos']})"
            assert row["Atingiram o PV"] == equity.percent_interval(group["metricas"]["taxa_real"])
            assert "[" in row["Atingiram o PV"]  # with its interval
            flagged = equity.flagged_metrics(group)
            assert row["Diferença sinalizada"].startswith("⚠") == bool(flagged)
    flags = year["sinalizadas"]
    if flags:
        assert len(at.error) == len(flags)
    else:
        assert f"Nenhuma diferença sinalizada em {year['transicao']}." in verdicts
    assert len(at.get("vega_lite_chart")) == 1

    # Another grouping and measure in the chart: the page reruns without errors.
    at.selectbox(key="equidade_agrupamento").set_value("fase")
    at.selectbox(key="equidade_medida").set_value("roc_auc").run()
    assert not at.exception, [e.value for e in at.exception]


def test_flagged_groups_are_highlighted_and_explained() -> None:
    year = {
        "transicao": "2023→2024",
        "grupos": [
            {
                "agrupamento": "genero",
                "grupo": "feminino",
                "n": 362,
                "positivos": 62,
                "comparado": True,
                "motivo": None,
                "metricas": {"taxa_real": {"valor": 0.17, "ic_inf": 0.13, "ic_sup": 0.21}},
                "diferencas": {"roc_auc": {"sinalizada": True}, "recall_rotulo": {}},
            },
            {
                "agrupamento": "genero",
                "grupo": "não informado",
                "n": 3,
                "positivos": 0,
                "comparado": False,
                "motivo": "categoria sem comparação",
                "metricas": {},
                "diferencas": {},
            },
        ],
    }
    names = {"roc_auc": "ROC-AUC dentro do grupo"}
    table = equity.group_table(year, "genero", names)
    assert list(table["Diferença sinalizada"]) == [
        "⚠ sim: ROC-AUC dentro do grupo",
        "não comparado (categoria sem comparação)",
    ]
    assert table["Atingiram o PV"][0] == "17% [13%; 21%]"
    styles = equity._highlight(table.iloc[0])
    assert set(styles) == {equity.FLAG_STYLE}
    assert set(equity._highlight(table.iloc[1])) == {""}
    message = equity.flag_message(
        {"agrupamento": "genero", "grupo": "feminino", "metrica": "roc_auc", "texto": "x"}, names
    )
    assert message.startswith("**Gênero: feminino** — dentro do grupo, o modelo separa pior")
