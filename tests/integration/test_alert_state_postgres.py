"""The alert state on a real PostgreSQL: row locks and concurrent first inserts keep every
read-modify-write atomic, and overlapping job runs announce a new alert once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, text

from passos_magicos.alerts.history import AlertHistory
from passos_magicos.alerts.policy import AlertPolicy, Decision
from passos_magicos.alerts.slack import SlackSender
from tests.alerts.test_history import KEY, _append_one
from tests.alerts.test_slack import DRIFT
from tests.slack_receiver import SlackReceiver


@pytest.fixture
def clean_url(postgres_url: str) -> Iterator[str]:
    """The session database without the alert tables (each test starts empty)."""
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        for table in ("alert_events", "alert_state", "monitoring_runs"):
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()
    yield postgres_url


def _together(workers: list[Callable[[], None]]) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(workers))

    def run(work: Callable[[], None]) -> None:
        barrier.wait()
        try:
            work()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def test_transitions_are_atomic_on_postgres(clean_url: str) -> None:
    stores = [AlertHistory(clean_url) for _ in range(6)]
    rounds = 8

    def work(store: AlertHistory) -> Callable[[], None]:
        def run() -> None:
            for _ in range(rounds):
                store.transition(KEY, _append_one)

        return run

    # All of them insert the (new) key at once first: the losers must retry, not fail.
    assert _together([work(s) for s in stores]) == []
    state = stores[0].alert_state(KEY)
    assert state is not None and state.title == "x" * (len(stores) * rounds)
    for store in stores:
        store.dispose()


def test_overlapping_runs_announce_once_on_postgres(
    clean_url: str, slack_receiver: SlackReceiver
) -> None:
    slack_receiver.delay = 0.3
    policies = [
        AlertPolicy(AlertHistory(clean_url), SlackSender(slack_receiver.url), 3600, None)
        for _ in range(3)
    ]
    decisions: list[Decision] = []

    assert _together([lambda p=p: decisions.extend(p.apply([DRIFT])) for p in policies]) == []

    assert len(slack_receiver.requests) == 1
    actions = [d.action for d in decisions]
    assert len(actions) == 3 and actions.count("alerta") == 1
    assert set(actions) - {"alerta"} <= {"em_andamento", "suprimido"}
    assert sum(d.delivered for d in decisions) == 1
    events, total = policies[0].history.events(1, 10)
    assert total == 1 and events[0].delivered
