"""Shared by the follow-up tests on SQLite and on PostgreSQL: a database at the first
revision with records in it, the concurrent-migration race in two processes, and the API
round trip."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from passos_magicos.database import make_engine
from passos_magicos.followups.store import (
    FOLLOWUPS,
    HEAD,
    VERSION_TABLE,
    FollowupStore,
    current_revision,
    migrate,
)

REPO = Path(__file__).resolve().parents[2]
TEAM_TOKENS = "Ana Souza:tok-ana-123,bia:tok-bia-456"
ANA = {"Authorization": "Bearer tok-ana-123"}
BIA = {"X-API-Token": "tok-bia-456"}  # the team token also works in the API-token header
OLD_ROWS = [  # written with the 0001 schema: no atualizado_por, no nota
    {
        "aluno_id": f"RA-{i}",
        "ciclo": 2023,
        "tipo": tipo,
        "data": f"2024-0{i}-1{i}",
        "status": status,
        "autor": autor,
        "criado_em": f"2024-0{i}-1{i}T10:00:00+00:00",
        "atualizado_em": f"2024-0{i}-2{i}T10:00:00+00:00",
    }
    for i, (tipo, status, autor) in enumerate(
        [
            ("mentoria", "concluido", "ana"),
            ("reforço escolar", "em_andamento", "Bia Lima"),
            ("conversa com a família", "planejado", "ana"),
            ("outro", "cancelado", "caio"),
        ],
        start=1,
    )
]


def drop_followup_tables(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP TABLE IF EXISTS {FOLLOWUPS.name}"))
        connection.execute(sa.text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
    engine.dispose()


def database_at_first_revision_with_records(url: str) -> list[int]:
    """The schema of revision 0001 with OLD_ROWS in it (the last one deleted again, so that its
    id must never be reused); returns the ids that remain."""
    engine = make_engine(url)
    assert migrate(engine, "0001") == "0001"
    old = sa.table("acompanhamentos", *(sa.column(name) for name in OLD_ROWS[0]), sa.column("id"))
    with engine.begin() as connection:
        for row in OLD_ROWS:
            connection.execute(sa.insert(old).values(**row))
        ids = [int(i) for (i,) in connection.execute(sa.select(old.c.id).order_by(old.c.id))]
        connection.execute(sa.delete(old).where(old.c.id == ids[-1]))
    engine.dispose()
    return ids[:-1]


def assert_upgrade_kept_every_record(url: str) -> None:
    """Shared with the PostgreSQL test: 0001 with records → head through the store."""
    kept = database_at_first_revision_with_records(url)
    store = FollowupStore(url)
    store.ready()  # what the API does on start-up
    assert current_revision(store.engine) == HEAD
    rows = {r.id: r for r in store.page(None, None, 100, 0)[0]}
    assert sorted(rows) == kept
    for row_id, old in zip(kept, OLD_ROWS, strict=False):
        row = rows[row_id]
        assert (row.aluno_id, row.ciclo, row.tipo, row.status, row.autor) == (
            old["aluno_id"],
            old["ciclo"],
            old["tipo"],
            old["status"],
            old["autor"],
        )
        assert row.data == date.fromisoformat(old["data"])
        assert (row.criado_em, row.atualizado_em) == (old["criado_em"], old["atualizado_em"])
        assert row.atualizado_por == old["autor"] and row.nota is None  # backfilled, new column
    # The new schema works, and the deleted record's id is not given again.
    added = store.create(
        aluno_id="RA-9",
        ciclo=2024,
        tipo="mentoria",
        data=date(2025, 1, 2),
        status="planejado",
        autor="ana",
        nota=None,
    )
    assert added.id > len(OLD_ROWS)
    store.ready()  # idempotent
    store.dispose()


# Each process pauses between reading the schema version and acting on it, so that without
# the lock both would see "no schema" and both create it (the race really happens).
MIGRATE_SCRIPT = """
import sys, time
from alembic.runtime.migration import MigrationContext
from passos_magicos.database import make_engine
from passos_magicos.followups.store import migrate
read_heads = MigrationContext.get_current_heads
def slow_heads(self):
    heads = read_heads(self)
    time.sleep(0.5)
    return heads
