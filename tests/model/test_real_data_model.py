"""On the real PEDE files: every cycle, honestly — the rolling-origin backtest per year beside
the baselines, the label rate, and what lands in MLflow and the model card."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from mlflow.artifacts import download_artifacts
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from passos_magicos.cli import app
from passos_magicos.data.dataset import load_dataset
from passos_magicos.features import build_transitions, cohorts
from passos_magicos.settings import get_settings
from passos_magicos.training.backtest import Backtest, run_backtest

pytestmark = [pytest.mark.real_data, pytest.mark.slow]

REPLICATES = 500


@pytest.fixture(scope="module")
def backtest(real_csv: Path, real_xlsx: Path) -> Backtest:
    table = load_dataset([str(real_csv), str(real_xlsx)]).table
    transitions = build_transitions(table)
    result = run_backtest(
        transitions, "auto", folds=5, seed=42, replicates=REPLICATES, cohorts=cohorts(table)
    )
    assert result is not None
    return result


def test_backtest_covers_every_checkable_cycle(backtest: Backtest) -> None:
    rows = {year.label: year for year in backtest.years}
    assert list(rows) == ["2021→2022", "2022→2023", "2023→2024"]
    assert (rows["2021→2022"].n, rows["2021→2022"].positives) == (457, 71)
    assert rows["2021→2022"].label_origins == {"oficial": 457}
    assert rows["2023→2024"].label_origins == {"derivado": rows["2023→2024"].n}
    assert rows["2023→2024"].n >= 650


def test_no_year_is_worse_than_the_plain_logistic_regression(backtest: Backtest) -> None:
    for year in backtest.years:
        assert year.comparison("logistica_simples").verdict != "perde", year.label
        assert year.comparison("ipv_t").verdict != "perde", year.label


def test_flagged_share_stays_near_the_real_pv_rate(backtest: Backtest) -> None:
    for year in backtest.years:
        assert abs(year.predicted_rate() - year.real_rate) <= 0.05, year.label
        # The cut is set on the whole roster of cycle t (the students who left included).
        assert 0.09 <= year.thresholds["modelo"] <= 0.6


def test_estimate_before_outcomes_is_reported_beside_the_realised_figure(
    backtest: Backtest,
) -> None:
    for year in backtest.years:
        estimated, realised = year.estimated["roc_auc"], year.figures()["roc_auc"]
        assert estimated.low <= estimated.value <= estimated.high
        assert abs(estimated.value - realised.value) < 0.1, year.label


def test_training_on_every_cycle_logs_the_backtest(
    isolated: Path, real_csv: Path, real_xlsx: Path
) -> None:
    result = CliRunner().invoke(
        app, ["train", "--data", str(real_csv), "--data", str(real_xlsx), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # The production model learnt from 2023→2024.
    assert summary["backtest"]["anos"][-1]["transicao"] == "2023→2024"
    metrics = summary["metricas"]
    assert metrics["oot_roc_auc"] == metrics["bt_2024_modelo_roc_auc"]
    assert metrics["oot_baseline_inde_t_roc_auc"] == pytest.approx(0.755, abs=0.005)
    assert summary["aprovado"] is True, summary["portao"]

    client = MlflowClient(get_settings().tracking_uri)
    run = client.get_run(summary["run_id"])
    assert run.data.params["label_years"] == "2021,2022,2023,2024"
    assert "2024:681 derivado" in run.data.params["labels.origins"]
    for year in (2022, 2023, 2024):
        assert f"bt_{year}_modelo_roc_auc_ic_inf" in run.data.metrics
        assert f"bt_{year}_dif_inde_t_roc_auc_ic_sup" in run.data.metrics
    document = json.loads(
        Path(
            download_artifacts(run_id=summary["run_id"], artifact_path="backtest/backtest.json")
        ).read_text()
    )
    verdict = document["anos"][-1]["comparacoes"]["inde_t"]["roc_auc"]["veredito"]
    card = Path(
        download_artifacts(run_id=summary["run_id"], artifact_path="model_card.md")
    ).read_text()
    assert "## Backtest por ano" in card and document["resumo"] in card
    word = {
        "supera": "supera o INDE_t",
        "empata": "empata com o INDE_t",
        "perde": "perde para o INDE_t",
    }
    assert word[verdict] in document["resumo"]
    tags = client.get_model_version(get_settings().MLFLOW_MODEL_NAME, summary["versao"]).tags
    assert tags["bt.newest.inde_t_verdict"] == verdict
    assert float(tags["bt.2024.roc_auc"]) == pytest.approx(metrics["oot_roc_auc"], abs=1e-6)
    _check_fairness(summary, run.data.metrics, tags, card)


def _check_fairness(
    summary: dict[str, Any], metrics: dict[str, float], tags: dict[str, str], card: str
) -> None:
    """Equidade (issue 11), from the same run: the table of every backtest year in MLflow
    (artifact, plot, flat metrics), the card's section with rows for gênero and escola
    pública × privada/parceira, and the gate's record of the newest year's flagged gaps."""
    run_id = summary["run_id"]
    document = json.loads(
        Path(download_artifacts(run_id=run_id, artifact_path="fairness/equidade.json")).read_text()
    )
    assert [y["transicao"] for y in document["anos"]] == ["2021→2022", "2022→2023", "2023→2024"]
    for year in document["anos"]:
        groups = {(g["agrupamento"], g["grupo"]) for g in year["grupos"]}
        assert {
            ("genero", "feminino"),
            ("genero", "masculino"),
            ("escola", "pública"),
            ("escola", "privada/parceira"),
            ("anos_programa", "primeiro ano"),
            ("fase", "fase 0 (alfa)"),
        } <= groups
        compared = [g for g in year["grupos"] if g["comparado"]]
        assert {g["grupo"] for g in compared} >= {"feminino", "masculino", "pública"}
        for group in year["grupos"]:
            auc = group["metricas"]["roc_auc"]
            if auc["valor"] is not None and group["n"] >= 100:
                assert auc["ic_inf"] < auc["valor"] < auc["ic_sup"]  # with its interval
    assert summary["equidade"]["resumo"] == document["resumo"]
    section = card.split("## Equidade", 1)[1].split("\n## ", 1)[0]
    for row in ("| Gênero | feminino |", "| Gênero | masculino |", "| Tipo de escola | pública |"):
        assert row in section
    assert "| Tipo de escola | privada/parceira |" in section
    assert document["resumo"] in section and "intervalos largos" in section
    newest = document["anos"][-1]["sinalizadas"]
    assert metrics["eq_2024_sinalizadas"] == len(newest)
    assert json.loads(tags["fairness.flags"]) == [flag["codigo"] for flag in newest]
    assert tags["gate.fairness"] == ("alerta" if newest else "sem_lacunas")  # warn: still passes
    artifacts = MlflowClient(get_settings().tracking_uri).list_artifacts(run_id, "plots")
    assert "plots/equidade.png" in {a.path for a in artifacts}


def _without_2022(real_csv: Path, folder: Path) -> Path:
    reader = csv.reader(io.StringIO(real_csv.read_text(encoding="utf-8")), delimiter=";")
    rows = list(reader)
    keep = [i for i, name in enumerate(rows[0]) if not name.endswith("_2022")]
    path = folder / "pede-2020-2021.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerows([[row[i] for i in keep] for row in rows])
    return path


def test_trained_before_2022_it_ranks_2022_like_the_plain_regression(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, real_csv: Path, backtest: Backtest
) -> None:
    """The CSV with every `_2022` column removed: `auto` chooses on 2020→2021 alone, then the
    2021 students are scored against their 2022 outcomes (what the backtest's first year does)."""
    monkeypatch.setenv("MLFLOW_ENABLED", "false")
    monkeypatch.setenv("MODEL_SOURCE", "local")
    older = _without_2022(real_csv, isolated)
    trained = CliRunner().invoke(app, ["train", "--data", str(older), "--json"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["backtest"] is None  # one transition: grouped CV only
    scored = isolated / "2021.csv"
    predicted = CliRunner().invoke(app, ["predict", "--data", str(older), "--output", str(scored)])
    assert predicted.exit_code == 0, predicted.output

    import pandas as pd
    from sklearn.metrics import roc_auc_score

    outcomes = load_dataset([str(real_csv)]).table
    outcomes = outcomes[outcomes["ano"] == 2022][["aluno_id", "pv"]].dropna()
    joined = pd.read_csv(scored).merge(outcomes, on="aluno_id")
    assert len(joined) == 457
    auc = roc_auc_score(joined["pv"].astype(bool), joined["probabilidade_pv"])
    plain = backtest.years[0].figures("logistica_simples")["roc_auc"].value
    assert auc >= plain - 1e-9, (auc, plain)  # the plain regression: 0.818
