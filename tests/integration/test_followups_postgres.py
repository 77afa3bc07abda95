"""Acompanhamentos on a real PostgreSQL: the API round trip, the upgrade from the previous
revision with records kept, two processes migrating at once (the advisory lock), and a
database that already holds another application's Alembic history (MLflow's)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from passos_magicos.followups.store import HEAD
from tests.followups.helpers import (
    TEAM_TOKENS,
    assert_upgrade_kept_every_record,
    drop_followup_tables,
    migrate_in_two_processes,
    round_trip,
    version_rows,
)
from tests.serving.conftest import AUTH, make_client, served_root  # noqa: F401  # fixtures


@pytest.fixture
def clean_url(postgres_url: str) -> Iterator[str]:
    """The session database without the follow-up tables (each test starts from nothing)."""
    drop_followup_tables(postgres_url)
    yield postgres_url
    drop_followup_tables(postgres_url)


def test_round_trip_on_postgres(clean_url: str, make_client: Any) -> None:  # noqa: F811
    client = make_client(TEAM_TOKENS=TEAM_TOKENS, FOLLOWUPS_STORE_URL=clean_url)
    first = client.get("/predict/alunos", headers=AUTH).json()["previsoes"][0]
    round_trip(client, first["aluno_id"], first["ciclo"])


def test_upgrade_from_the_previous_revision_on_postgres(clean_url: str) -> None:
    # Another application's Alembic history in the same database (MLflow keeps one there).
    engine = sa.create_engine(clean_url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        connection.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
        connection.execute(sa.text("INSERT INTO alembic_version VALUES ('mlflow-rev')"))
    assert_upgrade_kept_every_record(clean_url)
    with engine.begin() as connection:
        untouched = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        connection.execute(sa.text("DROP TABLE alembic_version"))
    engine.dispose()
    assert untouched == [("mlflow-rev",)]


def test_two_processes_migrating_at_once_on_postgres(clean_url: str) -> None:
    results = migrate_in_two_processes(clean_url)
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == HEAD
    assert version_rows(clean_url) == [HEAD]
