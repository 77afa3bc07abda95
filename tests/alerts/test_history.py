"""The alert store: atomic state transitions across engines, paging, monitoring runs."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from passos_magicos.alerts.history import AlertHistory, AlertState, EventDraft
from tests.alerts.conftest import START

KEY = "drift_features:m:1"
BASE = AlertState(
    dedup_key=KEY,
    active=True,
    severity="aviso",
    title="",
    first_seen_at=START,
    last_sent_at=None,
    pending_resolution=False,
    updated_at=START,
)


def _append_one(current: AlertState | None) -> tuple[AlertState, int]:
    state = current or BASE
    return replace(state, title=state.title + "x"), len(state.title) + 1


def test_transitions_are_atomic_across_engines(store_url: str) -> None:
    """Separate engines (as separate job processes) doing read-modify-write on one key:
    no update may be lost."""
    stores = [AlertHistory(store_url) for _ in range(6)]
    rounds = 8
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def work(store: AlertHistory) -> None:
        barrier.wait()
        try:
            for _ in range(rounds):
                store.transition(KEY, _append_one)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    state = stores[0].alert_state(KEY)
    assert state is not None and state.title == "x" * (len(stores) * rounds)
    for store in stores:
        store.dispose()


def test_transition_writes_the_event_in_the_same_transaction(history: AlertHistory) -> None:
    draft = EventDraft("alerta", "aviso", "T", "texto", delivered=True, dedup_key=KEY)

    def broken(_: AlertState | None) -> tuple[AlertState, None]:
        raise RuntimeError("falhou no meio")

    with pytest.raises(RuntimeError):
        history.transition(KEY, broken, event=draft)
    assert history.events(1, 10) == ([], 0)
    assert history.alert_state(KEY) is None

    assert history.transition(KEY, lambda _: (BASE, "feito"), event=draft) == "feito"
    ((event,), total) = history.events(1, 10)
    assert total == 1 and event.dedup_key == KEY and event.delivered
    assert history.alert_state(KEY) == BASE
    assert history.transition(KEY, lambda current: (None, current)) == BASE  # None: untouched


def test_keys_must_fit_the_column(history: AlertHistory) -> None:
    with pytest.raises(ValueError, match="chave"):
        history.transition("k" * 201, lambda _: (None, None))


def test_events_are_paged_newest_first(history: AlertHistory) -> None:
    for number in range(5):
        history.record(kind="manual", severity="info", title=f"t{number}", text="", delivered=True)
    pages = [history.events(page, 2) for page in (1, 2, 3, 4)]
    assert [[e.title for e in events] for events, _ in pages] == [
        ["t4", "t3"],
        ["t2", "t1"],
        ["t0"],
        [],
    ]
    assert {total for _, total in pages} == {5}


def test_runs_keep_their_report(history: AlertHistory, tmp_path: Path) -> None:
    assert history.latest_run() is None
    history.record_run("2026-03-02T09:00:00+00:00", "ok", {"verificacoes": [{"nome": "a"}]})
    run_id = history.record_run("2026-03-02T10:00:00+00:00", "alerta", {"caminho": tmp_path})
    run = history.latest_run()
    assert run is not None and run["id"] == run_id and run["status"] == "alerta"
    assert run["report"] == {"caminho": str(tmp_path)}
