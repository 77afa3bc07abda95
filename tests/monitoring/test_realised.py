"""Realised performance: which prediction counts for each student, the join with cycle t+1, the
figures (checked against scikit-learn), the verdict, the stored records (upsert) and the alert
path, on a real SQLite store and a real prediction log."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from passos_magicos.alerts.history import AlertHistory
from passos_magicos.data.dataset import Dataset, LoadReport
from passos_magicos.data.schema import conform
from passos_magicos.features import MODEL_INPUTS
from passos_magicos.monitoring.realised import (
    PREDICTION_LOG,
    ROSTER,
    CycleJoin,
    Prediction,
    collect_predictions,
    evaluate_join,
    evaluation_text,
    join_outcomes,
    run_evaluation,
)
from passos_magicos.monitoring.window import read_window
from passos_magicos.performance import estimated_metrics
from passos_magicos.performance_history import PerformanceHistory, RealisedStudent, RosterRow
from passos_magicos.serving.prediction_log import PredictionLog, PredictionRecord
from passos_magicos.settings import Settings

MODEL = "passos-magicos-ponto-virada"


def settings_in(root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "DATA_DIR": root / "data",
        "MODELS_DIR": root / "models",
        "MLFLOW_ENABLED": False,
        "PREDICTION_LOG_PATH": root / "logs" / "predictions.jsonl",
        "MONITORING_STORE_URL": f"sqlite:///{root / 'logs' / 'monitoring.db'}",
        "SLACK_WEBHOOK_URL": None,
        "BACKTEST_REPLICATES": 200,
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


def log_line(
    student: str | None,
    ts: str,
    probability: float,
    cycle: int | None,
    endpoint: str = "/predict/alunos",
    version: str = "3",
) -> PredictionRecord:
    line: PredictionRecord = {
        "ts": ts,
        "request_id": "r",
        "aluno_id": student,
        "endpoint": endpoint,
        "modelo": MODEL,
        "versao": version,
        "fonte": "local",
        "features": dict.fromkeys(MODEL_INPUTS, 1.0),
        "probabilidade": probability,
        "pv_previsto": probability >= 0.3,
        "limiar": 0.3,
        "latencia_ms": 1.0,
    }
    if cycle is not None:  # lines written before the field existed have no `ciclo` at all
        line["ciclo"] = cycle
    return line


def dataset_of(rows: list[dict[str, Any]], links: dict[str, str] | None = None) -> Dataset:
    report = LoadReport()
    report.linked_ids = links or {}
    return Dataset(table=conform(pd.DataFrame(rows)), report=report, digest="teste")


def outcome_rows(y: np.ndarray, year: int = 2023, origin: str = "derivado") -> list[dict[str, Any]]:
    return [
        {"aluno_id": f"RA-{i}", "ano": year, "pv": bool(v), "pv_origem": origin}
        for i, v in enumerate(y)
    ]


def scored_population(n: int, seed: int, signal: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities whose ranking carries `signal` (0: none)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.15).astype(float)
    logit = -1.8 + signal * (y - 0.15) * 3 + rng.normal(0, 1, n)
    return y, 1 / (1 + np.exp(-logit))


def join_of(y: np.ndarray, p: np.ndarray, threshold: float = 0.3) -> CycleJoin:
    order = np.argsort(-p, kind="stable")
    students = [
        RealisedStudent(
            f"RA-{i}", rank, float(p[i]), bool(p[i] >= threshold), bool(y[i]), "derivado", ROSTER
        )
        for rank, i in enumerate(order, start=1)
    ]
    return CycleJoin(
        MODEL, "3", 2022, students, threshold, origins=Counter({"derivado": len(students)})
    )


# -- which prediction counts ---------------------------------------------------------------


def test_latest_prediction_per_student_wins_across_roster_and_log(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    history = PerformanceHistory(settings.monitoring_store_url)
    roster = [RosterRow("RA-1", 2022, 0.2, False), RosterRow("RA-2", 2022, 0.6, True)]
    for when in ("2026-01-10T09:00:00+00:00", "2026-01-11T09:00:00+00:00"):  # a rerun
        history.record_roster(
            modelo=MODEL, versao="3", fonte="local", limiar=0.3, rows=roster, pontuado_em=when
        )
    assert len(history.roster_predictions()) == 2  # upserted, not duplicated
    with PredictionLog(settings.PREDICTION_LOG_PATH, 10_000_000, daily=False) as log:
        log.append(
            [
                log_line("RA-1", "2026-01-12T08:00:00.000Z", 0.9, 2022),  # newer: wins
                log_line("RA-2", "2026-01-09T08:00:00.000Z", 0.1, 2022, "/predict/aluno"),  # older
                log_line("RA-2", "2026-01-13T08:00:00.000Z", 0.05, 2022, "/predict"),  # caller's
                log_line("RA-3", "2026-01-13T08:00:00.000Z", 0.05, None),  # an old line
                log_line(None, "2026-01-13T08:00:00.000Z", 0.05, 2022),
            ]
        )
    predictions, stats = collect_predictions(settings, history)
    chosen = {p.aluno_id: p for p in predictions}
    assert set(chosen) == {"RA-1", "RA-2"} and stats.records == 5 and stats.invalid == 0
    assert (chosen["RA-1"].fonte, chosen["RA-1"].probabilidade) == (PREDICTION_LOG, 0.9)
    assert (chosen["RA-2"].fonte, chosen["RA-2"].probabilidade) == (ROSTER, 0.6)
    # The monitoring window reads old and new lines alike.
    window = read_window(settings.PREDICTION_LOG_PATH, MODEL_INPUTS, limit=100)
    assert window.n == 5 and window.invalid_lines == 0
    history.dispose()


def test_join_links_csv_ids_and_counts_what_is_missing() -> None:
    rows = [
        {"aluno_id": "RA-1", "ano": 2023, "pv": True, "pv_origem": "derivado"},
        {"aluno_id": "RA-2", "ano": 2023, "pv": False, "pv_origem": "oficial"},
        {"aluno_id": "RA-3", "ano": 2023, "pv": None, "pv_origem": None},
        {"aluno_id": "RA-9", "ano": 2022, "pv": True, "pv_origem": "oficial"},
    ]
    dataset = dataset_of(rows, links={"ALUNO-1": "RA-1"})
    predictions = [
        _prediction("ALUNO-1", 2022, 0.4),
        _prediction("RA-2", 2022, 0.7),
        _prediction("RA-3", 2022, 0.1),
        _prediction("RA-4", 2022, 0.2),  # left the programme: no 2023 row
        _prediction("RA-1", 2023, 0.5),  # 2024 is not in the files: waits
    ]
    [join] = join_outcomes(predictions, dataset)
    assert (join.ciclo, join.without_record, join.without_label) == (2022, 1, 1)
    assert [s.aluno_id for s in join.students] == ["RA-2", "ALUNO-1", "RA-4", "RA-3"]
    assert [s.posicao for s in join.students] == [1, 2, 3, 4]
    assert [s.pv_real for s in join.students] == [False, True, None, None]
    assert dict(join.origins) == {"derivado": 1, "oficial": 1}
    y, p, predicted = join.arrays()
    assert y.tolist() == [0.0, 1.0] and p.tolist() == [0.7, 0.4]
    assert predicted.tolist() == [True, True]


def _prediction(student: str, cycle: int, probability: float) -> Prediction:
    return Prediction(
        MODEL,
        "3",
        cycle,
        student,
        probability,
        probability >= 0.3,
        0.3,
        datetime(2026, 1, 1, tzinfo=UTC),
        ROSTER,
    )


# -- figures and verdict -----------------------------------------------------------------


def test_realised_figures_match_scikit_learn_and_sit_beside_the_estimate() -> None:
    y, p = scored_population(500, seed=3, signal=0.4)
    result = evaluate_join(join_of(y, p), floor=0.5, replicates=300, seed=0)
    record = result.record
    realised = record["realizado"]
    assert realised["roc_auc"]["valor"] == pytest.approx(roc_auc_score(y, p))
    assert realised["pr_auc"]["valor"] == pytest.approx(average_precision_score(y, p))
    assert realised["brier"]["valor"] == pytest.approx(brier_score_loss(y, p))
    for figure in realised.values():
        assert figure["ic_inf"] <= figure["valor"] <= figure["ic_sup"]
    expected = estimated_metrics(p, 300, 0)
    assert record["estimado"]["roc_auc"]["valor"] == pytest.approx(expected["roc_auc"].value)
    assert record["erro_estimativa"]["roc_auc"] == pytest.approx(
        expected["roc_auc"].value - roc_auc_score(y, p)
    )
    assert record["taxas"] == {
        "prevista": pytest.approx((p >= 0.3).mean()),
        "esperada": pytest.approx(p.mean()),
        "real": pytest.approx(y.mean()),
    }
    assert sum(record["matriz_confusao"].values()) == record["n"] == 500
    assert record["positivos"] == int(y.sum()) and record["origem_rotulos"] == {"derivado": 500}
    assert record["estado"] == "ok" and result.check.estado == "ok"
    assert result.check.chave == f"desempenho_realizado:{MODEL}:3:2022"


def test_below_the_floor_alerts_and_is_critical_only_when_clearly_below() -> None:
    y, p = scored_population(600, seed=4, signal=0.0)  # no signal: AUC near 0.5
    clearly = evaluate_join(join_of(y, p), floor=0.9, replicates=300, seed=0)
    assert clearly.record["estado"] == "alerta"
    assert clearly.record["realizado"]["roc_auc"]["ic_sup"] < 0.9
    assert clearly.check.severidade == "critico" and "abaixo do piso" in clearly.check.titulo
    y, p = scored_population(600, seed=5, signal=0.4)
    auc = roc_auc_score(y, p)
    borderline = evaluate_join(join_of(y, p), floor=auc + 0.01, replicates=300, seed=0)
    assert borderline.record["estado"] == "alerta" and borderline.check.severidade == "aviso"


def test_too_few_students_or_one_class_is_indeterminate() -> None:
    y, p = scored_population(25, seed=6, signal=1.0)
    few = evaluate_join(join_of(y, p), floor=0.7, replicates=200, seed=0)
    assert few.record["estado"] == "indeterminado" and "ao menos 30" in few.record["motivo"]
    y = np.zeros(80)
    _, p = scored_population(80, seed=7, signal=0.0)
    single = evaluate_join(join_of(y, p), floor=0.7, replicates=200, seed=0)
    assert single.record["estado"] == "indeterminado"
    assert single.record["realizado"]["roc_auc"]["valor"] is None


# -- the whole evaluation: store, rerun, alerts, messages ------------------------------------


def _roster_and_outcomes(
    settings: Settings, n: int = 200, version: str = "3"
) -> tuple[Dataset, np.ndarray, np.ndarray]:
    y, p = scored_population(n, seed=8, signal=0.6)
    history = PerformanceHistory(settings.monitoring_store_url)
    rows = [RosterRow(f"RA-{i}", 2022, float(p[i]), bool(p[i] >= 0.3)) for i in range(n)]
    history.record_roster(modelo=MODEL, versao=version, fonte="local", limiar=0.3, rows=rows)
    history.dispose()
    return dataset_of(outcome_rows(y)), y, p


def test_evaluation_is_stored_once_per_cycle_and_alerts_through_the_policy(
    tmp_path: Path,
) -> None:
    strict = settings_in(tmp_path, REALISED_MIN_ROC_AUC=0.99)
    dataset, y, p = _roster_and_outcomes(strict)
    first = run_evaluation(strict, dataset, echo=lambda _: None)
    [result] = first.results
    assert result.record["estado"] == "alerta" and first.message is None
    assert result.record["alerta"]["acao"] == "alerta"
    assert result.record["alerta"]["entregue"] is False  # no webhook: recorded, not delivered
    alerts = AlertHistory(strict.monitoring_store_url)
    [event] = alerts.events(1, 10)[0]
    assert event.dedup_key == result.check.chave and event.delivered is False
    assert [a.dedup_key for a in alerts.active_alerts()] == [result.check.chave]

    relaxed = settings_in(tmp_path)  # default floor 0.70: the same figures are fine
    second = run_evaluation(relaxed, dataset, echo=lambda _: None)
    assert second.results[0].record["estado"] == "ok"
    assert alerts.active_alerts() == []  # back to normal (never delivered: nothing announced)
    alerts.dispose()

    history = PerformanceHistory(relaxed.monitoring_store_url)
    [stored] = history.realised_records()
    assert stored["estado"] == "ok" and stored["n"] == len(y)
    assert stored["realizado"]["roc_auc"]["valor"] == pytest.approx(roc_auc_score(y, p))
    students, total = history.realised_students(MODEL, "3", 2022, limit=10, offset=5)
    assert total == len(y) and [s.posicao for s in students] == list(range(6, 16))
    assert students[0].probabilidade >= students[-1].probabilidade
    history.dispose()
    text = evaluation_text(second)
    assert "alunos de 2022 → PV em 2023" in text and "ROC-AUC" in text and "estado: ok" in text


def test_nothing_to_evaluate_says_why(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    labelled = dataset_of(outcome_rows(np.array([1, 0, 0]), year=2023))
    nothing = run_evaluation(settings, labelled, send_alerts=False, echo=lambda _: None)
    assert nothing.results == [] and "nenhuma previsão com ciclo registrado" in str(nothing.message)

    _roster_and_outcomes(settings)  # predictions for 2022
    only_2022 = dataset_of(outcome_rows(np.array([1, 0]), year=2022))
    waiting = run_evaluation(settings, only_2022, send_alerts=False, echo=lambda _: None)
    assert "ainda não chegaram" in str(waiting.message)
    assert waiting.as_dict()["pendentes"][0]["ciclo"] == 2022

    other_ids = dataset_of([{"aluno_id": "ALUNO-1", "ano": 2023, "pv": True}])
    unmatched = run_evaluation(settings, other_ids, send_alerts=False, echo=lambda _: None)
    assert "repita --data" in str(unmatched.message) and unmatched.results == []
    history = PerformanceHistory(settings.monitoring_store_url)
    assert history.realised_records() == []  # a mismatch of ids is not an outcome
    history.dispose()
