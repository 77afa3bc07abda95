"""Online feature store: latest cycle per student, versioned materialisation, cached lookups."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from passos_magicos.data.dataset import build_dataset
from passos_magicos.data.storage import SourceFile
from passos_magicos.data.synth import render_synthetic
from passos_magicos.feature_store.online import (
    FEATURE_SET_VERSION,
    AmbiguousStudentError,
    CachedOnlineFeatures,
    FeatureSnapshot,
    FeatureStoreEmptyError,
    OnlineStore,
    StudentFeatures,
    UnknownStudentError,
    latest_cycle_per_student,
)
from passos_magicos.features import FUTURE_SUFFIXES, LABEL, MODEL_INPUTS, model_frame

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """CSV 2020-2022 (ALUNO-n) plus workbook 2022-2024 (RA-n): both id kinds, bare-number
    clashes, and students whose latest cycle is not the latest year."""
    files = [
        SourceFile("s.csv", "s.csv", render_synthetic(students=300, seed=1)),
        SourceFile("s.xlsx", "s.xlsx", render_synthetic(students=300, seed=1, fmt="xlsx")),
    ]
    return build_dataset(files).table


@pytest.fixture(scope="module")
def frame(table: pd.DataFrame) -> pd.DataFrame:
    return latest_cycle_per_student(table)


@pytest.fixture
def store(tmp_path: Path) -> OnlineStore:
    return OnlineStore(f"sqlite:///{tmp_path / 'nested' / 'online.db'}")


def expected_student(row: pd.Series) -> StudentFeatures:
    def clean(value: Any) -> Any:
        if value is None or value is pd.NA:
            return None
        if isinstance(value, float) and math.isnan(value):
            return None
        return value

    return StudentFeatures(
        aluno_id=row["aluno_id"],
        ano=int(row["ano"]),
        turma=clean(row["turma"]),
        genero=clean(row["genero"]),
        features={name: clean(row[name]) for name in MODEL_INPUTS},
    )


# ---------------------------------------------------------------------------------------------
# latest_cycle_per_student


def test_latest_cycle_is_each_students_last_year(table: pd.DataFrame, frame: pd.DataFrame) -> None:
    last_year = table.groupby("aluno_id")["ano"].max()

    assert frame["aluno_id"].is_unique
    assert len(frame) == table["aluno_id"].nunique()
    assert frame.set_index("aluno_id")["ano"].sort_index().equals(last_year.sort_index())
    assert frame["ano"].nunique() > 1  # some students left before the latest year


def test_latest_cycle_has_inputs_and_context_and_no_label(
    table: pd.DataFrame, frame: pd.DataFrame
) -> None:
    assert list(frame.columns) == ["aluno_id", "ano", "turma", "genero", *MODEL_INPUTS]
    assert LABEL not in frame
    assert not [c for c in frame.columns if c.endswith(FUTURE_SUFFIXES)]
    # Same values as the model sees, and turma/genero from the same student-year.
    inputs = model_frame(table).set_index(["aluno_id", "ano"])
    keyed = frame.set_index(["aluno_id", "ano"])
    pd.testing.assert_frame_equal(keyed[list(MODEL_INPUTS)], inputs.loc[keyed.index])
    canonical = table.set_index(["aluno_id", "ano"]).loc[keyed.index]
    assert keyed["turma"].equals(canonical["turma"])
    assert keyed["genero"].equals(canonical["genero"])
    assert keyed["ipv_anterior"].notna().any()  # previous-cycle values are there


# ---------------------------------------------------------------------------------------------
# Materialise and read


def test_materialize_then_snapshot_and_lookup_equal_the_frame(
    store: OnlineStore, frame: pd.DataFrame
) -> None:
    meta = store.materialize(frame, "digest-1")
    snapshot = store.load_active()

    assert snapshot.meta == meta == store.metadata()
    assert len(snapshot) == len(frame)
    for _, row in frame.iterrows():
        expected = expected_student(row)
        assert snapshot.students[row["aluno_id"]] == expected
        assert list(snapshot.students[row["aluno_id"]].features) == list(MODEL_INPUTS)
    sample = frame.iloc[len(frame) // 2]
    assert store.lookup(sample["aluno_id"]) == expected_student(sample)
    assert store.lookup(sample["aluno_id"].lower()) == expected_student(sample)
    assert store.lookup("RA-999999") is None
    round_trip = snapshot.to_frame()
    assert list(round_trip.columns) == ["aluno_id", "ano", "turma", "genero", *MODEL_INPUTS]
    numeric = [c for c in MODEL_INPUTS if c != "pedra"]
    pd.testing.assert_frame_equal(
        round_trip.set_index(round_trip["aluno_id"].astype(str))[numeric].sort_index(),
        frame.set_index(frame["aluno_id"].astype(str))[numeric].sort_index(),
        check_dtype=False,  # an all-missing column comes back as object None
    )


def test_metadata_figures(store: OnlineStore, frame: pd.DataFrame) -> None:
    assert store.metadata() is None
    assert store.active_version() is None

    meta = store.materialize(frame, "abc")

    cycles = dict(sorted(Counter(frame["ano"].tolist()).items()))
    assert meta.version == 1 == store.active_version()
    assert meta.rows == len(frame)
    assert meta.cycles == cycles
    assert meta.latest_cycle == max(cycles)
    assert meta.source_digest == "abc"
    assert re.fullmatch(r"fs-[0-9a-f]{8}", meta.feature_set_version)
    assert meta.feature_set_version == FEATURE_SET_VERSION
    assert meta.feature_columns == MODEL_INPUTS
    assert datetime.fromisoformat(meta.materialized_at).utcoffset() == timedelta(0)
    as_json = json.loads(json.dumps(meta.to_dict()))
    assert as_json["cycles"] == {str(y): n for y, n in cycles.items()}
    assert as_json["version"] == 1


def test_resolve_ids_and_bare_numbers(store: OnlineStore, frame: pd.DataFrame) -> None:
    store.materialize(frame, "d")
    snapshot = store.load_active()
    ids = set(frame["aluno_id"])
    numbers = Counter(int(i.split("-")[1]) for i in ids)
    ambiguous = next(n for n, count in numbers.items() if count > 1)
    unique_ra = next(i for i in sorted(ids) if i.startswith("RA-") and numbers[int(i[3:])] == 1)
    aluno = next(i for i in sorted(ids) if i.startswith("ALUNO-"))

    assert snapshot.resolve(aluno).aluno_id == aluno
    assert snapshot.resolve(aluno.lower()).aluno_id == aluno
    assert snapshot.resolve(f"  {unique_ra.lower()} ").aluno_id == unique_ra
    assert snapshot.resolve(unique_ra[3:]).aluno_id == unique_ra
    with pytest.raises(AmbiguousStudentError) as caught:
        snapshot.resolve(str(ambiguous))
    assert caught.value.candidates == (f"ALUNO-{ambiguous}", f"RA-{ambiguous}")
    assert "informe o identificador completo" in str(caught.value)
    for unknown in ("999999", "RA-999999", "ALUNO-999999", "xyz"):
        with pytest.raises(UnknownStudentError, match="não encontrado"):
            snapshot.resolve(unknown)
    assert isinstance(caught.value, LookupError)
    assert issubclass(UnknownStudentError, LookupError)
    assert snapshot.get(str(ambiguous)) is None
    assert aluno in snapshot
    assert "999999" not in snapshot


def test_second_materialisation_replaces_the_first(store: OnlineStore, frame: pd.DataFrame) -> None:
    store.materialize(frame, "first")
    smaller = frame.iloc[: len(frame) // 2].copy()
    smaller["ipv"] = 5.0
    dropped = frame["aluno_id"].iloc[-1]

    meta = store.materialize(smaller, "second")
    snapshot = store.load_active()

    assert meta.version == 2 == store.active_version()
    assert snapshot.meta.source_digest == "second"
    assert len(snapshot) == len(smaller)
    assert {s.features["ipv"] for s in snapshot.students.values()} == {5.0}
    assert store.lookup(dropped) is None
    assert dropped not in snapshot


def test_versions_older_than_the_previous_are_deleted(tmp_path: Path, frame: pd.DataFrame) -> None:
    url = f"sqlite:///{tmp_path / 'online.db'}"
    store = OnlineStore(url)
    for digest in ("1", "2", "3", "4"):
        store.materialize(frame, digest)

    engine = create_engine(url)
    with engine.connect() as conn:
        row_versions = conn.execute(text("SELECT DISTINCT versao FROM fs_rows")).scalars().all()
        meta_versions = conn.execute(text("SELECT versao FROM fs_versions")).scalars().all()
    engine.dispose()
    assert sorted(row_versions) == [3, 4]  # active and previous (for readers of the old pointer)
    assert sorted(meta_versions) == [3, 4]


def test_an_empty_store_reads_as_nothing(store: OnlineStore) -> None:
    assert store.active_version() is None
    assert store.metadata() is None
    assert store.lookup("RA-1") is None
    with pytest.raises(FeatureStoreEmptyError, match="nenhum conjunto de features"):
        store.load_active()
    cache = CachedOnlineFeatures(store)
    assert cache.refresh_if_changed() is False
    assert cache.snapshot is None
    with pytest.raises(FeatureStoreEmptyError):
        cache.resolve("RA-1")


def test_materialize_rejects_bad_frames(store: OnlineStore, frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="ciclo seguinte"):
        store.materialize(frame.assign(pv_proximo=1), "d")
    with pytest.raises(ValueError, match="ipv_alvo"):
        store.materialize(frame.assign(ipv_alvo=1.0), "d")
    with pytest.raises(ValueError, match=r"colunas ausentes.*ipv"):
        store.materialize(frame.drop(columns="ipv"), "d")
    with pytest.raises(ValueError, match="repetido"):
        store.materialize(pd.concat([frame, frame.head(1)]), "d")
    with pytest.raises(ValueError, match="nenhum aluno"):
        store.materialize(frame.head(0), "d")
    assert store.active_version() is None


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(ValueError, match="arquivo"):
        OnlineStore("sqlite://")


def test_repr_hides_the_password() -> None:
    store = OnlineStore("postgresql+psycopg2://u:segredo@127.0.0.1:1/db")
    assert "segredo" not in repr(store)
    store.dispose()


# ---------------------------------------------------------------------------------------------
# Cache for the API


def test_cache_reloads_only_when_the_version_changes(
    store: OnlineStore, frame: pd.DataFrame
) -> None:
    cache = CachedOnlineFeatures(store)
    store.materialize(frame, "1")

    assert cache.refresh_if_changed() is True
    first = cache.snapshot
    assert first is not None
    assert cache.refresh_if_changed() is False
    assert cache.snapshot is first  # same object: nothing reloaded

    store.materialize(frame.head(10), "2")
    assert cache.refresh_if_changed() is True
    assert cache.snapshot is not None
    assert cache.snapshot.meta.version == 2
    assert len(cache.snapshot) == 10
    assert len(first) == len(frame)  # a snapshot already handed out never changes
    assert cache.resolve(frame["aluno_id"].iloc[0]).aluno_id == frame["aluno_id"].iloc[0]


def test_cache_thread_follows_new_versions(store: OnlineStore, frame: pd.DataFrame) -> None:
    store.materialize(frame, "1")
    cache = CachedOnlineFeatures(store)
    cache.start(interval_seconds=0.02)
    try:
        assert cache.snapshot is not None  # loaded synchronously by start()
        assert cache.snapshot.meta.version == 1
        store.materialize(frame.head(5), "2")
        deadline = time.monotonic() + 5
        while cache.snapshot.meta.version != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cache.snapshot.meta.version == 2
        assert cache.last_error is None
        assert cache.last_checked_at is not None
    finally:
        cache.stop()


def test_cache_keeps_serving_when_the_database_fails(
    store: OnlineStore, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.materialize(frame, "1")
    cache = CachedOnlineFeatures(store)
    cache.start(interval_seconds=0.02)
    try:

        def broken() -> int | None:
            raise RuntimeError("banco fora do ar")

        monkeypatch.setattr(store, "active_version", broken)
        deadline = time.monotonic() + 5
        while cache.last_error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cache.last_error is not None
        assert "banco fora do ar" in cache.last_error
        assert cache.snapshot is not None
        assert len(cache.snapshot) == len(frame)
    finally:
        cache.stop()


# ---------------------------------------------------------------------------------------------
# Atomicity under concurrent readers (also used by the PostgreSQL test)


def two_feature_sets(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Set A: 150 students, every ipv 1.0; set B: 230 students, every ipv 2.0."""
    set_a = frame.iloc[:150].assign(ipv=1.0)
    set_b = frame.iloc[:230].assign(ipv=2.0)
    return set_a.reset_index(drop=True), set_b.reset_index(drop=True)


