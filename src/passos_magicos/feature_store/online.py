"""Online feature store: the latest cycle of every student, for serving and the dashboard.

Storage is any SQLAlchemy database (a SQLite file by default, PostgreSQL in production) with
three tables:

* `fs_rows`: one row per (versao, aluno_id) with the context columns and the model inputs as
  JSON (the feature set can change with `MODEL_INPUTS` without a schema migration; the
  feature-set hash in the metadata says which columns a version holds);
* `fs_versions`: one row per version with its metadata;
* `fs_state`: a single row holding the active version.

A refresh writes every row of the new version in one transaction (invisible to readers, who
only follow the pointer), flips the pointer in a second short transaction, then deletes the
versions older than the previous one. The previous version stays so that a reader who read the
old pointer still finds its rows. Readers read the pointer and the rows in one transaction
(a snapshot: WAL on SQLite, REPEATABLE READ on PostgreSQL), so they see all-old or all-new.

The API's hot path uses `CachedOnlineFeatures`: an immutable in-memory `FeatureSnapshot`,
replaced as a whole when the active version changes; a lookup is a dict access.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar

import pandas as pd
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    exc,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import make_url

from passos_magicos.database import make_engine
from passos_magicos.feature_store.offline import rows_per_year
from passos_magicos.features import (
    FUTURE_SUFFIXES,
    LABEL,
    MODEL_INPUTS,
    NUMERIC_INPUTS,
    model_frame,
)

logger = logging.getLogger(__name__)

CONTEXT_COLUMNS: Final = ("turma", "genero")
"""Not model inputs: shown and filtered on by the dashboard."""

FEATURE_SET_VERSION: Final = (
    "fs-" + hashlib.sha256("\n".join(MODEL_INPUTS).encode("utf-8")).hexdigest()[:8]
)
"""Identifies the ordered list of feature columns this code writes and the model expects."""

_READ_ATTEMPTS: Final = 5
_ID_PATTERN: Final = re.compile(r"^\s*([A-Za-z]+)\s*-\s*0*(\d+)\s*$")
_NUMBER_PATTERN: Final = re.compile(r"^\s*0*(\d+)\s*$")

FeatureValue = float | str | None

_metadata = MetaData()
_rows = Table(
    "fs_rows",
    _metadata,
    Column("versao", Integer, primary_key=True, autoincrement=False),
    Column("aluno_id", String(64), primary_key=True),
    Column("ano", Integer, nullable=False),
    Column("turma", String(64)),
    Column("genero", String(32)),
    Column("features", Text, nullable=False),
)
_versions = Table(
    "fs_versions",
    _metadata,
    Column("versao", Integer, primary_key=True, autoincrement=False),
    Column("materialized_at", String(40), nullable=False),
    Column("source_digest", String(128), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("feature_set_version", String(32), nullable=False),
    Column("feature_columns", Text, nullable=False),  # JSON list, in order
    Column("cycles", Text, nullable=False),  # JSON {ano: rows}
    Column("latest_cycle", Integer, nullable=False),
)
_state = Table(
    "fs_state",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("active_version", Integer),
)


# ---------------------------------------------------------------------------------------------
# Errors


class FeatureStoreEmptyError(LookupError):
    """Nothing has been materialised yet (message in pt-BR)."""

    def __init__(self) -> None:
        super().__init__(
            "nenhum conjunto de features materializado na loja online: execute o treinamento"
        )


class UnknownStudentError(LookupError):
    def __init__(self, key: str) -> None:
        super().__init__(f"aluno {key!r} não encontrado na loja de features")
        self.key = key


class AmbiguousStudentError(LookupError):
    def __init__(self, key: str, candidates: tuple[str, ...]) -> None:
        super().__init__(
            f"o número {key!r} corresponde a mais de um aluno ({', '.join(candidates)}): "
            "informe o identificador completo"
        )
        self.key = key
        self.candidates = candidates


# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class FeatureSetMeta:
    version: int
    materialized_at: str  # UTC, ISO 8601
    source_digest: str
    rows: int
    feature_set_version: str
    cycles: dict[int, int]  # rows per `ano` (the cycle the features come from)
    latest_cycle: int
    feature_columns: tuple[str, ...] = MODEL_INPUTS

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (string keys), for `GET /features/status` and logs."""
        return {
            "version": self.version,
            "materialized_at": self.materialized_at,
            "source_digest": self.source_digest,
            "rows": self.rows,
            "feature_set_version": self.feature_set_version,
            "cycles": {str(year): count for year, count in self.cycles.items()},
            "latest_cycle": self.latest_cycle,
            "feature_columns": list(self.feature_columns),
        }


