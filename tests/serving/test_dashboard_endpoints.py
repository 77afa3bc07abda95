"""The endpoints the dashboard reads: student profiles with predictions, a student's history
(offline store), monitoring runs for charts, and the registry's versions of the model."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from passos_magicos.alerts.history import AlertHistory
from passos_magicos.data.dataset import build_dataset
from passos_magicos.data.storage import SourceFile
from passos_magicos.data.synth import render_synthetic
from passos_magicos.feature_store.offline import read_offline, write_offline
from passos_magicos.feature_store.online import OnlineStore
from passos_magicos.features import build_transitions
from passos_magicos.monitoring.drift import FeatureDrift, PositiveRate, VersionDrift
from passos_magicos.monitoring.job import Check, insufficient, version_checks
from passos_magicos.monitoring.window import VersionWindow
from passos_magicos.serving.versions import RegistryReader
from passos_magicos.training.packaging import BACKTEST_FILE
from tests.serving.conftest import AUTH, free_port, settings_for

MODEL = "passos-magicos-ponto-virada"
INDICATORS = ("inde", "iaa", "ieg", "ips", "ipp", "ida", "ipv", "ian")


def _none(value: Any) -> Any:
    return None if pd.isna(value) else value


# -- perfil in GET /predict/alunos ---------------------------------------------------------------


def test_every_prediction_carries_the_student_profile(
    client: TestClient, served_root: Path
) -> None:
    snapshot = OnlineStore(settings_for(served_root).online_store_url).load_active()
    everyone = client.get("/predict/alunos?ciclo=todos", headers=AUTH).json()["previsoes"]
    assert len(everyone) == len(snapshot)
    for item in everyone:
        student = snapshot.students[item["aluno_id"]]
        assert item["perfil"] == {
            "fase": int(student.features["fase"]),
            "turma": student.turma,
            "pedra": student.features["pedra"],
            "genero": student.genero,
        }
    # Against the source table too: the student's latest cycle.
    table, _ = read_offline(settings_for(served_root).offline_store_dir)
    known = everyone[0]
    latest = table[table["aluno_id"] == known["aluno_id"]].iloc[-1]
    assert known["ciclo"] == int(latest["ano"])
    assert known["perfil"]["fase"] == int(latest["fase"])
    assert known["perfil"]["turma"] == _none(latest["turma"])
    assert known["perfil"]["pedra"] == _none(latest["pedra"])
    assert known["perfil"]["genero"] == _none(latest["genero"])

    some = client.get(f"/predict/alunos?aluno_ids={known['aluno_id']}", headers=AUTH).json()
    assert some["previsoes"][0]["perfil"] == known["perfil"]
    # The other prediction endpoints keep their contract.
    single = client.get(f"/predict/aluno/{known['aluno_id']}", headers=AUTH).json()
    assert "perfil" not in single


# -- GET /alunos/{id}/historico ------------------------------------------------------------------


def test_history_lists_every_cycle_in_year_order(client: TestClient, served_root: Path) -> None:
    table, info = read_offline(settings_for(served_root).offline_store_dir)
    counts = table.groupby("aluno_id").size()
    aluno_id = str(counts[counts == 3].index[0])
    rows = table[table["aluno_id"] == aluno_id].sort_values("ano")

    response = client.get(f"/alunos/{aluno_id}/historico", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["aluno_id"] == aluno_id and body["atualizado_em"] == info.written_at
    cycles = body["ciclos"]
    assert [c["ano"] for c in cycles] == sorted(int(y) for y in rows["ano"]) == [2020, 2021, 2022]
    for cycle, (_, row) in zip(cycles, rows.iterrows(), strict=True):
        assert set(cycle) == {"ano", "fase", "pedra", *INDICATORS, "pv"}
        assert cycle["fase"] == _none(row["fase"]) and cycle["pedra"] == _none(row["pedra"])
        assert cycle["pv"] == _none(row["pv"])
        for name in INDICATORS:
            assert cycle[name] == pytest.approx(_none(row[name]))

    # The same id forms as /predict/aluno: any case, and the bare number when unambiguous.
    number = aluno_id.split("-")[1]
    for key in (aluno_id.lower(), number):
        assert client.get(f"/alunos/{key}/historico", headers=AUTH).json() == body


def test_unknown_student_history_is_404(client: TestClient) -> None:
    response = client.get("/alunos/RA-99999/historico", headers=AUTH)
    assert response.status_code == 404
    assert "não encontrado" in response.json()["detail"] and "RA-99999" in response.json()["detail"]


def _offline_rows(*rows: tuple[str, int, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"aluno_id": a, "ano": year, "fase": 2, "pedra": "Ágata", "ipv": ipv, "pv": False}
            for a, year, ipv in rows
        ]
    )


def test_history_ambiguous_number_and_reload_after_a_new_write(
    make_client: Any, served_root: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    root = settings_for(served_root, DATA_DIR=data).offline_store_dir
    write_offline(_offline_rows(("ALUNO-5", 2021, 6.0), ("RA-5", 2021, 7.0)), "d1", root)
    client = make_client(DATA_DIR=data)

    ambiguous = client.get("/alunos/5/historico", headers=AUTH)
    assert ambiguous.status_code == 409
    assert "ALUNO-5" in ambiguous.json()["detail"] and "RA-5" in ambiguous.json()["detail"]
    first = client.get("/alunos/RA-5/historico", headers=AUTH).json()
    assert [(c["ano"], c["ipv"], c["inde"]) for c in first["ciclos"]] == [(2021, 7.0, None)]

    # A new write of the store (a retrain or `materialize`) is picked up without a restart.
    time.sleep(0.01)
    write_offline(
        _offline_rows(("RA-5", 2022, 8.0), ("RA-5", 2021, 7.0), ("RA-6", 2022, 5.0)), "d2", root
    )
    second = client.get("/alunos/5/historico", headers=AUTH).json()
    assert second["aluno_id"] == "RA-5"
    assert [(c["ano"], c["ipv"]) for c in second["ciclos"]] == [(2021, 7.0), (2022, 8.0)]


def test_history_without_an_offline_store_is_503(make_client: Any, tmp_path: Path) -> None:
    client = make_client(DATA_DIR=tmp_path / "vazio")
    response = client.get("/alunos/1/historico", headers=AUTH)
    assert response.status_code == 503
    assert "feature store offline" in response.json()["detail"]
    assert "materialize" in response.json()["detail"]


# -- GET /monitoring/runs ------------------------------------------------------------------------


def _drift(feature: str, psi: float, drift: bool, mean: float | None = 7.0) -> FeatureDrift:
    return FeatureDrift(
        feature=feature,
        tipo="numerico",
        psi=psi,
        p_valor=0.001 if drift else 0.4,
        cramer_v=0.1,
        ks_d=0.1,
        ks_p_valor=0.3,
        ausentes_ref=0.0,
        ausentes_atual=0.0,
        media_ref=mean,
        media_atual=None if mean is None else mean + psi,
        drift=drift,
    )


def _report(ipv_psi: float, score_mean: float, rate: float, n: int) -> dict[str, Any]:
    """A report as `run_monitor` writes it, built with the job's own check builders."""
    settings = settings_for(Path("unused"))
    window = VersionWindow(
        model=MODEL,
        version="7",
        features={},
        scores=np.full(n, score_mean),
        predicted=np.zeros(n, dtype=bool),
    )
    drift = VersionDrift(
        n=n,
        alpha_por_teste=0.001,
        features=[_drift("ipv", ipv_psi, ipv_psi >= 0.2), _drift("ida", 0.01, False)],
        score=dataclasses.replace(_drift("score", 0.05, False), media_atual=score_mean),
        taxa_positiva=PositiveRate(
            referencia=0.3, atual=rate, n=n, positivos=round(rate * n), p_valor=0.5, cohen_h=0.1
        ),
    )
    few = VersionWindow(
        model=MODEL,
        version="6",
        features={},
        scores=np.full(5, 0.5),
        predicted=np.zeros(5, dtype=bool),
    )
    checks = [*version_checks(window, drift, settings), *insufficient(few, settings)]
    checks.append(
        Check(
            nome="log_previsoes",
            chave="log_previsoes",
            estado="ok",
            severidade="aviso",
            titulo="Linhas inválidas no log de previsões",
            resumo="todas válidas",
        )
    )
    alerting = any(c.estado == "alerta" for c in checks)
    return {
        "inicio": "2026-03-01T12:00:00+00:00",
        "status": "alerta" if alerting else "ok",
        "log": {"linhas_lidas": n + 5, "linhas_invalidas": 0, "previsoes_na_janela": n + 5},
        "versoes": [
            {"modelo": MODEL, "versao": "7", "n": n, "estado": "alerta" if alerting else "ok"},
            {"modelo": MODEL, "versao": "6", "n": 5, "estado": "dados_insuficientes"},
        ],
        "verificacoes": [c.to_dict() for c in checks],
        "alertas": [],
    }