MigrationContext.get_current_heads = slow_heads
engine = make_engine(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
print(migrate(engine))
"""


def migrate_in_two_processes(url: str) -> list[subprocess.CompletedProcess[str]]:
    """Two processes start the upgrade at the same instant (as two API workers would)."""
    start = time.time() + 2.5  # both have imported SQLAlchemy and Alembic by then
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE_SCRIPT, url, str(start)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def version_rows(url: str) -> list[str]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        table = sa.table(VERSION_TABLE, sa.column("version_num"))
        rows = connection.execute(sa.select(table.c.version_num)).all()
    engine.dispose()
    return [str(r[0]) for r in rows]


def round_trip(client: TestClient, aluno_id: str, ciclo: int) -> None:
    """Create, read (by student and by cycle, paged), change status, delete: through the API."""
    number = aluno_id.split("-")[1]
    created = []
    for tipo, status in (("Mentoria", "planejado"), ("reforço escolar", "em_andamento")):
        # The id as the team types it (just the number); the store keeps the file's id.
        body = {"aluno_id": number, "ciclo": ciclo, "tipo": tipo, "data": "2024-03-05"}
        response = client.post("/acompanhamentos", json={**body, "status": status}, headers=ANA)
        assert response.status_code == 201, response.text
        created.append(response.json())
    first, second = created
    assert first["aluno_id"] == aluno_id and first["autor"] == "Ana Souza"
    assert first["tipo"] == "mentoria"  # the configured spelling
    assert first["atualizado_por"] == "Ana Souza" and first["nota"] is None
    assert response.headers["location"] == f"/alunos/{aluno_id}/acompanhamentos"
    third = client.post(
        "/acompanhamentos",
        json={"aluno_id": aluno_id, "ciclo": ciclo - 1, "tipo": "outro", "data": "2023-01-02"},
        headers=BIA,
    ).json()
    assert third["status"] == "planejado" and third["autor"] == "bia"

    listed = client.get(f"/alunos/{aluno_id.lower()}/acompanhamentos", headers=BIA).json()
    assert listed["aluno_id"] == aluno_id
    assert [r["id"] for r in listed["itens"]] == [second["id"], first["id"], third["id"]]

    pages: list[dict[str, Any]] = [
        client.get(
            "/acompanhamentos",
            params={"ciclo": ciclo, "pagina": page, "por_pagina": 1},
            headers={"Authorization": "Bearer token-de-teste-1"},  # an API token reads
        ).json()
        for page in (1, 2, 3)
    ]
    assert [p["total"] for p in pages] == [2, 2, 2]
    assert [[r["id"] for r in p["itens"]] for p in pages] == [[first["id"]], [second["id"]], []]

    changed = client.patch(
        f"/acompanhamentos/{first['id']}", json={"status": "concluido"}, headers=BIA
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["status"], body["autor"], body["atualizado_por"]) == (
        "concluido",
        "Ana Souza",
        "bia",
    )
    assert body["criado_em"] == first["criado_em"]

    assert client.delete(f"/acompanhamentos/{third['id']}", headers=ANA).status_code == 204
    assert client.delete(f"/acompanhamentos/{third['id']}", headers=ANA).status_code == 404
    missing = client.patch(
        f"/acompanhamentos/{third['id']}", json={"status": "cancelado"}, headers=ANA
    )
    assert missing.status_code == 404 and "não existe" in missing.json()["detail"]
    left = client.get(f"/alunos/{aluno_id}/acompanhamentos", headers=ANA).json()["itens"]
    assert [(r["id"], r["status"]) for r in left] == [
        (second["id"], "em_andamento"),
        (first["id"], "concluido"),
    ]
    # A new record never takes the id of a deleted one.
    again = client.post(
        "/acompanhamentos",
        json={"aluno_id": aluno_id, "ciclo": ciclo, "tipo": "outro", "data": "2024-04-01"},
        headers=ANA,
    ).json()
    assert again["id"] > third["id"]
