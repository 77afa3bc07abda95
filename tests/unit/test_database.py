"""The engine every SQL store uses: students' data never in error messages, real
transactions and WAL only where asked on SQLite."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from passos_magicos.database import make_engine


def test_statement_parameters_stay_out_of_error_messages(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'x.db'}")  # folders created
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (aluno_id TEXT PRIMARY KEY)")
        conn.execute(sa.text("INSERT INTO t VALUES (:a)"), {"a": "RA-4242"})
    with pytest.raises(sa.exc.IntegrityError) as error, engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO t VALUES (:a)"), {"a": "RA-4242"})
    assert "RA-4242" not in str(error.value)
    assert "hidden due to hide_parameters" in str(error.value)
    engine.dispose()


def test_journal_mode_is_wal_only_when_asked(tmp_path: Path) -> None:
    modes = {}
    for wal in (False, True):
        engine = make_engine(f"sqlite:///{tmp_path / f'{wal}.db'}", sqlite_wal=wal)
        with engine.connect() as conn:
            modes[wal] = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        engine.dispose()
    assert modes == {False: "delete", True: "wal"}


def test_an_immediate_transaction_holds_the_write_lock_from_its_first_read(
    tmp_path: Path,
) -> None:
    """Two read-modify-write transactions on one counter: with BEGIN IMMEDIATE the second
    waits for the first, so no increment is lost (sqlite3's own handling would not BEGIN
    before the SELECT, and both would read the same value)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE c (n INTEGER)")
        conn.exec_driver_sql("INSERT INTO c VALUES (0)")
    both_read = threading.Barrier(2, timeout=1)

    def increment() -> None:
        with engine.connect() as raw:
            conn = raw.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                n = conn.exec_driver_sql("SELECT n FROM c").scalar_one()
                # The other thread cannot reach its read while this one holds the lock: the
                # barrier breaks after its timeout (without the lock both would read 0).
                with contextlib.suppress(threading.BrokenBarrierError):
                    both_read.wait()
                conn.execute(sa.text("UPDATE c SET n = :n"), {"n": n + 1})

    threads = [threading.Thread(target=increment) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT n FROM c").scalar_one() == 2
    engine.dispose()