def test_monitoring_runs_are_summarised_newest_first(make_client: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'monitoring.db'}"
    history = AlertHistory(url)
    old = _report(ipv_psi=0.05, score_mean=0.4, rate=0.3, n=300)
    new = _report(ipv_psi=0.35, score_mean=0.55, rate=0.45, n=400)
    first = history.record_run(old["inicio"], old["status"], old)
    second = history.record_run("2026-03-01T18:00:00+00:00", new["status"], new)
    history.dispose()
    client = make_client(MONITORING_STORE_URL=url)

    runs = client.get("/monitoring/runs", headers=AUTH).json()["execucoes"]
    assert [r["id"] for r in runs] == [second, first]
    latest = runs[0]
    assert latest["status"] == "alerta" and latest["previsoes_na_janela"] == 405
    assert latest["em_alerta"] == [f"drift_features:{MODEL}:7"]
    v7, v6 = latest["versoes"]
    assert (v7["versao"], v7["n"], v7["estado"]) == ("7", 400, "alerta")
    assert v7["features"] == {
        "ipv": {"psi": 0.35, "drift": True},
        "ida": {"psi": 0.01, "drift": False},
    }
    assert v7["psi_probabilidade"] == 0.05 and v7["drift_probabilidade"] is False
    assert v7["probabilidade_media"] == 0.55 and v7["probabilidade_media_referencia"] == 7.0
    assert v7["taxa_positiva"] == 0.45 and v7["taxa_positiva_referencia"] == 0.3
    # Too few predictions: listed, with no statistics.
    assert (v6["versao"], v6["estado"], v6["features"]) == ("6", "dados_insuficientes", {})
    assert v6["psi_probabilidade"] is None and v6["taxa_positiva"] is None
    assert runs[1]["status"] == "ok" and runs[1]["versoes"][0]["features"]["ipv"]["drift"] is False
    assert "verificacoes" not in latest  # a summary, not the raw report

    limited = client.get("/monitoring/runs?limite=1", headers=AUTH).json()["execucoes"]
    assert [r["id"] for r in limited] == [second]
    assert client.get("/monitoring/runs?limite=501", headers=AUTH).status_code == 422

    full = client.get(f"/monitoring/runs/{first}", headers=AUTH).json()
    assert full["id"] == first and full["relatorio"]["verificacoes"] == old["verificacoes"]
    missing = client.get("/monitoring/runs/999", headers=AUTH)
    assert missing.status_code == 404 and "999" in missing.json()["detail"]


