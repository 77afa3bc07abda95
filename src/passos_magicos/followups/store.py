"""The follow-up records in SQL (FOLLOWUPS_STORE_URL; SQLite by default, PostgreSQL in
production and in the integration tests), with their schema under Alembic.

Migrations (`migrate`) run when the API starts and with `passos-magicos followups migrate`.
Several workers or replicas may start at once, so the upgrade runs in one transaction that
first takes a lock: `pg_advisory_xact_lock` on PostgreSQL, `BEGIN IMMEDIATE` (the database's
write lock) on SQLite. The second process waits, then finds the schema at head and does
nothing. DDL is transactional on both, so a failed upgrade leaves the previous schema intact.

Students are minors: only their pseudonymous file ids are stored. Notes (`nota`) are stored
only when FOLLOWUP_NOTES_ENABLED allows them, and the engine hides statement parameters from
error messages (`hide_parameters`), so a database error can never put a note in a log.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from passos_magicos.database import make_engine

VERSION_TABLE: Final = "acompanhamentos_alembic_version"
MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
HEAD: Final = "0002"  # the newest revision under migrations/versions (a test keeps them equal)
PG_LOCK_KEY: Final = 0x5041_5353_4F53_4601  # "PASSOS" + 1: this schema's advisory lock

STATUSES: Final = ("planejado", "em_andamento", "concluido", "cancelado")
STATUS_LABELS: Final = {
    "planejado": "planejado",
    "em_andamento": "em andamento",
    "concluido": "concluído",
    "cancelado": "cancelado",
}
# A follow-up counts as done in the outcome report when it happened (or is happening).
DONE_STATUSES: Final = frozenset({"em_andamento", "concluido"})

METADATA = sa.MetaData()
FOLLOWUPS = sa.Table(  # the schema at HEAD (migrations/versions is the source of truth)
    "acompanhamentos",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("aluno_id", sa.String(64), nullable=False),
    sa.Column("ciclo", sa.Integer, nullable=False),
    sa.Column("tipo", sa.String(60), nullable=False),
    sa.Column("data", sa.Date, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("autor", sa.String(100), nullable=False),
    sa.Column("criado_em", sa.String(40), nullable=False),
    sa.Column("atualizado_em", sa.String(40), nullable=False),
    sa.Column("atualizado_por", sa.String(100), nullable=False),
    sa.Column("nota", sa.Text, nullable=True),
    sqlite_autoincrement=True,
)


class FollowupStoreError(RuntimeError):
    """The store cannot be used right now (message in pt-BR, never with record contents)."""


@dataclass(frozen=True)
class Followup:
    id: int
    aluno_id: str
    ciclo: int
    tipo: str
    data: date
    status: str
    autor: str
    criado_em: str
    atualizado_em: str
    atualizado_por: str
    nota: str | None


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def _locked_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds this schema's write lock until it ends."""
    with engine.connect() as raw:
        connection = raw.execution_options(sqlite_begin="IMMEDIATE")
        with connection.begin():
            if engine.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY}
                )
            yield connection


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: the follow-up tables were never created)."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table(VERSION_TABLE):
            return None
        version = sa.table(VERSION_TABLE, sa.column("version_num"))
        value = connection.execute(sa.select(version.c.version_num)).scalar()
        return None if value is None else str(value)


def migrate(engine: Engine, revision: str = "head") -> str | None:
    """Upgrade the follow-up tables to `revision` (never down), serialised across processes;
    returns the revision the database is at afterwards."""
    from alembic import command

    with _locked_transaction(engine) as connection:
        command.upgrade(_alembic_config(connection), revision)
    return current_revision(engine)


def _followup(row: Any) -> Followup:
    value = row.data
    return Followup(
        id=int(row.id),
        aluno_id=row.aluno_id,
        ciclo=int(row.ciclo),
        tipo=row.tipo,
        data=value if isinstance(value, date) else date.fromisoformat(str(value)),
        status=row.status,
        autor=row.autor,
        criado_em=row.criado_em,
        atualizado_em=row.atualizado_em,
        atualizado_por=row.atualizado_por,
        nota=row.nota,
    )


