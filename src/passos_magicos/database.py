"""What the project's SQL stores share (online features, alert history, monitoring and
realised-performance history, follow-ups): how their engine is made, and creating their
tables when several processes start at once (API workers, replicas, jobs) on a new database."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url

CREATE_ATTEMPTS: Final = 5
SQLITE_BUSY_SECONDS: Final = 30.0


def make_engine(url: str, *, sqlite_wal: bool = False) -> sa.Engine:
    """An engine for one of the stores. Statement parameters (students' data) are hidden from
    every error message and log.

    PostgreSQL: `pool_pre_ping`, since API replicas outlive database restarts and failovers.
    SQLite: the file's folder is created; real transactions (the sqlite3 module does not BEGIN
    before a SELECT, so a read-modify-write would not be atomic): every transaction starts with
    our own BEGIN, DEFERRED, or IMMEDIATE with the `sqlite_begin="IMMEDIATE"` execution option
    so that a writer takes the lock before its first read; a busy timeout so that writers and
    readers wait for each other instead of failing. WAL only when asked (`sqlite_wal`): readers
    never block the writer, but it is not safe on a shared network volume."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, hide_parameters=True)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_SECONDS}, hide_parameters=True
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_SECONDS * 1000)}")
        if sqlite_wal:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough with WAL
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def create_tables(metadata: sa.MetaData, engine: sa.Engine) -> None:
    """Create the missing tables. `create_all` checks, then creates: two processes can both see
    a table missing, and one fails with "already exists" while the other is half-way through
    the rest. Trying again settles it (each try only creates what is still missing)."""
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            metadata.create_all(engine)
            return
        except sa.exc.DBAPIError:
            existing = set(sa.inspect(engine).get_table_names())
            if {table.name for table in metadata.sorted_tables} <= existing:
                return
            if attempt == CREATE_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)
