"""Alembic environment: always run by `passos_magicos.followups.store.migrate`, which hands
over a connection already inside a transaction and holding the migration lock."""

from __future__ import annotations

from alembic import context

from passos_magicos.followups.store import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable by running alembic by hand
    raise RuntimeError(
        "use `passos-magicos followups migrate` (as migrações precisam da trava do projeto)"
    )
context.configure(connection=connection, version_table=VERSION_TABLE)
with context.begin_transaction():  # inside the caller's transaction: committed by it
    context.run_migrations()