@dataclass(frozen=True)
class StudentFeatures:
    aluno_id: str
    ano: int  # the cycle the features come from
    turma: str | None
    genero: str | None
    features: dict[str, FeatureValue]  # exactly the feature columns, NaN as None; read-only


T = TypeVar("T")


class StudentIndex(Generic[T]):
    """The id forms people type, resolved to one entry: `ALUNO-12`, `aluno-12`, `RA-7`, or the
    bare number `12` when only one id has it. Built once, read-only afterwards."""

    __slots__ = ("_by_key", "_by_number", "_items")

    def __init__(self, items: Mapping[str, T]) -> None:
        by_key: dict[str, T] = {}
        by_number: dict[int, list[str]] = {}
        for aluno_id, item in items.items():
            by_key[_normalise_id(aluno_id)] = item
            if (match := _ID_PATTERN.match(aluno_id)) is not None:
                by_number.setdefault(int(match.group(2)), []).append(aluno_id)
        self._items: Mapping[str, T] = MappingProxyType(dict(items))
        self._by_key: Mapping[str, T] = MappingProxyType(by_key)
        self._by_number: Mapping[int, tuple[str, ...]] = MappingProxyType(
            {n: tuple(sorted(ids)) for n, ids in by_number.items()}
        )

    def __len__(self) -> int:
        return len(self._items)

    @property
    def entries(self) -> Mapping[str, T]:
        """Every entry by its exact id."""
        return self._items

    def resolve(self, key: str) -> T:
        """The entry `key` names; UnknownStudentError or AmbiguousStudentError otherwise."""
        if (number := _NUMBER_PATTERN.match(key)) is not None:
            candidates = self._by_number.get(int(number.group(1)), ())
            if len(candidates) > 1:
                raise AmbiguousStudentError(key.strip(), candidates)
            if candidates:
                return self._items[candidates[0]]
            raise UnknownStudentError(key.strip())
        item = self._by_key.get(_normalise_id(key))
        if item is None:
            raise UnknownStudentError(key.strip())
        return item


@dataclass(frozen=True)
class FeatureSnapshot:
    """One version of the feature set, in memory and never modified."""

    meta: FeatureSetMeta
    students: Mapping[str, StudentFeatures]
    _index: StudentIndex[StudentFeatures] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = StudentIndex(self.students)
        # Frozen: set the derived index once, read-only from here on.
        object.__setattr__(self, "students", index.entries)
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.students)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def get(self, key: str) -> StudentFeatures | None:
        """Like `resolve`, but None when unknown or ambiguous."""
        try:
            return self.resolve(key)
        except LookupError:
            return None

    def resolve(self, key: str) -> StudentFeatures:
        """`ALUNO-12`, `aluno-12`, `RA-7`, or the bare number `12` when only one id has it."""
        return self._index.resolve(key)

    def to_frame(self) -> pd.DataFrame:
        """aluno_id, ano, turma, genero and the feature columns, one row per student."""
        columns = ["aluno_id", "ano", *CONTEXT_COLUMNS, *self.meta.feature_columns]
        records = [
            {
                "aluno_id": s.aluno_id,
                "ano": s.ano,
                "turma": s.turma,
                "genero": s.genero,
                **s.features,
            }
            for s in self.students.values()
        ]
        return pd.DataFrame.from_records(records, columns=columns)


def _normalise_id(key: str) -> str:
    match = _ID_PATTERN.match(key)
    if match is None:
        return key.strip().upper()
    return f"{match.group(1).upper()}-{int(match.group(2))}"


# ---------------------------------------------------------------------------------------------
# What gets materialised


