"""Contract tests for every endpoint of the API, including each error it promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from passos_magicos.feature_store.online import OnlineStore
from tests.serving.conftest import ADMIN, AUTH, RECORD
from tests.slack_receiver import SlackReceiver


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["modelo"] == {"versao": "7", "fonte": "local"}


def test_not_ready_without_a_model(make_client: Any, tmp_path: Path) -> None:
    client = make_client(ready=False, MODELS_DIR=tmp_path / "vazio")
    response = client.get("/ready")
    assert response.status_code == 503
    assert "nenhum modelo local" in response.json()["erro"]
    assert client.post("/predict", json=RECORD, headers=AUTH).status_code == 503
    assert client.get("/model/info").status_code == 503


def test_model_info(client: TestClient) -> None:
    info = client.get("/model/info").json()
    assert info["versao"] == "7" and info["fonte"] == "local" and info["tipo"] == "random_forest"
    assert info["compilado"] is True and info["diferenca_compilado"] <= 1e-6
    assert 0 < info["limiar"] < 1
    assert info["metricas"] == {"oot_roc_auc": 0.8}
    assert info["referencias"] == {"oot_baseline_ipv_t_roc_auc": 0.77}
    assert "ipv" in info["features"] and "pv_proximo" not in info["features"]


def test_predict_answers_probability_label_factors_and_request_id(client: TestClient) -> None:
    response = client.post("/predict", json=RECORD, headers={**AUTH, "X-Request-ID": "abc-123"})
    assert response.status_code == 200
    body = response.json()
    assert body["request_id"] == "abc-123" == response.headers["x-request-id"]
    assert 0 <= body["probabilidade_pv"] <= 1
    assert body["pv_previsto"] == (body["probabilidade_pv"] >= body["limiar"])
    assert body["modelo"] == {
        "nome": "passos-magicos-ponto-virada",
        "versao": "7",
        "alias": None,
        "fonte": "local",
    }
    assert body["aluno_id"] == "RA-123" and body["ciclo"] == 2024
    factors = body["fatores"]
    assert 1 <= len(factors) <= 5
    assert all(f["efeito"] in ("aumenta", "diminui") and f["texto"] for f in factors)
    impacts = [abs(f["impacto"]) for f in factors]
    assert impacts == sorted(impacts, reverse=True)
    assert "fatores" not in client.post("/predict?explicar=false", json=RECORD, headers=AUTH).json()


def test_a_better_record_gets_a_higher_probability(client: TestClient) -> None:
    low = {**RECORD, **dict.fromkeys(("inde", "iaa", "ieg", "ida", "ipv"), 3.0)}
    high = {**RECORD, **dict.fromkeys(("inde", "iaa", "ieg", "ida", "ipv"), 9.5), "pv": True}
    p_low = client.post("/predict", json=low, headers=AUTH).json()["probabilidade_pv"]
    p_high = client.post("/predict", json=high, headers=AUTH).json()["probabilidade_pv"]
    assert p_high > p_low


@pytest.mark.parametrize(
    ("headers", "code", "message"),
    [
        ({}, 401, "ausente"),
        ({"Authorization": "Bearer errado"}, 403, "inválido"),
        ({"X-API-Token": "errado"}, 403, "inválido"),
        ({"Authorization": "Basic abc"}, 401, "ausente"),
    ],
)
def test_prediction_endpoints_need_a_valid_token(
    client: TestClient, headers: dict[str, str], code: int, message: str
) -> None:
    for method, path, body in (
        ("POST", "/predict", RECORD),
        ("POST", "/predict/batch", {"registros": [RECORD]}),
        ("GET", "/predict/aluno/1", None),
        ("GET", "/predict/alunos", None),
        ("GET", "/alerts/status", None),
        ("GET", "/alerts/history", None),
    ):
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == code, path
        assert message in response.json()["detail"]


def test_second_token_and_x_api_token_header_work(client: TestClient) -> None:
    assert client.post("/predict", json=RECORD, headers={"X-API-Token": "outro-token"}).is_success


def test_no_token_configured_disables_predictions(make_client: Any) -> None:
    client = make_client(API_TOKENS=None)
    response = client.post("/predict", json=RECORD, headers=AUTH)
    assert response.status_code == 403
    assert "API_TOKENS" in response.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"ipv": 10.5}, "ipv", "≤ 10"),
        ({"ida": -1}, "ida", "≥ 0"),
        ({"fase": 8}, "fase", "≤ 7"),
        ({"pedra": "Diamante"}, "pedra", "use um de"),
        ({"genero": "X"}, "genero", "use um de"),
        ({"ipv": "alto"}, "ipv", "número"),
        ({"aluno_id": "Maria Silva"}, "aluno_id", "formato inválido"),
        ({"nome": "Maria"}, "nome", "campo desconhecido"),
        ({"anterior": {"ipv": 12}}, "anterior.ipv", "≤ 10"),
    ],
)
def test_invalid_fields_are_named(
    client: TestClient, change: dict[str, Any], field: str, message: str
) -> None:
    response = client.post("/predict", json={**RECORD, **change}, headers=AUTH)
    assert response.status_code == 422
    errors = {e["campo"]: e["erro"] for e in response.json()["erros"]}
    assert message in errors[field]


def test_missing_fields_are_named(client: TestClient) -> None:
    response = client.post("/predict", json={"fase": 2, "ipv": 7}, headers=AUTH)
    assert response.status_code == 422
    missing = {e["campo"] for e in response.json()["erros"] if "ausente" in e["erro"]}
    assert missing == {"inde", "iaa", "ieg", "ips", "ipp", "ida", "ian"}


def test_the_label_is_refused(client: TestClient) -> None:
    response = client.post("/predict", json={**RECORD, "pv_proximo": True}, headers=AUTH)
    assert response.status_code == 422
    assert "rótulo" in response.json()["erros"][0]["erro"]


def test_malformed_json_is_a_422(client: TestClient) -> None:
    response = client.post(
        "/predict", content=b"{nope", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["request_id"]


def test_batch_scores_valid_rows_and_points_at_invalid_ones(client: TestClient) -> None:
    rows = [RECORD, {**RECORD, "ipv": 20}, {**RECORD, "aluno_id": "RA-9"}, {"fase": 1}]
    body = client.post("/predict/batch", json={"registros": rows}, headers=AUTH).json()
    assert [p["aluno_id"] for p in body["previsoes"]] == ["RA-123", "RA-9"]
    assert [i["indice"] for i in body["invalidos"]] == [1, 3]
    assert body["invalidos"][0]["erros"] == [{"campo": "ipv", "erro": "deve ser ≤ 10.0"}]
    assert "fatores" not in body["previsoes"][0]


def test_batch_limit_gives_413(make_client: Any) -> None:
    client = make_client(BATCH_LIMIT=3)
    response = client.post("/predict/batch", json={"registros": [RECORD] * 4}, headers=AUTH)
    assert response.status_code == 413
    assert "limite é 3" in response.json()["detail"]
    empty = client.post("/predict/batch", json={"registros": []}, headers=AUTH).json()
    assert empty["previsoes"] == [] and empty["invalidos"] == []


def test_body_size_limit_gives_413(make_client: Any) -> None:
    client = make_client(MAX_BODY_BYTES=2048)
    response = client.post("/predict/batch", json={"registros": [RECORD] * 20}, headers=AUTH)
    assert response.status_code == 413
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_predict_student_from_the_feature_store(client: TestClient) -> None:
    known = client.get("/predict/alunos", headers=AUTH).json()["previsoes"][0]
    body = client.get(f"/predict/aluno/{known['aluno_id']}", headers=AUTH).json()
    assert body["aluno_id"] == known["aluno_id"] and body["ciclo"] == 2022
    assert body["probabilidade_pv"] == known["probabilidade_pv"]
    assert body["fatores"] is not None
    number = known["aluno_id"].split("-")[1]
    bare = client.get(f"/predict/aluno/{number}", headers=AUTH).json()
    assert bare["aluno_id"] == known["aluno_id"]


def test_unknown_student_is_404_with_a_clear_body(client: TestClient) -> None:
    response = client.get("/predict/aluno/RA-99999", headers=AUTH)
    assert response.status_code == 404
    assert "RA-99999" in response.json()["detail"] and response.json()["request_id"]


def test_ambiguous_bare_number_is_409(make_client: Any, served_root: Path, tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'online.db'}"
    online = OnlineStore(store_url)
    features = {"fase": 2.0, "inde": 7.0, "ipv": 7.0}
    import pandas as pd

    frame = pd.DataFrame(
        [
            {"aluno_id": i, "ano": 2022, "turma": "A", "genero": None, **features}
            for i in ("ALUNO-5", "RA-5", "RA-6")
        ]
    )
    from passos_magicos.features import MODEL_INPUTS

    frame = frame.reindex(columns=["aluno_id", "ano", "turma", "genero", *MODEL_INPUTS])
    online.materialize(frame, "digest-teste")
    client = make_client(ONLINE_STORE_URL=store_url)
    response = client.get("/predict/aluno/5", headers=AUTH)
    assert response.status_code == 409
    assert "ALUNO-5" in response.json()["detail"] and "RA-5" in response.json()["detail"]
    many = client.get("/predict/alunos?aluno_ids=5,6,RA-404", headers=AUTH).json()
    assert [p["aluno_id"] for p in many["previsoes"]] == ["RA-6"]
    assert many["ambiguos"] == {"5": ["ALUNO-5", "RA-5"]}
    assert many["desconhecidos"] == ["RA-404"]


def test_many_students_and_the_whole_cycle_ranked(make_client: Any) -> None:
    client = make_client(ALUNOS_LIMIT=3)
    everyone = client.get("/predict/alunos", headers=AUTH).json()["previsoes"]
    assert len(everyone) > 100
    probabilities = [p["probabilidade_pv"] for p in everyone]
    assert probabilities == sorted(probabilities, reverse=True)
    ids = ",".join(p["aluno_id"] for p in everyone[:2]) + ",ALUNO-999999"
    some = client.get(f"/predict/alunos?aluno_ids={ids}", headers=AUTH).json()
    assert len(some["previsoes"]) == 2 and some["desconhecidos"] == ["ALUNO-999999"]
    too_many = client.get("/predict/alunos?aluno_ids=1,2,3,4", headers=AUTH)
    assert too_many.status_code == 413


def test_empty_feature_store_is_503(make_client: Any, tmp_path: Path) -> None:
    client = make_client(ONLINE_STORE_URL=f"sqlite:///{tmp_path / 'vazio.db'}")
    response = client.get("/predict/aluno/1", headers=AUTH)
    assert response.status_code == 503 and "materialize" in response.json()["detail"]
    assert client.get("/features/status").json()["materializado"] is False


def test_features_status(client: TestClient) -> None:
    status = client.get("/features/status").json()
    meta = status["metadados"]
    assert status["materializado"] is True and status["backend"] == "sqlite"
    assert meta["latest_cycle"] == 2022 and meta["rows"] == sum(meta["cycles"].values())
    assert meta["feature_set_version"].startswith("fs-")


def test_metrics_come_from_the_shared_prediction_log(make_client: Any, tmp_path: Path) -> None:
    log = tmp_path / "compartilhado.jsonl"
    first = make_client(PREDICTION_LOG_PATH=log)
    second = make_client(PREDICTION_LOG_PATH=log)  # another replica on the same volume
    for _ in range(3):
        first.post("/predict", json=RECORD, headers=AUTH)
    second.post("/predict/batch", json={"registros": [RECORD, RECORD]}, headers=AUTH)
    a, b = first.get("/metrics").json(), second.get("/metrics").json()
    for body in (a, b):
        assert body["total_predicoes"] == 5
        assert body["versoes_modelo"] == {"7": 5}
        assert sum(body["por_classe"].values()) == 5
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 5 and {line["endpoint"] for line in lines} == {
        "/predict",
        "/predict/batch",
    }
    assert "nome" not in lines[0] and lines[0]["aluno_id"] == "RA-123"
    text = first.get("/metrics/prometheus").text
    assert 'passos_predicoes_total{classe="pv_sim"}' in text and "# TYPE" in text


def test_reload_needs_the_admin_token(make_client: Any) -> None:
    client = make_client()
    assert client.post("/admin/reload-model").status_code == 401
    assert client.post("/admin/reload-model", headers={"X-Admin-Token": "x"}).status_code == 403
    assert client.post("/admin/reload-model", headers=AUTH).status_code == 401
    done = client.post("/admin/reload-model", headers=ADMIN).json()
    assert done["versao_anterior"] == "7" and done["versao"] == "7"
    disabled = make_client(ADMIN_RELOAD_TOKEN=None)
    response = disabled.post("/admin/reload-model", headers=ADMIN)
    assert response.status_code == 403 and "desabilitado" in response.json()["detail"]


def test_alert_endpoints_contract(make_client: Any, slack_receiver: SlackReceiver) -> None:
    client = make_client(SLACK_WEBHOOK_URL=slack_receiver.url)
    status = client.get("/alerts/status", headers=AUTH).json()
    assert status["slack_configurado"] is True
    assert status["alertas_ativos"] == [] and status["verificacoes"] == []
    assert client.post("/alerts/test", headers=AUTH).status_code == 401
    test = client.post("/alerts/test", headers=ADMIN).json()
    assert test["enviado"] is True and test["tentativas"] == 1
    assert "Teste" in slack_receiver.bodies[-1]["text"]
    assert slack_receiver.bodies[-1]["blocks"][0]["type"] == "header"
    manual = {"titulo": "Drift no IPV", "mensagem": "PSI 0,31", "severidade": "critico"}
    sent = client.post("/alerts/send", json=manual, headers=ADMIN).json()
    assert sent["enviado"] is True and "Drift no IPV" in slack_receiver.bodies[-1]["text"]
    assert "CRÍTICO" in slack_receiver.bodies[-1]["blocks"][0]["text"]["text"]
    assert client.post("/alerts/send", json={"titulo": ""}, headers=ADMIN).status_code == 422
    history = client.get("/alerts/history?por_pagina=1", headers=AUTH).json()
    assert history["total"] >= 2 and len(history["itens"]) == 1
    assert history["itens"][0]["title"] == "Drift no IPV"


def test_alerts_without_a_webhook_say_nothing_was_sent(make_client: Any) -> None:
    client = make_client()
    body = client.post("/alerts/test", headers=ADMIN).json()
    assert body["enviado"] is False and "não configurado" in body["motivo"]


def test_internal_errors_do_not_leak(make_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client(raise_errors=False)
    model = client.app.state.passos.runtime.current  # type: ignore[attr-defined]

    def broken(*_: object) -> None:
        raise RuntimeError("segredo interno: /srv/models/senha")

    monkeypatch.setattr(type(model), "predict", broken)
    monkeypatch.setattr(type(model), "predict_and_explain", broken)
    response = client.post("/predict", json=RECORD, headers=AUTH)
    assert response.status_code == 500
    assert "segredo" not in response.text and "Traceback" not in response.text
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_cors_from_settings_never_wildcard_with_credentials(make_client: Any) -> None:
    origin = "https://painel.passosmagicos.org.br"
    client = make_client(CORS_ORIGINS=[origin])
    preflight = client.options(
        "/predict", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.headers["access-control-allow-origin"] == origin
    assert preflight.headers.get("access-control-allow-credentials") == "true"
    other = client.get("/health", headers={"Origin": "https://mal.example"})
    assert "access-control-allow-origin" not in other.headers
    wildcard = make_client(CORS_ORIGINS=["*"])
    response = wildcard.get("/health", headers={"Origin": "https://qualquer.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers


def test_openapi_is_in_portuguese_with_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    predict = schema["paths"]["/predict"]["post"]
    assert "Probabilidade" in predict["summary"]
    body = schema["components"]["schemas"]["RegistroAluno"]
    assert body["examples"][0]["ipv"] == RECORD["ipv"]
    assert client.get("/docs").status_code == 200


def test_a_prediction_whose_line_cannot_be_logged_is_served_and_counted(
    make_client: Any, tmp_path: Path
) -> None:
    """A full disk under the log (a real ENOSPC: the log is /dev/full) does not stop serving;
    the lost line is counted in /metrics (tests/faults/test_full_disk.py: all of it)."""
    log = tmp_path / "cheio.jsonl"
    log.symlink_to("/dev/full")
    client = make_client(
        PREDICTION_LOG_PATH=log, MONITORING_STORE_URL=f"sqlite:///{tmp_path / 'mon.db'}"
    )
    response = client.post("/predict", json=RECORD, headers=AUTH)
    assert response.status_code == 200 and response.json()["probabilidade_pv"] >= 0
    metrics = client.get("/metrics").json()
    assert metrics["linhas_perdidas"] == 1 and metrics["total_predicoes"] == 0
