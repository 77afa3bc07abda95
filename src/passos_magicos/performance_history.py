"""What the model said about each cycle's students and how it turned out, kept in the monitoring
store (MONITORING_STORE_URL: SQLite beside the prediction log by default, PostgreSQL possible).

- `scored_rosters`: the rosters scored by `passos-magicos predict`, one row per (model, version,
  cycle, student); a later roster of the same version and cycle replaces the student's row.
- `realised_performance`: one row per (model, version, cycle) once the outcomes of cycle t+1
  arrived: the realised figures beside the estimate that was available before (JSON record).
- `realised_students`: the per-student join behind that row ("como o modelo se saiu").

Both realised tables are rewritten when a cycle is evaluated again (upsert, never duplicated).
Students are minors: only their pseudonymous file ids are stored, never names. The module sits
below both serving and monitoring (plain SQLAlchemy): `predict` writes rosters, the monitoring
evaluation writes the realised tables, the API reads them.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url

from passos_magicos.database import create_tables, make_engine

INSERT_CHUNK: Final = 500  # rows per executemany: bounded statements on both backends

METADATA = sa.MetaData()
SCORED_ROSTERS = sa.Table(
    "scored_rosters",
    METADATA,
    sa.Column("modelo", sa.String(200), primary_key=True),
    sa.Column("versao", sa.String(40), primary_key=True),
    sa.Column("ciclo", sa.Integer, primary_key=True),  # cycle t of the record that was scored
    sa.Column("aluno_id", sa.String(64), primary_key=True),  # pseudonymous id, never a name
    sa.Column("probabilidade", sa.Float, nullable=False),
    sa.Column("pv_previsto", sa.Boolean, nullable=False),
    sa.Column("limiar", sa.Float, nullable=False),
    sa.Column("pontuado_em", sa.String(40), nullable=False),  # ISO 8601, UTC
    sa.Column("fonte", sa.String(40), nullable=False),  # where the model came from: mlflow | local
    sa.Column("dataset_sha256", sa.String(64), nullable=True),
)
REALISED_PERFORMANCE = sa.Table(
    "realised_performance",
    METADATA,
    sa.Column("modelo", sa.String(200), primary_key=True),
    sa.Column("versao", sa.String(40), primary_key=True),
    sa.Column("ciclo", sa.Integer, primary_key=True),  # outcomes are those of ciclo + 1
    sa.Column("avaliado_em", sa.String(40), nullable=False, index=True),
    sa.Column("estado", sa.String(20), nullable=False),  # ok | alerta | indeterminado
    sa.Column("n", sa.Integer, nullable=False),  # students with an outcome in ciclo + 1
    sa.Column("positivos", sa.Integer, nullable=False),
    sa.Column("registro", sa.Text, nullable=False),  # the full record (JSON)
)
REALISED_STUDENTS = sa.Table(
    "realised_students",
    METADATA,
    sa.Column("modelo", sa.String(200), primary_key=True),
    sa.Column("versao", sa.String(40), primary_key=True),
    sa.Column("ciclo", sa.Integer, primary_key=True),
    sa.Column("aluno_id", sa.String(64), primary_key=True),
    sa.Column("posicao", sa.Integer, nullable=False),  # 1 = most likely to reach PV
    sa.Column("probabilidade", sa.Float, nullable=False),
    sa.Column("pv_previsto", sa.Boolean, nullable=False),
    sa.Column("pv_real", sa.Boolean, nullable=True),  # null: no labelled record in ciclo + 1
    sa.Column("pv_origem", sa.String(20), nullable=True),  # oficial | derivado
    sa.Column("fonte", sa.String(40), nullable=False),  # lista_pontuada | log_de_previsoes
)


@dataclass(frozen=True)
class RosterRow:
    """One student of a scored roster."""

    aluno_id: str
    ciclo: int
    probabilidade: float
    pv_previsto: bool


@dataclass(frozen=True)
class RosterPrediction:
    """A stored roster prediction, as read back."""

    modelo: str
    versao: str
    ciclo: int
    aluno_id: str
    probabilidade: float
    pv_previsto: bool
    limiar: float
    pontuado_em: str
    fonte: str


@dataclass(frozen=True)
class RealisedStudent:
    """One student of an evaluated cycle: what the model said, what happened in t+1."""

    aluno_id: str
    posicao: int
    probabilidade: float
    pv_previsto: bool
    pv_real: bool | None
    pv_origem: str | None
    fonte: str


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class PerformanceHistory:
    """The three tables above on one SQLAlchemy engine (created if missing, like the alert
    history's tables; concurrent creators are tolerated)."""

    def __init__(self, url: str) -> None:
        self.dialect = make_url(url).get_backend_name()
        self.engine = make_engine(url)
        create_tables(METADATA, self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.begin() as connection:
            yield connection

    def _upsert(
        self, connection: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]
    ) -> None:
        """Insert `rows`, replacing the rows with the same primary key."""
        if not rows:
            return
        keys = [column.name for column in table.primary_key.columns]
        if self.dialect in ("sqlite", "postgresql"):
            dialect_insert = sqlite.insert if self.dialect == "sqlite" else postgresql.insert
            statement = dialect_insert(table)
            statement = statement.on_conflict_do_update(
                index_elements=keys,
                set_={c.name: statement.excluded[c.name] for c in table.c if c.name not in keys},
            )
            for start in range(0, len(rows), INSERT_CHUNK):
                connection.execute(statement, list(rows[start : start + INSERT_CHUNK]))
            return
        for row in rows:  # other backends: delete + insert in the caller's transaction
            connection.execute(table.delete().where(sa.and_(*(table.c[k] == row[k] for k in keys))))
        connection.execute(table.insert(), list(rows))

    # -- scored rosters ---------------------------------------------------------------------

    def record_roster(
        self,
        *,
        modelo: str,
        versao: str,
        fonte: str,
        limiar: float,
        rows: Iterable[RosterRow],
        dataset_sha256: str | None = None,
        pontuado_em: str | None = None,
    ) -> int:
        """Store a scored roster (one transaction); returns the number of students."""
        when = pontuado_em or utc_now_iso()
        values = [
            {
                "modelo": modelo,
                "versao": versao,
                "ciclo": int(row.ciclo),
                "aluno_id": row.aluno_id,
                "probabilidade": float(row.probabilidade),
                "pv_previsto": bool(row.pv_previsto),
                "limiar": float(limiar),
                "pontuado_em": when,
                "fonte": fonte,
                "dataset_sha256": dataset_sha256,
            }
            for row in rows
        ]
        with self._write() as connection:
            self._upsert(connection, SCORED_ROSTERS, values)
        return len(values)

    def roster_predictions(self, cycles: Collection[int] | None = None) -> list[RosterPrediction]:
        query = SCORED_ROSTERS.select()
        if cycles is not None:
            query = query.where(SCORED_ROSTERS.c.ciclo.in_(sorted(cycles)))
        with self.engine.connect() as connection:
            return [
                RosterPrediction(
                    modelo=row.modelo,
                    versao=row.versao,
                    ciclo=int(row.ciclo),
                    aluno_id=row.aluno_id,
                    probabilidade=float(row.probabilidade),
                    pv_previsto=bool(row.pv_previsto),
                    limiar=float(row.limiar),
                    pontuado_em=row.pontuado_em,
                    fonte=row.fonte,
                )
                for row in connection.execute(query)
            ]

    def roster_cycles(self) -> list[int]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(SCORED_ROSTERS.c.ciclo).distinct())
            return sorted(int(value) for (value,) in rows)

    # -- realised performance ---------------------------------------------------------------

    def save_realised(self, record: dict[str, Any], students: Sequence[RealisedStudent]) -> None:
        """Upsert one evaluation (`record` holds modelo, versao, ciclo, avaliado_em, estado, n,
        positivos) and replace its students, in one transaction."""
        key = {"modelo": record["modelo"], "versao": record["versao"], "ciclo": record["ciclo"]}
        row = {
            **key,
            "avaliado_em": record["avaliado_em"],
            "estado": record["estado"],
            "n": int(record["n"]),
            "positivos": int(record["positivos"]),
            "registro": json.dumps(record, ensure_ascii=False, allow_nan=False),
        }
        with self._write() as connection:
            # The upsert first: on PostgreSQL its row lock serialises two reruns of one cycle.
            self._upsert(connection, REALISED_PERFORMANCE, [row])
            connection.execute(
                REALISED_STUDENTS.delete().where(
                    sa.and_(*(REALISED_STUDENTS.c[k] == v for k, v in key.items()))
                )
            )
            values = [key | _student_values(s) for s in students]
            for start in range(0, len(values), INSERT_CHUNK):
                connection.execute(REALISED_STUDENTS.insert(), values[start : start + INSERT_CHUNK])

    def realised_records(
        self,
        modelo: str | None = None,
        versao: str | None = None,
        ciclo: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stored records, newest cycle first (then newest evaluation)."""
        table = REALISED_PERFORMANCE
        query = table.select().order_by(table.c.ciclo.desc(), table.c.avaliado_em.desc())
        for column, value in (("modelo", modelo), ("versao", versao), ("ciclo", ciclo)):
            if value is not None:
                query = query.where(table.c[column] == value)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            records = [_record(row.registro) for row in connection.execute(query)]
        return [record for record in records if record]  # an unreadable row is skipped

    def realised_record(self, modelo: str, versao: str, ciclo: int) -> dict[str, Any] | None:
        records = self.realised_records(modelo, versao, ciclo)
        return records[0] if records else None

    def realised_students(
        self, modelo: str, versao: str, ciclo: int, limit: int, offset: int = 0
    ) -> tuple[list[RealisedStudent], int]:
        """The evaluated roster by rank (most likely first), a page of it and the total."""
        table = REALISED_STUDENTS
        where = sa.and_(table.c.modelo == modelo, table.c.versao == versao, table.c.ciclo == ciclo)
        with self.engine.connect() as connection:
            total = connection.execute(sa.select(sa.func.count()).select_from(table).where(where))
            rows = connection.execute(
                table.select().where(where).order_by(table.c.posicao).limit(limit).offset(offset)
            )
            students = [
                RealisedStudent(
                    aluno_id=row.aluno_id,
                    posicao=int(row.posicao),
                    probabilidade=float(row.probabilidade),
                    pv_previsto=bool(row.pv_previsto),
                    pv_real=None if row.pv_real is None else bool(row.pv_real),
                    pv_origem=row.pv_origem,
                    fonte=row.fonte,
                )
                for row in rows
            ]
            return students, int(total.scalar_one())


def _student_values(student: RealisedStudent) -> dict[str, Any]:
    return {
        "aluno_id": student.aluno_id,
        "posicao": student.posicao,
        "probabilidade": student.probabilidade,
        "pv_previsto": student.pv_previsto,
        "pv_real": student.pv_real,
        "pv_origem": student.pv_origem,
        "fonte": student.fonte,
    }


def _record(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