def latest_cycle_per_student(table: pd.DataFrame) -> pd.DataFrame:
    """The model inputs of each student's latest cycle, plus turma and genero for filters.

    Only what is known at that cycle: no label and nothing of the following cycle.
    """
    inputs = model_frame(table)
    latest = inputs.sort_values(["aluno_id", "ano"], kind="stable").drop_duplicates(
        "aluno_id", keep="last"
    )
    context = table[["aluno_id", "ano", *CONTEXT_COLUMNS]]
    frame = latest.merge(context, on=["aluno_id", "ano"], how="left", validate="one_to_one")
    frame = frame[["aluno_id", "ano", *CONTEXT_COLUMNS, *MODEL_INPUTS]]
    return frame.sort_values("aluno_id", kind="stable").reset_index(drop=True)


def _check_frame(frame: pd.DataFrame) -> None:
    leaked = [c for c in frame.columns if c == LABEL or str(c).endswith(FUTURE_SUFFIXES)]
    if leaked:
        raise ValueError(
            "a loja online não aceita colunas do ciclo seguinte (rótulo): " + ", ".join(leaked)
        )
    missing = [c for c in ("aluno_id", "ano", *CONTEXT_COLUMNS, *MODEL_INPUTS) if c not in frame]
    if missing:
        raise ValueError("colunas ausentes para materializar as features: " + ", ".join(missing))
    if frame.empty:
        raise ValueError("nenhum aluno para materializar na loja online")
    if frame["aluno_id"].isna().any():
        raise ValueError("há linhas sem aluno_id no conjunto de features")
    duplicated = frame["aluno_id"][frame["aluno_id"].duplicated()]
    if not duplicated.empty:
        shown = ", ".join(map(str, duplicated.head(5)))
        raise ValueError(f"aluno_id repetido no conjunto de features: {shown}")


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _as_float(value: Any) -> float | None:
    return None if _missing(value) else float(value)


def _as_text(value: Any) -> str | None:
    return None if _missing(value) else str(value)


_NUMERIC: Final = frozenset(NUMERIC_INPUTS)


def _feature_value(column: str, value: Any) -> FeatureValue:
    # Numeric inputs as floats, categorical (pedra) as text: the types the model was fit on.
    return _as_float(value) if column in _NUMERIC else _as_text(value)


# ---------------------------------------------------------------------------------------------
# The store


