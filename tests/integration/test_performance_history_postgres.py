"""Scored rosters and realised performance on a real PostgreSQL: upserts replace instead of
duplicating, and reruns of one cycle that overlap leave one consistent evaluation."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from passos_magicos.performance_history import (
    METADATA,
    PerformanceHistory,
    RealisedStudent,
    RosterRow,
)

MODEL = "passos-magicos-ponto-virada"


@pytest.fixture
def clean_url(postgres_url: str) -> Iterator[str]:
    """The session database without this store's tables (each test starts empty)."""
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        for table in METADATA.sorted_tables:
            conn.execute(text(f"DROP TABLE IF EXISTS {table.name}"))
    engine.dispose()
    yield postgres_url


def record(state: str, n: int) -> dict[str, object]:
    return {
        "modelo": MODEL,
        "versao": "3",
        "ciclo": 2023,
        "avaliado_em": "2026-03-02T09:00:00+00:00",
        "estado": state,
        "n": n,
        "positivos": n // 7,
        "realizado": {"roc_auc": {"valor": 0.75, "ic_inf": 0.7, "ic_sup": 0.8}},
    }


def students(n: int, tag: str) -> list[RealisedStudent]:
    return [
        RealisedStudent(f"RA-{i}", i + 1, 1 - i / n, i < n // 7, i % 5 == 0, "derivado", tag)
        for i in range(n)
    ]


def test_rosters_and_realised_records_upsert_on_postgres(clean_url: str) -> None:
    history = PerformanceHistory(clean_url)
    rows = [RosterRow(f"RA-{i}", 2023, i / 1000, i > 800) for i in range(1000)]
    for when in ("2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00"):
        history.record_roster(
            modelo=MODEL, versao="3", fonte="mlflow", limiar=0.3, rows=rows, pontuado_em=when
        )
    stored = history.roster_predictions({2023})
    assert len(stored) == 1000 and {r.pontuado_em for r in stored} == {"2026-02-01T00:00:00+00:00"}
    assert history.roster_cycles() == [2023]

    history.save_realised(record("alerta", 300), students(300, "lista_pontuada"))
    history.save_realised(record("ok", 200), students(200, "log_de_previsoes"))
    [only] = history.realised_records()
    assert (only["estado"], only["n"]) == ("ok", 200)
    page, total = history.realised_students(MODEL, "3", 2023, limit=50, offset=150)
    assert total == 200 and len(page) == 50 and page[0].posicao == 151
    assert {s.fonte for s in page} == {"log_de_previsoes"}
    history.dispose()


def test_overlapping_reruns_of_one_cycle_leave_one_evaluation(clean_url: str) -> None:
    stores = [PerformanceHistory(clean_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def rerun(index: int, store: PerformanceHistory) -> None:
        barrier.wait()
        try:
            for _ in range(3):
                store.save_realised(record("ok", 100 + index), students(100 + index, f"s{index}"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=rerun, args=(i, s)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    [only] = stores[0].realised_records()
    _, total = stores[0].realised_students(MODEL, "3", 2023, limit=1)
    assert total == only["n"]  # the students are those of the evaluation that won
    for store in stores:
        store.dispose()
