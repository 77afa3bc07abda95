"""Initial schema: one row per follow-up (student, cycle, type, date, status, author).

Revision ID: 0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "acompanhamentos",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("aluno_id", sa.String(64), nullable=False),  # pseudonymous id, never a name
        sa.Column("ciclo", sa.Integer, nullable=False),  # cycle t of the flagged record
        sa.Column("tipo", sa.String(60), nullable=False),
        sa.Column("data", sa.Date, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("autor", sa.String(100), nullable=False),  # the team token's name
        sa.Column("criado_em", sa.String(40), nullable=False),  # ISO 8601, UTC
        sa.Column("atualizado_em", sa.String(40), nullable=False),
        sqlite_autoincrement=True,  # ids of deleted records are never reused
    )
    op.create_index("ix_acompanhamentos_ciclo", "acompanhamentos", ["ciclo"])
    op.create_index("ix_acompanhamentos_aluno_id", "acompanhamentos", ["aluno_id"])


def downgrade() -> None:
    op.drop_table("acompanhamentos")
