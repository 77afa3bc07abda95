"""A new monitoring database opened by several processes at once (API workers, replicas, the
jobs): every one of them starts, with every table there."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import sqlalchemy as sa

from passos_magicos.alerts.history import METADATA as ALERT_TABLES
from passos_magicos.alerts.history import AlertHistory
from passos_magicos.performance_history import METADATA as PERFORMANCE_TABLES
from passos_magicos.performance_history import PerformanceHistory

PROCESSES = 4
ROUNDS = 6


def _open_both(url: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait(timeout=30)
    AlertHistory(url).dispose()
    PerformanceHistory(url).dispose()


def test_processes_creating_the_tables_together_all_start(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for round_ in range(ROUNDS):
        url = f"sqlite:///{tmp_path / f'monitoring-{round_}.db'}"
        barrier = context.Barrier(PROCESSES)
        workers = [
            context.Process(target=_open_both, args=(url, barrier)) for _ in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert [w.exitcode for w in workers] == [0] * PROCESSES, f"round {round_}"
        engine = sa.create_engine(url)
        tables = set(sa.inspect(engine).get_table_names())
        engine.dispose()
        expected = {
            t.name for t in (*ALERT_TABLES.sorted_tables, *PERFORMANCE_TABLES.sorted_tables)
        }
        assert expected <= tables