class FollowupStore:
    """CRUD on the follow-up records. `ready()` migrates once per process (the API calls it at
    start-up and again before a request if that failed, e.g. the database was down)."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self._ready = False
        self._lock = threading.Lock()
        self.last_error: str | None = None

    def dispose(self) -> None:
        self.engine.dispose()

    def ready(self) -> None:
        """Make sure the schema is at head (raises FollowupStoreError when it cannot)."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            try:
                migrate(self.engine)
            except sa.exc.SQLAlchemyError as exc:
                self.last_error = type(exc).__name__
                raise FollowupStoreError(
                    f"armazenamento de acompanhamentos indisponível ({type(exc).__name__})"
                ) from exc
            except Exception as exc:
                if not type(exc).__module__.startswith("alembic"):
                    raise
                # E.g. a newer release migrated the database and this one was rolled back to.
                self.last_error = type(exc).__name__
                raise FollowupStoreError(
                    f"esquema de acompanhamentos incompatível com esta versão: {exc}"
                ) from exc
            self._ready = True
            self.last_error = None

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as raw:
            connection = raw.execution_options(sqlite_begin="IMMEDIATE")
            with connection.begin():
                yield connection

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as connection, connection.begin():
            yield connection

    def create(
        self,
        *,
        aluno_id: str,
        ciclo: int,
        tipo: str,
        data: date,
        status: str,
        autor: str,
        nota: str | None = None,
    ) -> Followup:
        now = utc_now_iso()
        values = {
            "aluno_id": aluno_id,
            "ciclo": ciclo,
            "tipo": tipo,
            "data": data,
            "status": status,
            "autor": autor,
            "criado_em": now,
            "atualizado_em": now,
            "atualizado_por": autor,
            "nota": nota,
        }
        with self._write() as connection:
            inserted = connection.execute(FOLLOWUPS.insert().values(**values))
            (new_id,) = inserted.inserted_primary_key or (None,)
        return Followup(id=int(new_id), **values)  # type: ignore[arg-type]

    def get(self, followup_id: int) -> Followup | None:
        with self._read() as connection:
            row = connection.execute(
                FOLLOWUPS.select().where(FOLLOWUPS.c.id == followup_id)
            ).first()
        return None if row is None else _followup(row)

    def for_student(self, aluno_id: str) -> list[Followup]:
        """Every record of one student, newest cycle first, then by date (newest first)."""
        table = FOLLOWUPS
        query = (
            table.select()
            .where(table.c.aluno_id == aluno_id)
            .order_by(table.c.ciclo.desc(), table.c.data.desc(), table.c.id.desc())
        )
        with self._read() as connection:
            return [_followup(row) for row in connection.execute(query)]

    def page(
        self, ciclo: int | None, status: str | None, limit: int, offset: int
    ) -> tuple[list[Followup], int]:
        """A page of the records (oldest id first, a stable order for paging) and the total."""
        table = FOLLOWUPS
        conditions = []
        if ciclo is not None:
            conditions.append(table.c.ciclo == ciclo)
        if status is not None:
            conditions.append(table.c.status == status)
        where = sa.and_(sa.true(), *conditions)
        with self._read() as connection:
            total = connection.execute(sa.select(sa.func.count()).select_from(table).where(where))
            rows = connection.execute(
                table.select().where(where).order_by(table.c.id).limit(limit).offset(offset)
            )
            return [_followup(row) for row in rows], int(total.scalar_one())

    def update_status(self, followup_id: int, status: str, by: str) -> Followup | None:
        table = FOLLOWUPS
        with self._write() as connection:
            changed = connection.execute(
                table.update()
                .where(table.c.id == followup_id)
                .values(status=status, atualizado_em=utc_now_iso(), atualizado_por=by)
            )
            if changed.rowcount == 0:
                return None
            row = connection.execute(table.select().where(table.c.id == followup_id)).one()
        return _followup(row)

    def delete(self, followup_id: int) -> bool:
        with self._write() as connection:
            deleted = connection.execute(FOLLOWUPS.delete().where(FOLLOWUPS.c.id == followup_id))
        return bool(deleted.rowcount)


def cycle_followups(url: str, ciclo: int) -> dict[str, list[tuple[str, str]]] | None:
    """(tipo, status) of every record of cycle `ciclo`, by student, for the outcome report.

    A reader: it never creates or migrates anything, and reads only the columns of the first
    revision, so any schema version will do. None when the follow-up tables do not exist (no
    API ever started on this database); raises SQLAlchemyError when the database is unusable.
    """
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(FOLLOWUPS.name):
                return None
            table = FOLLOWUPS
            rows = connection.execute(
                sa.select(table.c.aluno_id, table.c.tipo, table.c.status)
                .where(table.c.ciclo == ciclo)
                .order_by(table.c.id)
            )
            found: dict[str, list[tuple[str, str]]] = {}
            for aluno_id, tipo, status in rows:
                found.setdefault(str(aluno_id), []).append((str(tipo), str(status)))
            return found
    finally:
        engine.dispose()
