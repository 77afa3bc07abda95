"""Alert events, alert state and monitoring runs, kept in a small SQL store that the monitoring
job writes and the API reads (SQLite beside the prediction log by default, PostgreSQL possible;
shared by every replica).

- `alert_events`: every delivery attempt (delivered or not), newest first in the API.
- `alert_state`: one row per dedup key, what the alert policy needs between runs (is it active,
  when was it last delivered, is a resolution still to be announced...). Every change is a
  read-modify-write in one transaction (`AlertHistory.transition`), so two overlapping job runs
  never both act on the same key from the same stale state.
- `monitoring_runs`: the report of each monitoring run (JSON).
- `log_losses`: one row per API process that could not write prediction-log lines (disk full,
  I/O error), with its running count, so that every replica's `/metrics` and the monitoring job
  see the lines lost anywhere (this store lives apart from the log's volume in production).

Timestamps are ISO 8601 strings in UTC (portable, and readable in any SQL client).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url

from passos_magicos.alerts.findings import KEY_CHARS
from passos_magicos.database import create_tables, make_engine

T = TypeVar("T")

METADATA = sa.MetaData()
ALERT_EVENTS = sa.Table(
    "alert_events",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.String(40), nullable=False, index=True),
    # alerta | lembrete | resolvido (policy), teste | manual (API)
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("severity", sa.String(20), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("dedup_key", sa.String(KEY_CHARS), nullable=True, index=True),
    sa.Column("delivered", sa.Boolean, nullable=False),
    sa.Column("detail", sa.String(500), nullable=True),
)
ALERT_STATE = sa.Table(
    "alert_state",
    METADATA,
    sa.Column("dedup_key", sa.String(KEY_CHARS), primary_key=True),
    sa.Column("active", sa.Boolean, nullable=False, index=True),
    sa.Column("severity", sa.String(20), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("first_seen_at", sa.String(40), nullable=False),  # start of the current episode
    sa.Column("last_sent_at", sa.String(40), nullable=True),  # last DELIVERED alert/reminder
    sa.Column("pending_resolution", sa.Boolean, nullable=False),  # "resolvido" not delivered yet
    sa.Column("updated_at", sa.String(40), nullable=False),
    # A run that is sending a message for this key holds it until then (crash: it expires).
    sa.Column("claimed_until", sa.String(40), nullable=True),
)
MONITORING_RUNS = sa.Table(
    "monitoring_runs",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started_at", sa.String(40), nullable=False, index=True),
    sa.Column("finished_at", sa.String(40), nullable=True),
    sa.Column("status", sa.String(40), nullable=False),
    sa.Column("report", sa.Text, nullable=False),  # JSON
)
LOG_LOSSES = sa.Table(
    "log_losses",
    METADATA,
    sa.Column("origin", sa.String(200), primary_key=True),  # host:pid:token of one process
    sa.Column("lost", sa.Integer, nullable=False),  # running count of that process
    sa.Column("first_at", sa.String(40), nullable=False),
    sa.Column("last_at", sa.String(40), nullable=False),
)


@dataclass(frozen=True)
class LogLosses:
    """Prediction-log lines lost by every process so far, and when the last one was lost."""

    total: int
    last_at: str | None
    processes: int


@dataclass(frozen=True)
class AlertEvent:
    id: int
    created_at: str
    kind: str
    severity: str
    title: str
    text: str
    dedup_key: str | None
    delivered: bool
    detail: str | None


@dataclass(frozen=True)
class EventDraft:
    """An alert event to record (`created_at` defaults to now)."""

    kind: str
    severity: str
    title: str
    text: str
    delivered: bool
    detail: str | None = None
    dedup_key: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class AlertState:
    """What is known about one dedup key between runs (datetimes are aware, UTC).

    `severity` is the highest severity announced in the current episode (or the one it started
    with while nothing was delivered); `last_sent_at` is None until an alert of the current
    episode was delivered."""

    dedup_key: str
    active: bool
    severity: str
    title: str
    first_seen_at: datetime
    last_sent_at: datetime | None
    pending_resolution: bool
    updated_at: datetime
    claimed_until: datetime | None = None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def to_iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def from_iso(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class AlertHistory:
    def __init__(self, url: str) -> None:
        self.dialect = make_url(url).get_backend_name()
        # The journal mode is left alone: the history may sit on a shared volume (no WAL).
        self.engine = make_engine(url)
        create_tables(METADATA, self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        # SQLite: BEGIN IMMEDIATE takes the write lock before the first read, so that a
        # read-modify-write waits for another writer instead of failing with "locked".
        # PostgreSQL: the row lock (SELECT ... FOR UPDATE) serialises writers of one key.
        with self.engine.connect() as raw:
            conn = raw.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    # -- events ---------------------------------------------------------------------------------

    def record(
        self,
        *,
        kind: str,
        severity: str,
        title: str,
        text: str,
        delivered: bool,
        detail: str | None = None,
        dedup_key: str | None = None,
    ) -> AlertEvent:
        draft = EventDraft(kind, severity, title, text, delivered, detail, dedup_key)
        with self._write() as connection:
            return _insert_event(connection, draft)

    def events(self, page: int, per_page: int) -> tuple[list[AlertEvent], int]:
        """Newest first."""
        with self.engine.connect() as connection:
            total = connection.execute(sa.select(sa.func.count()).select_from(ALERT_EVENTS))
            rows = connection.execute(
                ALERT_EVENTS.select()
                .order_by(ALERT_EVENTS.c.id.desc())
                .limit(per_page)
                .offset((page - 1) * per_page)
            )
            return [AlertEvent(**row._mapping) for row in rows], int(total.scalar_one())

    # -- alert state ----------------------------------------------------------------------------

    def alert_state(self, key: str) -> AlertState | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                ALERT_STATE.select().where(ALERT_STATE.c.dedup_key == key)
            ).first()
        return None if row is None else _state_from_row(row._mapping)

    def alert_states(self, *, active_only: bool = False) -> list[AlertState]:
        """Oldest episode first."""
        query = ALERT_STATE.select().order_by(ALERT_STATE.c.first_seen_at, ALERT_STATE.c.dedup_key)
        if active_only:
            query = query.where(ALERT_STATE.c.active.is_(True))
        with self.engine.connect() as connection:
            return [_state_from_row(row._mapping) for row in connection.execute(query)]

    def active_alerts(self) -> list[AlertState]:
        return self.alert_states(active_only=True)

    def transition(
        self,
        key: str,
        change: Callable[[AlertState | None], tuple[AlertState | None, T]],
        *,
        event: EventDraft | None = None,
    ) -> T:
        """Read `key`'s state, let `change` compute the new one, write it (and `event`, if any)
        in the same transaction; return what `change` returned besides the state.

        `change` gets the current state (None: never seen) and returns `(new_state, result)`;
        a new state of None leaves the row as it is. It may run twice (a concurrent first
        insert of the same key on PostgreSQL is retried), so it must not have side effects."""
        if not key or len(key) > KEY_CHARS:
            raise ValueError(f"chave de alerta vazia ou com mais de {KEY_CHARS} caracteres")
        for attempt in (1, 2):
            try:
                with self._write() as connection:
                    row = connection.execute(
                        ALERT_STATE.select().where(ALERT_STATE.c.dedup_key == key).with_for_update()
                    ).first()
                    current = None if row is None else _state_from_row(row._mapping)
                    new, result = change(current)
                    if new is not None and new != current:
                        if new.dedup_key != key:
                            raise ValueError("a transição mudou a chave do alerta")
                        values = _state_values(new)
                        if current is None:
                            connection.execute(ALERT_STATE.insert().values(**values))
                        else:
                            connection.execute(
                                ALERT_STATE.update()
                                .where(ALERT_STATE.c.dedup_key == key)
                                .values(**values)
                            )
                    if event is not None:
                        _insert_event(connection, event)
                return result
            except sa.exc.IntegrityError:
                # Two runs inserted the same new key at once (PostgreSQL): read it again.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- monitoring runs ------------------------------------------------------------------------

    def record_run(self, started_at: str, status: str, report: dict[str, Any]) -> int:
        with self._write() as connection:
            result = connection.execute(
                MONITORING_RUNS.insert().values(
                    started_at=started_at,
                    finished_at=now_iso(),
                    status=status,
                    report=json.dumps(report, ensure_ascii=False, default=str),
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def latest_run(self) -> dict[str, Any] | None:
        runs = self.runs(1)
        return runs[0] if runs else None

    def runs(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` runs, newest first: id, started_at, finished_at, status and the
        parsed report (an unreadable report comes back as an empty dict)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                MONITORING_RUNS.select().order_by(MONITORING_RUNS.c.id.desc()).limit(limit)
            ).all()
        return [_run_from_row(row._mapping) for row in rows]

    # -- prediction-log lines lost ---------------------------------------------------------------

    def save_log_losses(self, origin: str, lost: int, first_at: str, last_at: str) -> None:
        """Set the running count of lines `origin` (one process) could not write."""
        values = {"lost": lost, "first_at": first_at, "last_at": last_at}
        with self._write() as connection:
            updated = connection.execute(
                LOG_LOSSES.update().where(LOG_LOSSES.c.origin == origin).values(**values)
            )
            if not updated.rowcount:
                connection.execute(LOG_LOSSES.insert().values(origin=origin, **values))

    def log_losses(self) -> LogLosses:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(LOG_LOSSES.c.lost), 0),
                    sa.func.max(LOG_LOSSES.c.last_at),
                    sa.func.count(),
                ).select_from(LOG_LOSSES)
            ).one()
        return LogLosses(total=int(row[0]), last_at=row[1], processes=int(row[2]))

    def run(self, run_id: int) -> dict[str, Any] | None:
        """One run by id, with its parsed report; None when there is no such run."""
        with self.engine.connect() as connection:
            row = connection.execute(
                MONITORING_RUNS.select().where(MONITORING_RUNS.c.id == run_id)
            ).first()
        return None if row is None else _run_from_row(row._mapping)


def _run_from_row(row: Any) -> dict[str, Any]:
    run = dict(row)
    try:
        report = json.loads(run["report"])
    except (TypeError, ValueError):
        report = {}
    run["report"] = report if isinstance(report, dict) else {}
    return run


def _insert_event(connection: Connection, draft: EventDraft) -> AlertEvent:
    values = {
        "created_at": to_iso(draft.created_at) if draft.created_at else now_iso(),
        "kind": draft.kind,
        "severity": draft.severity,
        "title": draft.title[:200],
        "text": draft.text,
        "dedup_key": draft.dedup_key,
        "delivered": draft.delivered,
        "detail": (draft.detail or "")[:500] or None,
    }
    result = connection.execute(ALERT_EVENTS.insert().values(**values))
    event_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    return AlertEvent(id=event_id, **values)  # type: ignore[arg-type]


def _state_values(state: AlertState) -> dict[str, Any]:
    return {
        "dedup_key": state.dedup_key,
        "active": state.active,
        "severity": state.severity,
        "title": state.title[:200],
        "first_seen_at": to_iso(state.first_seen_at),
        "last_sent_at": to_iso(state.last_sent_at) if state.last_sent_at else None,
        "pending_resolution": state.pending_resolution,
        "updated_at": to_iso(state.updated_at),
        "claimed_until": to_iso(state.claimed_until) if state.claimed_until else None,
    }


def _state_from_row(row: Any) -> AlertState:
    return AlertState(
        dedup_key=row["dedup_key"],
        active=bool(row["active"]),
        severity=row["severity"],
        title=row["title"],
        first_seen_at=from_iso(row["first_seen_at"]),
        last_sent_at=from_iso(row["last_sent_at"]) if row["last_sent_at"] else None,
        pending_resolution=bool(row["pending_resolution"]),
        updated_at=from_iso(row["updated_at"]),
        claimed_until=from_iso(row["claimed_until"]) if row["claimed_until"] else None,
    )
