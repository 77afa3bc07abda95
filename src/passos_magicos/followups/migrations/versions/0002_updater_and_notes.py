"""Who changed a record last (`atualizado_por`, backfilled with the author), an optional note
(`nota`, only stored when FOLLOWUP_NOTES_ENABLED allows it), and one index for the student's
page (aluno_id, ciclo) instead of aluno_id alone.

On SQLite, making `atualizado_por` NOT NULL rebuilds the table (Alembic's batch mode copies
every row): tests/followups/test_migrations.py checks that no record is lost.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
AUTOINCREMENT = {"sqlite_autoincrement": True}


def upgrade() -> None:
    op.add_column("acompanhamentos", sa.Column("atualizado_por", sa.String(100), nullable=True))
    op.add_column("acompanhamentos", sa.Column("nota", sa.Text, nullable=True))
    op.execute("UPDATE acompanhamentos SET atualizado_por = autor WHERE atualizado_por IS NULL")
    # SQLite rebuilds the table here: keep AUTOINCREMENT and its counter, so that the id of a
    # deleted record is never given to a new one.
    bind = op.get_bind()
    sequence = None
    if bind.dialect.name == "sqlite":
        sequence = bind.exec_driver_sql(
            "SELECT seq FROM sqlite_sequence WHERE name = 'acompanhamentos'"
        ).scalar()
    with op.batch_alter_table("acompanhamentos", table_kwargs=AUTOINCREMENT) as batch:
        batch.alter_column("atualizado_por", existing_type=sa.String(100), nullable=False)
    if sequence is not None:
        bind.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = 'acompanhamentos'")
        bind.exec_driver_sql(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('acompanhamentos', ?)",
            (max(int(sequence), _max_id(bind)),),
        )
    op.drop_index("ix_acompanhamentos_aluno_id", table_name="acompanhamentos")
    op.create_index("ix_acompanhamentos_aluno_ciclo", "acompanhamentos", ["aluno_id", "ciclo"])


def _max_id(bind: sa.engine.Connection) -> int:
    return int(
        bind.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM acompanhamentos").scalar() or 0
    )


def downgrade() -> None:
    op.drop_index("ix_acompanhamentos_aluno_ciclo", table_name="acompanhamentos")
    op.create_index("ix_acompanhamentos_aluno_id", "acompanhamentos", ["aluno_id"])
    with op.batch_alter_table("acompanhamentos", table_kwargs=AUTOINCREMENT) as batch:
        batch.drop_column("nota")
        batch.drop_column("atualizado_por")
