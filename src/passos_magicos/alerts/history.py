"""Alert events and monitoring runs, kept in a small SQL store that the monitoring job writes
and the API reads (SQLite beside the prediction log by default, shared by every replica)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

METADATA = sa.MetaData()
ALERT_EVENTS = sa.Table(
    "alert_events",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.String(40), nullable=False, index=True),
    sa.Column("kind", sa.String(20), nullable=False),  # alerta | resolvido | teste | manual
    sa.Column("severity", sa.String(20), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("dedup_key", sa.String(200), nullable=True, index=True),
    sa.Column("delivered", sa.Boolean, nullable=False),
    sa.Column("detail", sa.String(500), nullable=True),
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


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class AlertHistory:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        METADATA.create_all(self.engine)

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
        values = {
            "created_at": now_iso(),
            "kind": kind,
            "severity": severity,
            "title": title[:200],
            "text": text,
            "dedup_key": dedup_key,
            "delivered": delivered,
            "detail": (detail or "")[:500] or None,
        }
        with self.engine.begin() as connection:
            result = connection.execute(ALERT_EVENTS.insert().values(**values))
            event_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        return AlertEvent(id=event_id, **values)  # type: ignore[arg-type]

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

    def record_run(self, started_at: str, status: str, report: dict[str, Any]) -> int:
        with self.engine.begin() as connection:
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
        with self.engine.connect() as connection:
            row = connection.execute(
                MONITORING_RUNS.select().order_by(MONITORING_RUNS.c.id.desc()).limit(1)
            ).first()
        if row is None:
            return None
        run = dict(row._mapping)
        run["report"] = json.loads(run["report"])
        return run
