"""The OpenAPI document describes every response of every operation and the token each one
needs (serving/contract.py); the errors it promises are the ones the API gives, in pt-BR, with
strict JSON types. Schemathesis checks the whole document against a live server
(test_openapi_fuzz.py); these pin what it cannot see at a glance."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from passos_magicos.serving.app import create_app
from passos_magicos.serving.security import SECURITY_SCHEMES
from tests.serving.conftest import ADMIN, AUTH, RECORD, settings_for

API = [{"tokenDeApi": []}, {"tokenDeApiNoCabecalho": []}]
ADMIN_ONLY = [{"tokenAdmin": []}]
ERRO = {"$ref": "#/components/schemas/Erro"}
ERRO_VALIDACAO = {"$ref": "#/components/schemas/ErroValidacao"}


@pytest.fixture(scope="module")
def document(served_root: Any) -> dict[str, Any]:
    app = create_app(settings_for(served_root))
    schema: dict[str, Any] = app.openapi()
    return schema


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_every_token_scheme_is_declared_and_attached(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"] == SECURITY_SCHEMES
    assert SECURITY_SCHEMES["tokenDeApi"] == {
        "type": "http",
        "scheme": "bearer",
        "description": SECURITY_SCHEMES["tokenDeApi"]["description"],
    }
    assert SECURITY_SCHEMES["tokenAdmin"]["name"] == "X-Admin-Token"
    paths = document["paths"]
    for path, method in [
        ("/predict", "post"),
        ("/predict/batch", "post"),
        ("/predict/aluno/{aluno_id}", "get"),
        ("/predict/alunos", "get"),
        ("/alunos/{aluno_id}/historico", "get"),
        ("/model/versions", "get"),
        ("/model/performance", "get"),
        ("/monitoring/runs", "get"),
        ("/alerts/status", "get"),
        ("/alerts/history", "get"),
    ]:
        assert paths[path][method]["security"] == API, (path, method)
    for path in ("/admin/reload-model", "/alerts/send", "/alerts/test"):
        assert paths[path]["post"]["security"] == ADMIN_ONLY, path
    for path in ("/health", "/ready", "/model/info", "/metrics", "/features/status"):
        assert "security" not in paths[path]["get"], path


def test_every_secured_operation_documents_401_and_403(document: dict[str, Any]) -> None:
    secured = [(p, m, op) for p, m, op in operations(document) if op.get("security")]
    assert len(secured) >= 20
    for path, method, operation in secured:
        responses = operation["responses"]
        assert {"401", "403"} <= set(responses), (path, method)
        assert responses["401"]["content"]["application/json"]["schema"] == ERRO
    bearer_401 = document["paths"]["/predict"]["post"]["responses"]["401"]
    assert "WWW-Authenticate" in bearer_401["headers"]


def test_every_error_has_the_projects_body(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert set(schemas["ErroValidacao"]["required"]) == {"detail", "erros", "request_id"}
    assert schemas["ErroValidacao"]["properties"]["detail"]["type"] == "string"
    assert set(schemas["Erro"]["required"]) == {"detail", "request_id"}
    for path, method, operation in operations(document):
        for code, response in operation["responses"].items():
            assert "X-Request-ID" in response["headers"], (path, method, code)
            if code == "422":
                body = response["content"]["application/json"]["schema"]
                assert body == ERRO_VALIDACAO, (path, method)
            elif code[0] in "45" and (path, code) != ("/ready", "503"):
                assert response["content"]["application/json"]["schema"] == ERRO, (path, code)


def test_where_404_409_413_and_503_can_happen_they_are_documented(
    document: dict[str, Any],
) -> None:
    paths = document["paths"]

    def codes(path: str, method: str = "get") -> set[str]:
        return set(paths[path][method]["responses"])

    assert {"404", "409", "503"} <= codes("/predict/aluno/{aluno_id}")
    assert {"413", "503"} <= codes("/predict/batch", "post")
    assert {"413", "503"} <= codes("/predict/alunos")
    assert "413" in codes("/predict", "post")  # any body above MAX_BODY_BYTES
    assert "503" in codes("/model/info")  # before the model loads
    assert {"404", "503"} <= codes("/model/backtest")
    assert "503" in codes("/ready")


def test_request_types_are_strict_where_the_schema_says_boolean_or_integer(
    client: TestClient,
) -> None:
    def status(record: dict[str, Any]) -> int:
        return client.post("/predict", json=record, headers=AUTH).status_code

    assert status(RECORD | {"anterior": {"pv": 0}}) == 422
    assert status(RECORD | {"pv": "true"}) == 422
    assert status(RECORD | {"fase": "3"}) == 422
    assert status(RECORD | {"fase": True}) == 422
    assert status(RECORD | {"inde": "7.5"}) == 422
    assert status(RECORD | {"fase": 3.5}) == 422
    # JSON Schema counts 3.0 as an integer, and an integer is a number.
    assert status(RECORD | {"fase": 3.0, "ano": 2024.0, "inde": 7}) == 200
    answer = client.post("/predict", json=RECORD | {"anterior": {"pv": 0}}, headers=AUTH).json()
    assert answer["erros"] == [{"campo": "anterior.pv", "erro": "deve ser true ou false"}]


def test_framework_refusals_are_in_portuguese_with_a_request_id(client: TestClient) -> None:
    unknown = client.get("/nao-existe")
    assert unknown.status_code == 404
    assert unknown.json()["detail"].startswith("recurso não encontrado")
    assert unknown.json()["request_id"] == unknown.headers["x-request-id"]

    # Starlette's 405 names the first route's methods; the path has both.
    not_allowed = client.put("/acompanhamentos/1", headers=AUTH)
    assert not_allowed.status_code == 405
    assert not_allowed.headers["allow"] == "DELETE, PATCH"
    assert "método não permitido" in not_allowed.json()["detail"]
    assert client.options("/acompanhamentos/opcoes").headers["allow"] == "GET"

    # A body that is not UTF-8 is invalid JSON (422), on every route, not FastAPI's English 400.
    headers = {**ADMIN, "Content-Type": "application/json"}
    garbled = client.post("/alerts/send", content=b"\xff\x03", headers=headers)
    assert garbled.status_code == 422
    assert garbled.json()["erros"] == [{"campo": "corpo", "erro": "JSON inválido"}]
    assert garbled.json()["detail"] == "requisição inválida"


def test_ids_with_characters_no_id_has_are_refused(client: TestClient) -> None:
    """Only the ids' alphabet: a query of thousands of non-ASCII characters would pass the
    server's 64 KiB URL limit (a plain-text 400 from uvicorn, outside the contract)."""
    response = client.get("/predict/alunos", params={"aluno_ids": "RA-1,ALUNO_2, 3"}, headers=AUTH)
    assert response.status_code == 200
    refused = client.get("/predict/alunos", params={"aluno_ids": "RA-1,ção"}, headers=AUTH)
    assert refused.status_code == 422 and refused.json()["erros"][0]["campo"] == "aluno_ids"


def test_the_team_token_is_its_own_scheme_in_swagger(document: dict[str, Any]) -> None:
    followups = document["paths"]["/acompanhamentos"]
    assert followups["post"]["security"] == [{"tokenDaEquipe": []}]
    assert {"tokenDaEquipe": []} in followups["get"]["security"]
    assert "TEAM_TOKENS" in SECURITY_SCHEMES["tokenDaEquipe"]["description"]
