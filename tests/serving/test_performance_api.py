"""GET /model/performance, /monitoring/realised and the "como o modelo se saiu" list: the API's
roster view logs each student's cycle, the outcomes of the next cycle arrive, and the API shows
the realised figures beside the estimate it gave before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from passos_magicos.data.dataset import build_dataset
from passos_magicos.data.storage import SourceFile
from passos_magicos.data.synth import render_synthetic
from passos_magicos.monitoring.realised import run_evaluation
from tests.serving.conftest import AUTH, RECORD, settings_for

REALISED = "/monitoring/realised"


def overrides(tmp_path: Path) -> dict[str, Any]:
    return {
        "PREDICTION_LOG_PATH": tmp_path / "logs" / "predictions.jsonl",
        "MONITORING_STORE_URL": f"sqlite:///{tmp_path / 'logs' / 'monitoring.db'}",
        "BACKTEST_REPLICATES": 300,
    }


def test_endpoints_need_the_api_token(make_client: Any, tmp_path: Path) -> None:
    client = make_client(**overrides(tmp_path))
    for path in (REALISED, f"{REALISED}/7/2022/alunos", "/model/performance"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"X-API-Token": "errado"}).status_code == 403, path
    assert client.get(REALISED, headers=AUTH).json() == {"registros": []}
    missing = client.get(f"{REALISED}/7/2022/alunos", headers=AUTH)
    assert missing.status_code == 404 and "passos-magicos evaluate" in missing.json()["detail"]


def test_every_prediction_logs_the_cycle_it_scored(make_client: Any, tmp_path: Path) -> None:
    settings = overrides(tmp_path)
    client = make_client(**settings)
    client.post("/predict", json=RECORD, headers=AUTH)  # ano 2024: the caller's cycle
    client.post("/predict", json={**RECORD, "ano": None}, headers=AUTH)
    roster = client.get("/predict/alunos", headers=AUTH).json()["previsoes"]
    lines = [json.loads(line) for line in settings["PREDICTION_LOG_PATH"].read_text().splitlines()]
    assert [line["ciclo"] for line in lines[:2]] == [2024, None]
    # The roster: its students once (tipo "lista"), then the view itself (tipo "consulta").
    *students, view = lines[2:]
    cycles = {line["aluno_id"]: line["ciclo"] for line in students}
    assert cycles == {body["aluno_id"]: body["ciclo"] for body in roster}
    assert {line["tipo"] for line in students} == {"lista"} and view["tipo"] == "consulta"
    assert {line["endpoint"] for line in lines[2:]} == {"/predict/alunos"}


def test_estimate_before_outcomes_then_realised_figures(
    make_client: Any, served_root: Path, tmp_path: Path
) -> None:
    client = make_client(**overrides(tmp_path))
    estimate = client.get("/model/performance", headers=AUTH).json()
    roster = client.get("/predict/alunos", headers=AUTH).json()["previsoes"]
    cohort = [body for body in roster if body["ciclo"] == estimate["ciclo"]]
    probabilities = np.array([body["probabilidade_pv"] for body in cohort])
    assert estimate["ciclo"] == 2022 and estimate["ciclo_alvo"] == 2023
    assert estimate["n"] == len(cohort) and estimate["modelo"]["versao"] == "7"
    assert estimate["taxa_pv_esperada"] == pytest.approx(probabilities.mean(), abs=1e-5)
    assert estimate["taxa_pv_prevista"] == pytest.approx(
        np.mean([body["pv_previsto"] for body in cohort])
    )
    for figure in estimate["estimado"].values():
        assert figure["ic_inf"] <= figure["valor"] <= figure["ic_sup"]
    assert estimate["realizado"] is None
    again = client.get("/model/performance", headers=AUTH).json()
    assert again["calculado_em"] == estimate["calculado_em"]  # cached per model and store

    # The 2023 outcomes arrive: the workbook of the same synthetic population.
    files = [
        SourceFile("s.csv", "s.csv", render_synthetic(students=400, seed=4)),
        SourceFile("s.xlsx", "s.xlsx", render_synthetic(students=400, seed=4, fmt="xlsx")),
    ]
    dataset = build_dataset(files)
    evaluation = run_evaluation(
        settings_for(served_root, **overrides(tmp_path)), dataset, echo=lambda _: None
    )
    [result] = evaluation.results  # students last seen in 2020/2021 have no later record
    assert result.record["ciclo"] == 2022
    assert result.record["fontes"] == {"log_de_previsoes": len(cohort)}

    [record] = client.get(REALISED, headers=AUTH).json()["registros"]
    outcomes = dataset.table[dataset.table["ano"] == 2023].set_index("aluno_id")["pv"]
    links = dataset.report.linked_ids
    labelled = [
        (bool(outcomes[links.get(b["aluno_id"], b["aluno_id"])]), b["probabilidade_pv"])
        for b in cohort
        if links.get(b["aluno_id"], b["aluno_id"]) in outcomes.index
    ]
    y, p = np.array([v for v, _ in labelled]), np.array([q for _, q in labelled])
    assert record["n"] == len(labelled) and record["positivos"] == int(y.sum())
    assert record["realizado"]["roc_auc"]["valor"] == pytest.approx(roc_auc_score(y, p))
    assert record["origem_rotulos"] == {"derivado": len(labelled)}  # 2023: the IPV rule
    assert record["estado"] in {"ok", "alerta"} and record["alerta"]["entregue"] is False
    assert client.get(REALISED, params={"versao": "8"}, headers=AUTH).json() == {"registros": []}

    page = client.get(
        f"{REALISED}/7/2022/alunos", params={"por_pagina": 50, "pagina": 2}, headers=AUTH
    ).json()
    assert page["total"] == len(cohort) and [s["posicao"] for s in page["alunos"]][:2] == [51, 52]
    ranked = sorted(cohort, key=lambda b: (-b["probabilidade_pv"], b["aluno_id"]))
    assert [s["aluno_id"] for s in page["alunos"]] == [b["aluno_id"] for b in ranked[50:100]]
    assert sum(page["matriz_confusao"].values()) == record["n"]

    after = client.get("/model/performance", headers=AUTH).json()
    assert after["realizado"]["avaliado_em"] == record["avaliado_em"]
    status = client.get("/alerts/status", headers=AUTH).json()
    [check] = status["desempenho_realizado"]
    assert check["chave"] == "desempenho_realizado:passos-magicos-ponto-virada:7:2022"
    assert check["estado"] == record["estado"]