def test_monitoring_runs_tolerate_empty_and_odd_reports(make_client: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'monitoring.db'}"
    client = make_client(MONITORING_STORE_URL=url)
    assert client.get("/monitoring/runs", headers=AUTH).json() == {"execucoes": []}
    history = AlertHistory(url)
    odd = {"versoes": "x", "verificacoes": [1, {"nome": "drift_previsoes", "chave": 3}]}
    run_id = history.record_run("2026-03-01T00:00:00+00:00", "sem_dados", odd)
    history.dispose()
    (run,) = client.get("/monitoring/runs", headers=AUTH).json()["execucoes"]
    assert run["id"] == run_id and run["versoes"] == [] and run["previsoes_na_janela"] is None
    assert run["inicio"] == "2026-03-01T00:00:00+00:00"


# -- GET /model/versions -------------------------------------------------------------------------


def test_model_versions_with_mlflow_disabled_shows_the_local_model(client: TestClient) -> None:
    body = client.get("/model/versions", headers=AUTH).json()
    assert body["fonte"] == "local" and body["versoes"] == [] and body["erro"] is None
    assert body["nome"] == MODEL and body["alias_servido"] == "production"
    loaded = body["em_uso"]
    assert (loaded["versao"], loaded["fonte"], loaded["tipo"]) == ("7", "local", "random_forest")
    assert loaded["metricas"] == {"oot_roc_auc": 0.8}
    assert loaded["referencias"] == {"oot_baseline_ipv_t_roc_auc": 0.77}


