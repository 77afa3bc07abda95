"""The online feature store on a real PostgreSQL: materialise, read, refresh under readers."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from passos_magicos.data.dataset import build_dataset
from passos_magicos.data.storage import SourceFile
from passos_magicos.data.synth import render_synthetic
from passos_magicos.feature_store.online import (
    AmbiguousStudentError,
    CachedOnlineFeatures,
    OnlineStore,
    latest_cycle_per_student,
)
from passos_magicos.features import MODEL_INPUTS
from tests.feature_store.test_online import expected_student, hammer


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    files = [
        SourceFile("s.csv", "s.csv", render_synthetic(students=300, seed=1)),
        SourceFile("s.xlsx", "s.xlsx", render_synthetic(students=300, seed=1, fmt="xlsx")),
    ]
    return latest_cycle_per_student(build_dataset(files).table)


@pytest.fixture
def clean_url(postgres_url: str) -> Iterator[str]:
    """The session database with the feature store tables dropped before each test."""
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        for table in ("fs_rows", "fs_versions", "fs_state"):
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()
    yield postgres_url


def test_materialize_and_read_on_postgres(clean_url: str, frame: pd.DataFrame) -> None:
    store = OnlineStore(clean_url)
    assert store.active_version() is None

    first = store.materialize(frame, "pg-1")
    snapshot = store.load_active()

    assert snapshot.meta == first == store.metadata()
    assert first.version == 1
    for _, row in frame.iterrows():
        assert snapshot.students[row["aluno_id"]] == expected_student(row)
    sample = frame.iloc[7]
    assert store.lookup(sample["aluno_id"]) == expected_student(sample)
    assert list(snapshot.students[sample["aluno_id"]].features) == list(MODEL_INPUTS)
    with pytest.raises(AmbiguousStudentError):
        snapshot.resolve("2")

    for digest in ("pg-2", "pg-3"):
        store.materialize(frame.head(20), digest)
    with store.engine.connect() as conn:
        versions = conn.execute(text("SELECT DISTINCT versao FROM fs_rows")).scalars().all()
    assert sorted(versions) == [2, 3]
    cache = CachedOnlineFeatures(store)
    assert cache.refresh_if_changed() is True
    assert cache.snapshot is not None
    assert len(cache.snapshot) == 20
    assert cache.snapshot.meta.source_digest == "pg-3"
    store.dispose()


def test_readers_see_all_old_or_all_new_on_postgres(clean_url: str, frame: pd.DataFrame) -> None:
    result, writer = hammer(clean_url, frame, rounds=20)

    assert not result.errors, result.errors[:3]
    assert result.reads["A"] > 0
    assert result.reads["B"] > 0
    assert writer.active_version() == 21
    writer.dispose()
