"""Offline feature store: Parquet partitioned by year, lossless, replaced atomically."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from passos_magicos.data.dataset import build_dataset
from passos_magicos.data.schema import CANONICAL_COLUMNS, CANONICAL_DTYPES, empty_canonical
from passos_magicos.data.storage import SourceFile
from passos_magicos.data.synth import render_synthetic
from passos_magicos.feature_store.offline import (
    OfflineInfo,
    OfflineStoreCorruptError,
    OfflineStoreNotFoundError,
    read_offline,
    write_offline,
)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    content = render_synthetic(students=300, seed=1)
    return build_dataset([SourceFile("s.csv", "s.csv", content)]).table


def test_round_trip_is_lossless(table: pd.DataFrame, tmp_path: Path) -> None:
    root = tmp_path / "offline"
    written = write_offline(table, "digest-1", root)

    frame, info = read_offline(root)

    pd.testing.assert_frame_equal(frame, table)
    assert dict(frame.dtypes.astype(str)) == {c: str(t) for c, t in CANONICAL_DTYPES.items()}
    assert info == written
    # The synthetic table has gaps (no previous-cycle data, missing rankings): they survive.
    assert frame["ranking_geral"].isna().any()
    assert frame.isna().sum().equals(table.isna().sum())


def test_unsorted_input_comes_back_sorted(table: pd.DataFrame, tmp_path: Path) -> None:
    shuffled = table.sample(frac=1.0, random_state=3)

    write_offline(shuffled, "d", tmp_path / "offline")
    frame, _ = read_offline(tmp_path / "offline")

    pd.testing.assert_frame_equal(frame, table)


def test_partitions_by_year_in_hive_layout(table: pd.DataFrame, tmp_path: Path) -> None:
    root = tmp_path / "offline"
    write_offline(table, "d", root)

    years = sorted(int(y) for y in table["ano"].unique())
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [f"ano={y}" for y in years]
    for year in years:
        files = list((root / f"ano={year}").glob("*.parquet"))
        assert len(files) == 1
        schema = pq.read_schema(files[0])
        assert "ano" not in schema.names  # the partition column lives in the directory name
        assert pq.read_metadata(files[0]).num_rows == int((table["ano"] == year).sum())
    # Any Hive-aware reader sees the year as a column.
    dataset = ds.dataset(root, format="parquet", partitioning="hive")
    assert dataset.to_table().num_rows == len(table)
    assert set(dataset.to_table(columns=["ano"]).column("ano").to_pylist()) == set(years)


def test_metadata_describes_the_write(table: pd.DataFrame, tmp_path: Path) -> None:
    root = tmp_path / "offline"
    info = write_offline(table, "abc123", root)

    metadata = json.loads((root / "_metadata.json").read_text(encoding="utf-8"))
    expected_rows = dict(sorted(Counter(table["ano"].tolist()).items()))
    assert metadata["source_digest"] == "abc123"
    assert metadata["columns"] == list(CANONICAL_COLUMNS)
    assert {int(y): n for y, n in metadata["rows_by_year"].items()} == expected_rows
    assert isinstance(info, OfflineInfo)
    assert info.rows_by_year == expected_rows
    assert info.rows == len(table)
    assert info.path == root
    assert info.source_digest == "abc123"
    written_at = datetime.fromisoformat(info.written_at)
    assert written_at.utcoffset() == timedelta(0)


def test_rewrite_replaces_the_whole_store(table: pd.DataFrame, tmp_path: Path) -> None:
    root = tmp_path / "offline"
    write_offline(table, "first", root)
    only_2021 = table[table["ano"] == 2021].reset_index(drop=True)

    info = write_offline(only_2021, "second", root)
    frame, read_info = read_offline(root)

    pd.testing.assert_frame_equal(frame, only_2021)
    assert read_info.source_digest == info.source_digest == "second"
    assert sorted(p.name for p in root.iterdir()) == ["_metadata.json", "ano=2021"]
    assert [p.name for p in tmp_path.iterdir()] == ["offline"]  # no temp or retired dirs


def test_failed_write_leaves_the_old_store(
    table: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "offline"
    write_offline(table, "good", root)
    calls = 0
    real_write = pq.write_table

    def failing_write(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("disco cheio")
        real_write(*args, **kwargs)

    monkeypatch.setattr(pq, "write_table", failing_write)  # the module offline.py uses
    with pytest.raises(OSError, match="disco cheio"):
        write_offline(table, "bad", root)

    frame, info = read_offline(root)
    pd.testing.assert_frame_equal(frame, table)
    assert info.source_digest == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["offline"]


def test_readers_never_see_a_mix_of_two_writes(table: pd.DataFrame, tmp_path: Path) -> None:
    root = tmp_path / "offline"
    first = table
    second = table[table["ano"] >= 2021].reset_index(drop=True)
    write_offline(first, "A", root)
    done = threading.Event()
    errors: list[BaseException] = []
    seen: list[str] = []

    def reader() -> None:
        while not done.is_set():
            try:
                frame, info = read_offline(root)
                expected = first if info.source_digest == "A" else second
                pd.testing.assert_frame_equal(frame, expected)
                seen.append(info.source_digest)
            except BaseException as error:
                errors.append(error)
                return

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for index in range(10):
            write_offline(second if index % 2 == 0 else first, "B" if index % 2 == 0 else "A", root)
    finally:
        done.set()
        for thread in threads:
            thread.join(10)
    assert not errors, errors[0]
    assert seen


def test_missing_store_raises_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "nada"

    with pytest.raises(OfflineStoreNotFoundError, match="não encontrado") as caught:
        read_offline(root)

    assert isinstance(caught.value, FileNotFoundError)
    assert str(root) in str(caught.value)


def test_empty_table_round_trips(tmp_path: Path) -> None:
    info = write_offline(empty_canonical(), "vazio", tmp_path / "offline")

    frame, _ = read_offline(tmp_path / "offline")

    pd.testing.assert_frame_equal(frame, empty_canonical())
    assert info.rows_by_year == {}


def test_a_store_that_disagrees_with_its_metadata_is_reported(
    table: pd.DataFrame, tmp_path: Path
) -> None:
    root = tmp_path / "offline"
    write_offline(table, "d", root)
    shutil.rmtree(root / "ano=2021")

    with pytest.raises(OfflineStoreCorruptError, match="não confere com os metadados"):
        read_offline(root)


def test_leftovers_of_dead_writers_are_removed(table: pd.DataFrame, tmp_path: Path) -> None:
    root = tmp_path / "offline"
    stale = tmp_path / ".offline.tmp-dead"
    recent = tmp_path / ".offline.tmp-alive"  # could be a writer still at work
    for path in (stale, recent):
        path.mkdir()
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))

    write_offline(table, "d", root)

    assert not stale.exists()
    assert recent.exists()
