"""One roster per (model version, feature-store version, cycle): scored once, logged once,
however often (and by however many replicas) it is viewed; /metrics, Prometheus and the
monitoring window count each (student, model version, feature version) once and requests
apart."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from passos_magicos.feature_store.online import OnlineStore
from passos_magicos.features import MODEL_INPUTS
from passos_magicos.monitoring.window import read_window
from tests.serving.conftest import AUTH, RECORD, settings_for


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def kinds(path: Path) -> Counter[str]:
    return Counter(line.get("tipo", "previsao") for line in lines(path))


def test_roster_views_log_no_student_twice(make_client: Any, served_root: Path) -> None:
    log = served_root / "logs" / "lista.jsonl"
    client: TestClient = make_client(PREDICTION_LOG_PATH=log)
    snapshot = OnlineStore(settings_for(served_root).online_store_url).load_active()
    latest = snapshot.meta.latest_cycle
    newest = [s for s in snapshot.students.values() if s.ano == latest]

    first = client.get("/predict/alunos", headers=AUTH).json()["previsoes"]
    assert {p["ciclo"] for p in first} == {latest} and len(first) == len(newest)
    assert kinds(log) == {"lista": len(newest), "consulta": 1}
    second = client.get("/predict/alunos", headers=AUTH).json()["previsoes"]
    # The second view: the same answer (its own request id), one request line, no student.
    assert [(p["aluno_id"], p["probabilidade_pv"]) for p in second] == [
        (p["aluno_id"], p["probabilidade_pv"]) for p in first
    ]
    assert kinds(log) == {"lista": len(newest), "consulta": 2}
    roster_line = next(line for line in lines(log) if line.get("tipo") == "lista")
    assert roster_line["features_versao"] == snapshot.meta.version
    assert roster_line["lista"].endswith(f"/fs{snapshot.meta.version}/{latest}")

    # Another replica on the same volume (its own process state, the same log): the roster is
    # already there, so its views add request lines only.
    other: TestClient = make_client(PREDICTION_LOG_PATH=log)
    assert len(other.get("/predict/alunos", headers=AUTH).json()["previsoes"]) == len(newest)
    assert kinds(log) == {"lista": len(newest), "consulta": 3}

    metrics = client.get("/metrics").json()
    assert metrics["total_predicoes"] == len(newest)
    assert (metrics["requisicoes"], metrics["consultas_lista"]) == (3, 3)
    assert metrics["listas_registradas"] == 1 and metrics["predicoes_repetidas"] == 0
    positives = sum(p["pv_previsto"] for p in first)
    assert metrics["por_classe"] == {"pv_sim": positives, "nao": len(newest) - positives}

    # Older cycles only on request, each cycle's roster logged once too.
    everyone = client.get("/predict/alunos?ciclo=todos", headers=AUTH).json()["previsoes"]
    assert len(everyone) == len(snapshot)
    probabilities = [p["probabilidade_pv"] for p in everyone]
    assert probabilities == sorted(probabilities, reverse=True)
    older = min(snapshot.meta.cycles)
    one_cycle = client.get(f"/predict/alunos?ciclo={older}", headers=AUTH).json()["previsoes"]
    assert {p["ciclo"] for p in one_cycle} == {older}
    assert len(one_cycle) == snapshot.meta.cycles[older]
    assert client.get("/predict/alunos?ciclo=1999", headers=AUTH).json()["previsoes"] == []
    assert client.get("/predict/alunos?ciclo=ontem", headers=AUTH).status_code == 422
    assert kinds(log)["lista"] == len(snapshot)  # every student once, whatever was asked

    # A student's own prediction asked again (the student page) is a request, not a new
    # prediction; a caller's record is a prediction each time.
    student = newest[0].aluno_id
    for _ in range(2):
        assert client.get(f"/predict/aluno/{student}", headers=AUTH).status_code == 200
    for _ in range(2):
        assert client.post("/predict", json=RECORD, headers=AUTH).status_code == 200
    metrics = client.get("/metrics").json()
    assert metrics["total_predicoes"] == len(snapshot) + 2
    assert metrics["predicoes_repetidas"] == 2
    assert metrics["requisicoes"] == 6 + 4  # six roster views, four predictions
    assert metrics["listas_registradas"] == len(snapshot.meta.cycles)
    prometheus = client.get("/metrics/prometheus").text
    assert f"passos_requisicoes_total {metrics['requisicoes']}" in prometheus
    assert f"passos_predicoes_repetidas_total {metrics['predicoes_repetidas']}" in prometheus
    assert "passos_log_linhas_perdidas_total 0" in prometheus

    # The monitoring window: the same predictions, views neither counted nor invalid.
    window = read_window(log, MODEL_INPUTS, limit=100_000)
    assert window.n == metrics["total_predicoes"] and window.invalid_lines == 0
    assert window.view_lines == 6 and window.repeated_lines == 2


def test_explicit_ids_and_explanations_keep_working(client: TestClient) -> None:
    ranked = client.get("/predict/alunos?explicar=true", headers=AUTH).json()["previsoes"]
    assert all(p["fatores"] for p in ranked[:5])
    ids = ",".join(p["aluno_id"] for p in ranked[:3])
    some = client.get(f"/predict/alunos?aluno_ids={ids}", headers=AUTH).json()["previsoes"]
    assert [p["probabilidade_pv"] for p in some] == [p["probabilidade_pv"] for p in ranked[:3]]