EXPECTED = {"A": (1.0, 150), "B": (2.0, 230)}


def classify(snapshot: FeatureSnapshot) -> str:
    """'A' or 'B'; AssertionError for anything mixed or partial."""
    digest = snapshot.meta.source_digest
    ipv, count = EXPECTED[digest]
    values = {s.features["ipv"] for s in snapshot.students.values()}
    assert values == {ipv}, f"snapshot misturado: {digest} com ipv {values}"
    assert len(snapshot) == snapshot.meta.rows == count, f"snapshot parcial: {len(snapshot)}"
    return digest


@dataclass
class HammerResult:
    reads: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


def hammer(
    url: str, frame: pd.DataFrame, rounds: int = 20, readers: int = 3
) -> tuple[HammerResult, Any]:
    """Materialise A and B alternately while threads read snapshots, look students up and run
    the cached refresh. Returns what they read and the writer's store."""
    set_a, set_b = two_feature_sets(frame)
    in_both = set_a["aluno_id"].iloc[0]
    only_b = set_b["aluno_id"].iloc[-1]
    writer = OnlineStore(url)
    writer.materialize(set_a, "A")
    result = HammerResult()
    done = threading.Event()
    lock = threading.Lock()

    def record(kind: str) -> None:
        with lock:
            result.reads[kind] += 1

    def failed(error: BaseException) -> None:
        with lock:
            result.errors.append(f"{type(error).__name__}: {error}")

    def snapshot_reader() -> None:
        store = OnlineStore(url)  # its own engine and connections, like another replica
        try:
            while not done.is_set():
                record(classify(store.load_active()))
                both = store.lookup(in_both)
                assert both is not None, "aluno presente em A e B sumiu durante a troca"
                assert both.features["ipv"] in (1.0, 2.0)
                late = store.lookup(only_b)
                assert late is None or late.features["ipv"] == 2.0
        except BaseException as error:
            failed(error)
        finally:
            store.dispose()

    def cache_reader() -> None:
        store = OnlineStore(url)
        cache = CachedOnlineFeatures(store)
        try:
            while not done.is_set():
                cache.refresh_if_changed()
                snapshot = cache.snapshot
                assert snapshot is not None
                record("cache-" + classify(snapshot))
                assert cache.resolve(in_both).features["ipv"] in (1.0, 2.0)
        except BaseException as error:
            failed(error)
        finally:
            store.dispose()

    threads = [threading.Thread(target=snapshot_reader) for _ in range(readers)]
    threads.append(threading.Thread(target=cache_reader))
    for thread in threads:
        thread.start()
    try:
        for index in range(rounds):
            writer.materialize(*((set_b, "B") if index % 2 == 0 else (set_a, "A")))
            time.sleep(0.005)  # let readers see each version
    except BaseException as error:
        failed(error)
    finally:
        done.set()
        for thread in threads:
            thread.join(30)
    return result, writer


