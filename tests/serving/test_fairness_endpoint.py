"""GET /model/fairness: the serving model's fairness table per group and backtest year, as
training wrote it beside the model — aggregate figures only, no token (like /model/backtest),
404 in Portuguese when the model has none."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from passos_magicos.data.dataset import build_dataset
from passos_magicos.data.storage import SourceFile
from passos_magicos.data.synth import render_synthetic
from passos_magicos.features import build_transitions
from passos_magicos.training.backtest import run_backtest
from passos_magicos.training.fairness import fairness_report
from passos_magicos.training.packaging import FAIRNESS_FILE


@pytest.fixture(scope="module")
def fairness_document() -> dict[str, Any]:
    """A real fairness report (synthetic 2020-2022: one backtest year, 2021→2022)."""
    dataset = build_dataset([SourceFile("s.csv", "s.csv", render_synthetic(students=500, seed=3))])
    transitions = build_transitions(dataset.table)
    backtest = run_backtest(transitions, "compact_logistic", folds=3, seed=0, replicates=100)
    assert backtest is not None
    document: dict[str, Any] = json.loads(
        json.dumps(fairness_report(backtest, transitions).as_dict())
    )
    return document


def _with_report(served_root: Path, tmp_path: Path, document: dict[str, Any]) -> Path:
    models = tmp_path / "models"
    shutil.copytree(served_root / "models", models)
    (models / "ponto-virada" / FAIRNESS_FILE).write_text(json.dumps(document))
    return models


def test_model_fairness_serves_the_models_table(
    make_client: Any, served_root: Path, tmp_path: Path, fairness_document: dict[str, Any]
) -> None:
    client = make_client(MODELS_DIR=_with_report(served_root, tmp_path, fairness_document))
    response = client.get("/model/fairness")  # aggregate figures: no token
    assert response.status_code == 200
    body = response.json()
    assert (body["nome"], body["versao"]) == ("passos-magicos-ponto-virada", "7")
    assert body["resumo"] == fairness_document["resumo"]
    assert body["regra"].startswith("uma diferença entre um grupo")
    assert set(body["agrupamentos"]) == {"genero", "escola", "fase", "anos_programa"}
    (year,) = body["anos"]
    (expected,) = fairness_document["anos"]
    assert year["transicao"] == "2021→2022" and year["n"] == expected["n"]
    assert {g["agrupamento"] for g in year["grupos"]} == set(body["agrupamentos"])
    for grouping in body["agrupamentos"]:  # every student in exactly one group per grouping
        assert sum(g["n"] for g in year["grupos"] if g["agrupamento"] == grouping) == year["n"]
    for group, original in zip(year["grupos"], expected["grupos"], strict=True):
        assert group["grupo"] == original["grupo"]
        assert group["metricas"]["taxa_real"] == original["metricas"]["taxa_real"]
        for gap in group["diferencas"].values():
            assert not gap["sinalizada"] or gap["testada"]
    # Nothing about a single student: only group figures.
    assert "aluno_id" not in response.text and "RA-" not in response.text
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/model/fairness"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EquidadeModelo"
    }


def test_model_fairness_is_404_when_the_model_has_none(client: TestClient) -> None:
    response = client.get("/model/fairness")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "v7" in detail and "não tem relatório de equidade" in detail


def test_model_fairness_of_an_unknown_format_is_404_not_500(
    make_client: Any, served_root: Path, tmp_path: Path
) -> None:
    client = make_client(MODELS_DIR=_with_report(served_root, tmp_path, {"anos": [{"x": 1}]}))
    response = client.get("/model/fairness")
    assert response.status_code == 404 and "formato" in response.json()["detail"]
