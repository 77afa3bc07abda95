"""On the real PEDE data: honest out-of-time figures, beside the baselines, in MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from passos_magicos.cli import app
from passos_magicos.data.dataset import load_dataset
from passos_magicos.features import build_transitions
from passos_magicos.settings import get_settings
from passos_magicos.training.evaluation import evaluate_out_of_time

pytestmark = [pytest.mark.real_data, pytest.mark.slow]


def test_default_pipeline_out_of_time_on_2021_2022(isolated: Path, real_csv: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--data", str(real_csv), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    metrics = summary["metricas"]
    assert metrics["oot_roc_auc"] >= 0.80
    # The baselines are computed on the same split and reported beside the model.
    assert metrics["oot_baseline_ipv_t_roc_auc"] == pytest.approx(0.79, abs=0.02)
    assert metrics["oot_baseline_pv_t_roc_auc"] == pytest.approx(0.655, abs=0.02)
    assert metrics["oot_roc_auc"] > metrics["oot_baseline_ipv_t_roc_auc"]
    assert summary["aprovado"] is True

    run = MlflowClient(get_settings().tracking_uri).get_run(summary["run_id"])
    logged = run.data.metrics
    assert logged["oot_roc_auc"] == pytest.approx(metrics["oot_roc_auc"])
    for name in ("ipv_t", "pv_t", "logistica_simples"):
        assert f"oot_baseline_{name}_roc_auc" in logged
        assert f"oot_baseline_{name}_pr_auc" in logged
    assert logged["drop_codigos_invalidos"] == 1
    assert logged["drop_fase_sem_pv"] == 24
    assert run.data.tags["dataset_sha256"] == summary["dataset_sha256"]


@pytest.mark.parametrize("kind", ["random_forest", "logistic_regression"])
def test_each_model_clears_the_floor_out_of_time(real_csv: Path, kind: str) -> None:
    transitions = build_transitions(load_dataset([str(real_csv)]).table)
    evaluation = evaluate_out_of_time(kind, transitions, folds=5, seed=42)
    assert evaluation.test_year == 2022 and evaluation.n_test == 457
    assert evaluation.model["roc_auc"] >= 0.80
    assert evaluation.model["roc_auc"] > evaluation.baselines["ipv_t"]["roc_auc"]