def test_readers_see_all_old_or_all_new_during_refreshes(
    tmp_path: Path, frame: pd.DataFrame
) -> None:
    url = f"sqlite:///{tmp_path / 'online.db'}"

    result, writer = hammer(url, frame, rounds=20)

    assert not result.errors, result.errors[:3]
    assert result.reads["A"] > 0
    assert result.reads["B"] > 0
    assert result.reads["cache-A"] + result.reads["cache-B"] > 0
    assert writer.active_version() == 21
    writer.dispose()


READER_PROCESS = """
import json, sys, time
from pathlib import Path
from passos_magicos.feature_store.online import OnlineStore
url, stop = sys.argv[1], Path(sys.argv[2])
expected = {"A": (1.0, 150), "B": (2.0, 230)}
store = OnlineStore(url)
reads, errors = {"A": 0, "B": 0}, []
print("ready", flush=True)
while not stop.exists():
    try:
        snapshot = store.load_active()
        ipv, count = expected[snapshot.meta.source_digest]
        values = {s.features["ipv"] for s in snapshot.students.values()}
        if values != {ipv} or len(snapshot) != count:
            errors.append(f"misturado/parcial: {values} {len(snapshot)}")
        reads[snapshot.meta.source_digest] += 1
    except Exception as error:
        errors.append(f"{type(error).__name__}: {error}")
print(json.dumps({"reads": reads, "errors": errors[:5], "error_count": len(errors)}))
"""