class OnlineStore:
    """Versioned feature set in a SQL database; every write is a new version."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.url = url
        self.dialect = parsed.get_backend_name()
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
                raise ValueError(
                    "a loja online em SQLite precisa de um arquivo (ex.: sqlite:///dados/online.db)"
                )
        # WAL: the API's refresh reads never block a materialisation (a pod's own volume).
        self.engine: Engine = make_engine(url, sqlite_wal=True)

    def __repr__(self) -> str:
        return f"OnlineStore({make_url(self.url).render_as_string(hide_password=True)!r})"

    def dispose(self) -> None:
        self.engine.dispose()

    # -- schema ---------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the tables if needed (the writer does this; readers never create anything)."""
        with self._schema_lock:
            if self._schema_ready:
                return
            try:
                _metadata.create_all(self.engine)
            except exc.DBAPIError:
                # Another process created them at the same moment; fine if they exist now.
                if not inspect(self.engine).has_table(_state.name):
                    raise
            try:
                with self._write() as conn:
                    exists = conn.execute(select(_state.c.id).where(_state.c.id == 1)).first()
                    if exists is None:
                        conn.execute(insert(_state).values(id=1, active_version=None))
            except exc.IntegrityError:
                pass  # another writer inserted the state row first
            self._schema_ready = True

    def _has_schema(self) -> bool:
        # Cached once true: the tables are never dropped while the store is in use.
        if not self._schema_ready and inspect(self.engine).has_table(_state.name):
            self._schema_ready = True
        return self._schema_ready

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        # SQLite: BEGIN IMMEDIATE takes the write lock up front (a read-then-write transaction
        # could otherwise fail with "database is locked" instead of waiting).
        with self.engine.connect() as raw:
            conn = raw.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        # One snapshot for every statement of the transaction.
        with self.engine.connect() as raw:
            conn = raw
            if self.dialect == "postgresql":
                conn = raw.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    # -- writing --------------------------------------------------------------------------------

    def materialize(self, frame: pd.DataFrame, source_digest: str) -> FeatureSetMeta:
        """Write `frame` (from `latest_cycle_per_student`) as a new active version."""
        _check_frame(frame)
        self.ensure_schema()
        cycles = rows_per_year(frame)
        records = frame[["aluno_id", "ano", *CONTEXT_COLUMNS, *MODEL_INPUTS]].to_dict("records")
        rows = [
            {
                "aluno_id": str(record["aluno_id"]),
                "ano": int(record["ano"]),
                "turma": _as_text(record["turma"]),
                "genero": _as_text(record["genero"]),
                "features": json.dumps(
                    {c: _feature_value(c, record[c]) for c in MODEL_INPUTS},
                    ensure_ascii=False,
                    allow_nan=False,
                ),
            }
            for record in records
        ]
        materialized_at = datetime.now(UTC).isoformat(timespec="seconds")

        # 1) The new version's rows and metadata; invisible until the pointer moves.
        with self._write() as conn:
            # Serialises concurrent writers on PostgreSQL (SQLite: BEGIN IMMEDIATE already).
            conn.execute(select(_state.c.id).where(_state.c.id == 1).with_for_update())
            version = (
                int(
                    conn.execute(
                        select(func.coalesce(func.max(_versions.c.versao), 0))
                    ).scalar_one()
                )
                + 1
            )
            meta = FeatureSetMeta(
                version=version,
                materialized_at=materialized_at,
                source_digest=source_digest,
                rows=len(rows),
                feature_set_version=FEATURE_SET_VERSION,
                cycles=cycles,
                latest_cycle=max(cycles),
                feature_columns=MODEL_INPUTS,
            )
            conn.execute(
                insert(_versions).values(
                    versao=version,
                    materialized_at=materialized_at,
                    source_digest=source_digest,
                    rows=len(rows),
                    feature_set_version=FEATURE_SET_VERSION,
                    feature_columns=json.dumps(list(MODEL_INPUTS)),
                    cycles=json.dumps({str(y): n for y, n in cycles.items()}),
                    latest_cycle=meta.latest_cycle,
                )
            )
            conn.execute(insert(_rows), [{"versao": version, **row} for row in rows])

        # 2) Flip the pointer: a one-row update, the only moment readers switch.
        with self._write() as conn:
            previous = conn.execute(
                select(_state.c.active_version).where(_state.c.id == 1)
            ).scalar_one_or_none()
            conn.execute(update(_state).where(_state.c.id == 1).values(active_version=version))

        # 3) Keep the previous version for readers that still hold the old pointer.
        if previous is not None:
            with self._write() as conn:
                conn.execute(delete(_rows).where(_rows.c.versao < previous))
                conn.execute(delete(_versions).where(_versions.c.versao < previous))
        logger.info(
            "loja online: versão %d materializada (%d alunos, ciclos %s)",
            version,
            len(rows),
            cycles,
        )
        return meta

    # -- reading --------------------------------------------------------------------------------

    def active_version(self) -> int | None:
        if not self._has_schema():
            return None
        with self.engine.connect() as conn:
            value = conn.execute(
                select(_state.c.active_version).where(_state.c.id == 1)
            ).scalar_one_or_none()
        return None if value is None else int(value)

    def metadata(self) -> FeatureSetMeta | None:
        if not self._has_schema():
            return None
        with self.engine.connect() as conn:
            return self._active_meta(conn)

    def load_active(self) -> FeatureSnapshot:
        """Every row of the active version, read in one snapshot transaction."""
        if not self._has_schema():
            raise FeatureStoreEmptyError
        for _attempt in range(_READ_ATTEMPTS):
            with self._read() as conn:
                meta = self._active_meta(conn)
                if meta is None:
                    raise FeatureStoreEmptyError
                result = conn.execute(
                    select(
                        _rows.c.aluno_id,
                        _rows.c.ano,
                        _rows.c.turma,
                        _rows.c.genero,
                        _rows.c.features,
                    ).where(_rows.c.versao == meta.version)
                ).all()
            # A snapshot read cannot see a partial version; this guards databases whose
            # transactions are not snapshots (the version would be gone, not half there).
            if len(result) == meta.rows:
                students = {row.aluno_id: _student(row) for row in result}
                return FeatureSnapshot(meta=meta, students=students)
            logger.warning("loja online: versão %d mudou durante a leitura; relendo", meta.version)
        raise RuntimeError("loja online: a versão ativa mudou a cada tentativa de leitura")

    def lookup(self, aluno_id: str) -> StudentFeatures | None:
        """One student of the active version, straight from the database (exact id, any case)."""
        if not self._has_schema():
            return None
        query = (
            select(_rows.c.aluno_id, _rows.c.ano, _rows.c.turma, _rows.c.genero, _rows.c.features)
            .join(_state, _state.c.active_version == _rows.c.versao)
            .where(_state.c.id == 1, _rows.c.aluno_id == _normalise_id(aluno_id))
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _student(row)

    @staticmethod
    def _active_meta(conn: Connection) -> FeatureSetMeta | None:
        query = select(_versions).join(_state, _state.c.active_version == _versions.c.versao)
        row = conn.execute(query.where(_state.c.id == 1)).first()
        if row is None:
            return None
        cycles = {int(y): int(n) for y, n in json.loads(row.cycles).items()}
        return FeatureSetMeta(
            version=int(row.versao),
            materialized_at=row.materialized_at,
            source_digest=row.source_digest,
            rows=int(row.rows),
            feature_set_version=row.feature_set_version,
            cycles=dict(sorted(cycles.items())),
            latest_cycle=int(row.latest_cycle),
            feature_columns=tuple(json.loads(row.feature_columns)),
        )


def _student(row: Any) -> StudentFeatures:
    return StudentFeatures(
        aluno_id=row.aluno_id,
        ano=int(row.ano),
        turma=row.turma,
        genero=row.genero,
        features=json.loads(row.features),
    )


# ---------------------------------------------------------------------------------------------
# In-memory cache for the API


FIRST_LOAD_RETRY_SECONDS: Final = 1.0


class CachedOnlineFeatures:
    """The active feature set in memory; lookups never touch the database.

    `refresh_if_changed` polls the (cheap) active version and reloads the whole snapshot only
    when it changed; the new snapshot replaces the old one by a single reference assignment, so
    a request sees either the old or the new snapshot, never a mix.
    """

    def __init__(self, store: OnlineStore) -> None:
        self.store = store
        self._snapshot: FeatureSnapshot | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_checked_at: str | None = None
        self.last_error: str | None = None

    @property
    def snapshot(self) -> FeatureSnapshot | None:
        return self._snapshot

    def resolve(self, key: str) -> StudentFeatures:
        snapshot = self._snapshot
        if snapshot is None:
            raise FeatureStoreEmptyError
        return snapshot.resolve(key)

    def refresh_if_changed(self) -> bool:
        """Reload when the active version differs from the cached one; True if reloaded."""
        with self._refresh_lock:
            version = self.store.active_version()
            self.last_checked_at = datetime.now(UTC).isoformat(timespec="seconds")
            current = self._snapshot
            if version is None or (current is not None and current.meta.version == version):
                return False
            snapshot = self.store.load_active()
            if current is not None and snapshot.meta.version == current.meta.version:
                return False
            self._snapshot = snapshot  # atomic reference swap
            logger.info(
                "features online: versão %d carregada (%d alunos)",
                snapshot.meta.version,
                len(snapshot),
            )
            return True

    def _refresh_logged(self) -> None:
        try:
            self.refresh_if_changed()
        except Exception as error:  # keep serving the snapshot we have
            self.last_error = f"{type(error).__name__}: {error}"[:500]
            logger.warning("features online: falha ao atualizar: %s", self.last_error)
        else:
            self.last_error = None

    def start(self, interval_seconds: float) -> None:
        """Load now (errors are logged, not raised) and keep refreshing in a daemon thread.

        Until a first snapshot is loaded (database not up yet at a pod's start, a failed first
        read), it tries every FIRST_LOAD_RETRY_SECONDS instead of waiting a whole interval:
        without it, every student lookup answers 503."""
        if interval_seconds <= 0:
            raise ValueError("o intervalo de atualização deve ser positivo")
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._refresh_logged()

        def loop() -> None:
            while not self._stop.wait(
                interval_seconds
                if self._snapshot is not None
                else min(interval_seconds, FIRST_LOAD_RETRY_SECONDS)
            ):
                self._refresh_logged()

        self._thread = threading.Thread(target=loop, name="feature-refresh", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
