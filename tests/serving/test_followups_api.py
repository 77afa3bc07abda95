"""Acompanhamentos through the API on SQLite: the round trip, each role's access (team tokens
write, API tokens only read, no token 401, nothing configured 403), validation in pt-BR,
OpenAPI, and privacy (notes only for the team; no note, no author name in the logs)."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from passos_magicos.database import make_engine
from passos_magicos.followups.store import FOLLOWUPS
from passos_magicos.serving.security import team_member
from passos_magicos.settings import Settings
from tests.followups.helpers import ANA, BIA, TEAM_TOKENS, round_trip
from tests.serving.conftest import AUTH

NOTE = "NOTA-SIGILOSA: conflito familiar relatado pela mãe"
AUTHOR = "Ana Souza"


@pytest.fixture
def team(make_client: Any, tmp_path: Path) -> Any:
    """A client with team tokens and its own follow-up database; `**overrides` to vary."""

    def make(**overrides: Any) -> TestClient:
        values = {
            "TEAM_TOKENS": TEAM_TOKENS,
            "FOLLOWUPS_STORE_URL": f"sqlite:///{tmp_path / 'acompanhamentos.db'}",
        }
        client: TestClient = make_client(**(values | overrides))
        return client

    return make


def a_student(client: TestClient) -> tuple[str, int]:
    first = client.get("/predict/alunos", headers=AUTH).json()["previsoes"][0]
    return first["aluno_id"], first["ciclo"]


def new(aluno_id: str, ciclo: int, **extra: Any) -> dict[str, Any]:
    return {"aluno_id": aluno_id, "ciclo": ciclo, "tipo": "mentoria", "data": "2024-03-05"} | extra


def test_round_trip_on_sqlite(team: Any) -> None:
    client = team()
    round_trip(client, *a_student(client))


def test_each_role_reads_or_writes_as_documented(team: Any) -> None:
    client = team()
    aluno_id, ciclo = a_student(client)
    record = client.post("/acompanhamentos", json=new(aluno_id, ciclo), headers=ANA).json()
    path = f"/acompanhamentos/{record['id']}"
    writes = [
        ("post", "/acompanhamentos", new(aluno_id, ciclo)),
        ("patch", path, {"status": "concluido"}),
        ("delete", path, None),
    ]
    reads = [f"/alunos/{aluno_id}/acompanhamentos", "/acompanhamentos", "/acompanhamentos/opcoes"]

    def call(method: str, url: str, body: Any, headers: dict[str, str]) -> Any:
        kwargs = {"json": body} if body is not None else {}
        return client.request(method.upper(), url, headers=headers, **kwargs)

    for method, url, body in writes:
        absent = call(method, url, body, {})
        assert absent.status_code == 401 and absent.headers["www-authenticate"] == "Bearer"
        api = call(method, url, body, AUTH)  # a read-only API token
        assert api.status_code == 403 and "só lê" in api.json()["detail"], (method, api.text)
        wrong = call(method, url, body, {"Authorization": "Bearer tok-ana-12"})  # a prefix
        assert wrong.status_code == 403 and wrong.json()["detail"] == "token inválido"
        admin = call(method, url, body, {"Authorization": "Bearer token-admin-teste"})
        assert admin.status_code == 403  # the admin token is not a team token either
    for url in reads:
        assert client.get(url).status_code == 401
        assert client.get(url, headers={"X-API-Token": "nada"}).status_code == 403
        assert client.get(url, headers=AUTH).status_code == 200
        assert client.get(url, headers=BIA).status_code == 200
    # Nothing above changed the record; the team can.
    assert client.patch(path, json={"status": "concluido"}, headers=BIA).json()["status"] == (
        "concluido"
    )
    assert client.delete(path, headers=ANA).status_code == 204


def test_without_team_tokens_nobody_writes(team: Any) -> None:
    client = team(TEAM_TOKENS=None)
    aluno_id, ciclo = a_student(client)
    refused = client.post("/acompanhamentos", json=new(aluno_id, ciclo), headers=AUTH)
    assert refused.status_code == 403 and "TEAM_TOKENS" in refused.json()["detail"]
    assert client.post("/acompanhamentos", json=new(aluno_id, ciclo)).status_code == 403
    assert client.get("/acompanhamentos", headers=AUTH).json()["total"] == 0
    options = client.get("/acompanhamentos/opcoes", headers=AUTH).json()
    assert options["escrita_habilitada"] is False and options["notas_permitidas"] is False
    closed = team(TEAM_TOKENS=None, API_TOKENS=None)
    listing = closed.get("/acompanhamentos", headers=AUTH)
    assert listing.status_code == 403 and "nenhum token configurado" in listing.json()["detail"]


def test_malformed_team_entries_grant_nothing_and_are_logged_without_secrets(
    team: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    client = team(TEAM_TOKENS="sem-dois-pontos-segredo,:token-sem-nome,ana:tok-ana-123")
    aluno_id, ciclo = a_student(client)
    for token in ("sem-dois-pontos-segredo", "token-sem-nome", ""):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        assert client.post(
            "/acompanhamentos", json=new(aluno_id, ciclo), headers=headers
        ).status_code in (401, 403)
    assert (
        client.post("/acompanhamentos", json=new(aluno_id, ciclo), headers=ANA).json()["autor"]
        == "ana"
    )
    assert "entrada 1 de TEAM_TOKENS ignorada" in caplog.text
    assert "entrada 2 de TEAM_TOKENS ignorada" in caplog.text
    assert "segredo" not in caplog.text and "token-sem-nome" not in caplog.text


def test_every_team_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    settings = Settings(_env_file=None, TEAM_TOKENS="a:t1,b:t2,c:t3")  # type: ignore[call-arg]
    for presented, expected in (("t1", "a"), ("t3", "c"), ("x", None)):
        calls.clear()
        assert team_member(presented, settings) == expected
        assert len(calls) == 3, "no early exit: every token is compared"


def test_validation_errors_in_portuguese(team: Any) -> None:
    client = team()
    aluno_id, ciclo = a_student(client)

    def errors(body: dict[str, Any]) -> dict[str, str]:
        response = client.post("/acompanhamentos", json=body, headers=ANA)
        assert response.status_code == 422, response.text
        assert response.json()["detail"] == "requisição inválida"
        return {e["campo"]: e["erro"] for e in response.json()["erros"]}

    assert "tipo desconhecido" in errors(new(aluno_id, ciclo, tipo="terapia"))["tipo"]
    assert "reforço escolar" in errors(new(aluno_id, ciclo, tipo="terapia"))["tipo"]
    assert "notas livres desabilitadas" in errors(new(aluno_id, ciclo, nota="x"))["nota"]
    assert f"registros até o ciclo {ciclo}" in errors(new(aluno_id, ciclo + 1))["ciclo"]
    assert (
        errors(new(aluno_id, ciclo, data="05/03/2024"))["data"] == "deve ser uma data (AAAA-MM-DD)"
    )
    assert "use um de" in errors(new(aluno_id, ciclo, status="feito"))["status"]
    assert errors({"ciclo": ciclo, "tipo": "mentoria", "data": "2024-01-01", "autor": "x"}) == {
        "aluno_id": "campo obrigatório ausente",
        "autor": "campo desconhecido",  # the author comes from the token, never the body
    }
    unknown = client.post("/acompanhamentos", json=new("RA-999999", 2024), headers=ANA)
    assert unknown.status_code == 404 and "não encontrado" in unknown.json()["detail"]
    assert (
        client.patch("/acompanhamentos/0", json={"status": "concluido"}, headers=ANA).status_code
        == 422
    )
    huge = client.patch(f"/acompanhamentos/{2**40}", json={"status": "concluido"}, headers=ANA)
    assert huge.status_code == 422  # never reaches the INTEGER column
    assert client.get("/acompanhamentos", params={"ciclo": 1999}, headers=AUTH).status_code == 422


def test_openapi_describes_responses_and_security(team: Any) -> None:
    schema = team().get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["tokenDaEquipe"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["tokenDaEquipe"]["description"],
    }
    assert "TEAM_TOKENS" in schemes["tokenDaEquipe"]["description"]
    assert schemes["tokenDeApiNoCabecalho"]["in"] == "header"
    operations = [
        ("/acompanhamentos", "post", {"201", "401", "403", "404", "409", "422", "503"}),
        ("/acompanhamentos", "get", {"200", "401", "403", "422", "503"}),
        ("/acompanhamentos/opcoes", "get", {"200", "401", "403"}),
        ("/alunos/{aluno_id}/acompanhamentos", "get", {"200", "401", "403", "409", "422", "503"}),
        ("/acompanhamentos/{acompanhamento_id}", "patch", {"200", "401", "403", "404", "422"}),
        ("/acompanhamentos/{acompanhamento_id}", "delete", {"204", "401", "403", "404", "422"}),
    ]
    for path, method, codes in operations:
        operation = schema["paths"][path][method]
        assert operation["tags"] == ["acompanhamentos"]
        assert codes <= set(operation["responses"]), (path, method, operation["responses"])
        # Reads: a team token or an API token (either header); writes: a team token only.
        expected = (
            {"tokenDaEquipe", "tokenDeApi", "tokenDeApiNoCabecalho"}
            if method == "get"
            else {"tokenDaEquipe"}
        )
        assert {name for item in operation["security"] for name in item} == expected
        if "422" in codes:  # our body, not FastAPI's default HTTPValidationError
            described = operation["responses"]["422"]["content"]["application/json"]["schema"]
            assert described["$ref"].endswith("/ErroValidacao"), (path, method)


def test_no_note_and_no_author_name_in_the_logs(
    team: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = team(FOLLOWUP_NOTES_ENABLED=True)
    aluno_id, ciclo = a_student(client)
    created = client.post("/acompanhamentos", json=new(aluno_id, ciclo, nota=NOTE), headers=ANA)
    assert created.status_code == 201 and created.json()["nota"] == NOTE
    record_id = created.json()["id"]
    path = f"/acompanhamentos/{record_id}"
    assert client.patch(path, json={"status": "concluido"}, headers=ANA).status_code == 200
    listed = client.get(f"/alunos/{aluno_id}/acompanhamentos", headers=ANA).json()["itens"]
    assert listed[0]["nota"] == NOTE  # the team reads notes; API tokens never do
    redacted = client.get(f"/alunos/{aluno_id}/acompanhamentos", headers=AUTH).json()["itens"]
    assert redacted[0]["nota"] is None and redacted[0]["id"] == record_id
    page = client.get("/acompanhamentos", headers=AUTH).json()["itens"]
    assert [r["nota"] for r in page] == [None]
    assert client.get("/acompanhamentos", headers=BIA).json()["itens"][0]["nota"] == NOTE
    too_long = client.post(
        "/acompanhamentos", json=new(aluno_id, ciclo, nota=NOTE * 20), headers=ANA
    )
    assert too_long.status_code == 422 and NOTE not in too_long.text
    # The store breaks under the API: a 503, and still nothing of the record in the logs.
    engine = make_engine(f"sqlite:///{tmp_path / 'acompanhamentos.db'}")
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE acompanhamentos RENAME TO quebrada"))
    engine.dispose()
    broken = client.post("/acompanhamentos", json=new(aluno_id, ciclo, nota=NOTE), headers=ANA)
    assert broken.status_code == 503 and NOTE not in broken.text
    logged = "\n".join(
        caplog.text.splitlines()
        + [str(r.exc_info) for r in caplog.records if r.exc_info]
        + [str(r.args) for r in caplog.records]
    )
    assert "acompanhamento" in logged  # the actions are logged, by id
    for secret in ("NOTA-SIGILOSA", "conflito familiar", AUTHOR, "Ana", "tok-ana-123"):
        assert secret not in logged, secret


def test_database_errors_never_carry_the_values(tmp_path: Path) -> None:
    """hide_parameters: a failed INSERT's message (what any handler would log) has no values."""
    engine = make_engine(f"sqlite:///{tmp_path / 'vazio.db'}")  # no tables: the insert fails
    with pytest.raises(sa.exc.OperationalError) as raised, engine.begin() as connection:
        connection.execute(FOLLOWUPS.insert().values(aluno_id="RA-1", nota=NOTE, autor=AUTHOR))
    assert "NOTA-SIGILOSA" not in str(raised.value) and AUTHOR not in str(raised.value)
    assert "hidden due to hide_parameters" in str(raised.value)
    engine.dispose()