@pytest.mark.slow  # the reader process imports the project (scikit-learn) first
def test_a_reader_process_sees_all_old_or_all_new(tmp_path: Path, frame: pd.DataFrame) -> None:
    url = f"sqlite:///{tmp_path / 'online.db'}"
    set_a, _ = two_feature_sets(frame)
    OnlineStore(url).materialize(set_a, "A")
    stop = tmp_path / "stop"
    process = subprocess.Popen(
        [sys.executable, "-c", READER_PROCESS, url, str(stop)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        result, writer = hammer(url, frame, rounds=20, readers=2)
        writer.dispose()
    finally:
        stop.touch()
        output, _ = process.communicate(timeout=60)
    summary = json.loads(output)

    assert process.returncode == 0
    assert not result.errors, result.errors[:3]
    assert summary["error_count"] == 0, summary["errors"]
    assert summary["reads"]["A"] + summary["reads"]["B"] > 0


def test_cache_start_is_idempotent_and_checks_the_interval(store: OnlineStore) -> None:
    cache = CachedOnlineFeatures(store)
    with pytest.raises(ValueError, match="intervalo"):
        cache.start(0)
    cache.start(10)
    thread = cache._thread
    cache.start(10)
    assert cache._thread is thread
    assert cache.snapshot is None  # nothing materialised yet: no error either
    assert cache.last_error is None
    cache.stop()
    assert thread is not None
    assert not thread.is_alive()


def test_a_failed_first_load_is_retried_soon_not_after_the_interval(
    store: OnlineStore, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod whose database is not up yet (or whose first read fails) gets its features within
    about a second, not after a whole FEATURE_REFRESH_SECONDS (30 in the manifests)."""
    store.materialize(frame, "1")
    real = store.active_version
    failures = {"left": 2}

    def first_reads_fail() -> int | None:
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("banco ainda subindo")
        return real()

    monkeypatch.setattr(store, "active_version", first_reads_fail)
    cache = CachedOnlineFeatures(store)
    cache.start(interval_seconds=60)
    try:
        assert cache.snapshot is None and cache.last_error is not None
        deadline = time.monotonic() + 10
        while cache.snapshot is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cache.snapshot is not None and cache.snapshot.meta.version == 1
        assert cache.last_error is None
    finally:
        cache.stop()