def test_model_versions_when_the_registry_is_unreachable(make_client: Any) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    client = make_client(MLFLOW_ENABLED=True, MLFLOW_TRACKING_URI=unreachable)
    client.app.state.passos.registry.timeout = 1.0
    response = client.get("/model/versions", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["fonte"] == "local" and body["versoes"] == []
    assert "registry do MLflow" in body["erro"]
    assert body["em_uso"]["versao"] == "7"


def test_registry_reader_times_out_caches_and_reports_errors() -> None:
    asyncio.run(_registry_reader_checks())


async def _registry_reader_checks() -> None:
    settings = settings_for(Path("unused"))
    calls: list[float] = []

    def slow(_: Any) -> list[Any]:
        calls.append(time.monotonic())
        time.sleep(0.5)
        return []

    reader = RegistryReader(settings, timeout=0.05, ttl=60, read=slow)
    for _ in range(2):  # the failure is reused for `ttl`: one call, not two
        with pytest.raises(RuntimeError, match=r"não respondeu em 0\.05 s"):
            await reader.versions()
    assert len(calls) == 1

    def broken(_: Any) -> list[Any]:
        raise ConnectionError("recusada")

    failing = RegistryReader(settings, ttl=0, read=broken)
    with pytest.raises(RuntimeError, match="não foi possível ler o registry do MLflow: recusada"):
        await failing.versions()


@pytest.fixture
def registered(tmp_path: Path) -> str:
    """An embedded MLflow store with versions 1-7 of the model; v7 is @production."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = MlflowClient(tracking_uri=uri, registry_uri=uri)
    registry.create_registered_model(MODEL)
    for number in range(1, 8):
        tags = {"model.kind": "random_forest" if number == 7 else "logistic_regression"}
        if number >= 6:
            tags |= {
                "metric.oot_roc_auc": f"{0.75 + number / 100:.6f}",
                "metric.cv_roc_auc": "0.790000",
                "metric.oot_pr_auc": "0.610000",
                "metric.oot_brier": "0.180000",
                "metric.oot_baseline_ipv_t_roc_auc": "0.770000",
                "metric.oot_baseline_ipv_t_recall": "0.5",  # not a headline metric
                "gate.passed": "true" if number == 7 else "false",
                "gate.summary": "APROVADO" if number == 7 else "REPROVADO: pior",
            }
        registry.create_model_version(MODEL, source=str(tmp_path / "art"), tags=tags)
    registry.set_registered_model_alias(MODEL, "production", "7")
    registry.set_registered_model_alias(MODEL, "staging", "7")
    return uri


@pytest.mark.slow
def test_model_versions_from_the_registry(make_client: Any, registered: str) -> None:
    client = make_client(MLFLOW_ENABLED=True, MLFLOW_TRACKING_URI=registered)
    client.app.state.passos.registry.timeout = 60.0
    body = client.get("/model/versions", headers=AUTH).json()
    assert body["fonte"] == "mlflow" and body["erro"] is None
    versions = body["versoes"]
    assert [v["versao"] for v in versions] == ["7", "6", "5", "4", "3", "2", "1"]
    # The served model is the local copy of v7 (MODEL_SOURCE=local): marked as in use.
    assert [v["versao"] for v in versions if v["em_uso"]] == ["7"]
    v7, v6 = versions[0], versions[1]
    assert v7["aliases"] == ["production", "staging"] and v6["aliases"] == []
    assert v7["portao"] == "aprovado" and v7["portao_resumo"] == "APROVADO"
    assert v6["portao"] == "reprovado" and versions[-1]["portao"] is None
    assert v7["metricas"] == {
        "oot_roc_auc": 0.82,
        "cv_roc_auc": 0.79,
        "oot_pr_auc": 0.61,
        "oot_brier": 0.18,
    }
    assert v7["referencias"] == {"oot_baseline_ipv_t_roc_auc": 0.77}
    assert v7["tipo"] == "random_forest" and v7["criada_em"].endswith("+00:00")
    assert body["em_uso"]["versao"] == "7"


# -- GET /model/backtest -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backtest_document() -> dict[str, Any]:
    """A real rolling-origin backtest (synthetic 2020-2022: one test year, 2021→2022), as
    training writes it beside the model."""
    from passos_magicos.training.backtest import run_backtest
    from passos_magicos.training.report import newest_year_statement

    content = render_synthetic(students=500, seed=3)
    dataset = build_dataset([SourceFile("s.csv", "s.csv", content)])
    backtest = run_backtest(
        build_transitions(dataset.table), "compact_logistic", folds=3, seed=0, replicates=100
    )
    assert backtest is not None
    return backtest.as_dict() | {
        "resumo": newest_year_statement(backtest),
        "modelo_final": "compact_logistic",
    }


def test_model_backtest_serves_the_models_table(
    make_client: Any, served_root: Path, tmp_path: Path, backtest_document: dict[str, Any]
) -> None:
    models = tmp_path / "models"
    shutil.copytree(served_root / "models", models)
    (models / "ponto-virada" / BACKTEST_FILE).write_text(json.dumps(backtest_document))
    client = make_client(MODELS_DIR=models)

    response = client.get("/model/backtest")  # aggregate figures: no token, like /model/info
    assert response.status_code == 200
    body = response.json()
    assert (body["nome"], body["versao"], body["modelo_final"]) == (MODEL, "7", "compact_logistic")
    assert body["resumo"] == backtest_document["resumo"] and "INDE_t" in body["resumo"]
    assert body["regra_escolha"] is None  # absent from the document: null, not an error
    assert set(body["referencias"]) == {"inde_t", "ipv_t", "logistica_simples"}
    (year,) = body["anos"]
    (expected,) = backtest_document["anos"]
    assert year["transicao"] == "2021→2022" == expected["transicao"]
    assert (year["n"], year["positivos"]) == (expected["n"], expected["positivos"])
    assert set(year["metricas"]) == {"modelo", "inde_t", "ipv_t", "logistica_simples"}
    for name, figures in year["metricas"].items():
        assert set(figures) >= {"roc_auc", "pr_auc", "brier", "recall_top15", "recall_top25"}
        roc = figures["roc_auc"]
        assert roc == pytest.approx(expected["metricas"][name]["roc_auc"])
        assert roc["ic_inf"] <= roc["valor"] <= roc["ic_sup"]
    for comparison in year["comparacoes"].values():
        roc = comparison["roc_auc"]
        rule = "supera" if roc["ic_inf"] > 0 else "perde" if roc["ic_sup"] < 0 else "empata"
        assert roc["veredito"] == rule
    assert year["estimado"]["roc_auc"]["valor"] is not None
    assert sum(point["n"] for point in year["confiabilidade"]) == year["n"]
    # The OpenAPI schema describes the body (typed response model).
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/model/backtest"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BacktestModelo"
    }
    assert "anos" in schema["components"]["schemas"]["BacktestModelo"]["properties"]


def test_model_backtest_is_404_when_the_model_has_none(client: TestClient) -> None:
    response = client.get("/model/backtest")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "v7" in detail and "não tem backtest" in detail and "uma só transição" in detail


def test_model_backtest_of_an_unknown_format_is_404_not_500(
    make_client: Any, served_root: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(served_root / "models", models)
    (models / "ponto-virada" / BACKTEST_FILE).write_text(json.dumps({"anos": [{"x": 1}]}))
    response = make_client(MODELS_DIR=models).get("/model/backtest")
    assert response.status_code == 404 and "formato" in response.json()["detail"]


# -- authentication ------------------------------------------------------------------------------

NEW_ENDPOINTS = (
    "/predict/alunos",
    "/alunos/1/historico",
    "/monitoring/runs",
    "/monitoring/runs/1",
    "/model/versions",
)


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, 401), ({"Authorization": "Bearer errado"}, 403), ({"X-API-Token": "errado"}, 403)],
)
def test_dashboard_endpoints_need_the_api_token(
    client: TestClient, headers: dict[str, str], code: int
) -> None:
    for path in NEW_ENDPOINTS:
        response = client.get(path, headers=headers)
        assert response.status_code == code, path
        assert "token" in response.json()["detail"]


def test_dashboard_endpoints_are_disabled_without_configured_tokens(make_client: Any) -> None:
    client = make_client(API_TOKENS=None)
    for path in NEW_ENDPOINTS:
        response = client.get(path, headers=AUTH)
        assert response.status_code == 403, path
        assert "API_TOKENS" in response.json()["detail"]
