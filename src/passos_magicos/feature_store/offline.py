"""Offline feature store: the canonical student-year table as Parquet partitioned by year.

Layout (Hive style, readable by pyarrow, DuckDB or Spark)::

    root/_metadata.json
    root/ano=2020/part-0.parquet
    root/ano=2021/part-0.parquet

The partition column `ano` lives only in the directory name, as Hive tools expect. A write
builds the whole store in a temporary directory beside `root` and then swaps directories, so
the store on disk is always one complete write. Readers check that `_metadata.json` names the
same write before and after reading the partitions, and retry if a swap happened meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from passos_magicos.data.schema import CANONICAL_DTYPES, conform, empty_canonical

METADATA_FILE: Final = "_metadata.json"
PARTITION_COLUMN: Final = "ano"
FORMAT_VERSION: Final = 1
SORT_KEYS: Final = ["ano", "aluno_id"]

_READ_ATTEMPTS: Final = 20
_RETRY_SECONDS: Final = 0.02
_LEFTOVER_SECONDS: Final = 3600.0

_ARROW_TYPES: Final[dict[str, pa.DataType]] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "Int64": pa.int64(),
    "Float64": pa.float64(),
    "boolean": pa.bool_(),
}
# Arrow → pandas extension dtypes directly, so nullable integers never pass through float.
_PANDAS_TYPES: Final[dict[pa.DataType, Any]] = {
    pa.string(): pd.StringDtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.float64(): pd.Float64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}
_FILE_SCHEMA: Final = pa.schema(
    [(name, _ARROW_TYPES[str(dtype)]) for name, dtype in CANONICAL_DTYPES.items()]
).remove(list(CANONICAL_DTYPES).index(PARTITION_COLUMN))


class OfflineStoreNotFoundError(FileNotFoundError):
    """No offline feature store at the given path (message in pt-BR)."""

    def __init__(self, root: Path) -> None:
        super().__init__(
            f"armazenamento offline de features não encontrado em {root}: "
            "execute o treinamento para gerá-lo"
        )
        self.root = root


class OfflineStoreCorruptError(RuntimeError):
    """The store exists but does not match its own metadata (message in pt-BR)."""


@dataclass(frozen=True)
class OfflineInfo:
    source_digest: str
    rows_by_year: dict[int, int]
    written_at: str  # UTC, ISO 8601
    path: Path

    @property
    def rows(self) -> int:
        return sum(self.rows_by_year.values())


def write_offline(table: pd.DataFrame, source_digest: str, root: Path) -> OfflineInfo:
    """Write the canonical table as the whole offline store, replacing any previous one."""
    root = Path(root)
    frame = conform(table).sort_values(SORT_KEYS, kind="stable").reset_index(drop=True)
    rows_by_year = rows_per_year(frame)
    written_at = datetime.now(UTC).isoformat(timespec="seconds")
    metadata = {
        "format_version": FORMAT_VERSION,
        "write_id": uuid.uuid4().hex,
        "source_digest": source_digest,
        "written_at": written_at,
        "rows_by_year": {str(year): count for year, count in rows_by_year.items()},
        "columns": list(CANONICAL_DTYPES),
    }
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(root)
    staging = root.parent / f".{root.name}.tmp-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        for year, part in frame.groupby("ano", sort=True):
            directory = staging / f"{PARTITION_COLUMN}={int(str(year))}"
            directory.mkdir()
            arrow = pa.Table.from_pandas(
                part.drop(columns=PARTITION_COLUMN), schema=_FILE_SCHEMA, preserve_index=False
            )
            pq.write_table(arrow, directory / "part-0.parquet", compression="zstd")
        (staging / METADATA_FILE).write_text(
            json.dumps(metadata, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        _swap_in(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return OfflineInfo(source_digest, rows_by_year, written_at, root)


def read_offline(root: Path) -> tuple[pd.DataFrame, OfflineInfo]:
    """The canonical table back, with the canonical dtypes, sorted by (ano, aluno_id)."""
    root = Path(root)
    missing = 0
    not_found = False
    for _attempt in range(_READ_ATTEMPTS):
        try:
            before = _read_metadata(root)
            frame = _read_partitions(root)
            after = _read_metadata(root)
        except FileNotFoundError:
            not_found = True
            # Between the two renames of a swap the root is briefly absent, and a file listed
            # before a swap is gone after it: retry. Truly missing = no store and no swap seen
            # twice in a row (once could be a swap that began and ended between the checks).
            if _swap_in_progress(root) or (root / METADATA_FILE).exists():
                missing = 0
            else:
                missing += 1
                if missing == 2:
                    raise OfflineStoreNotFoundError(root) from None
            time.sleep(_RETRY_SECONDS)
            continue
        not_found = False
        if before["write_id"] != after["write_id"]:
            continue  # replaced while we read: partitions may mix two writes
        info = _info(before, root)
        found = rows_per_year(frame)
        if found != info.rows_by_year:
            raise OfflineStoreCorruptError(
                f"armazenamento offline em {root} não confere com os metadados: "
                f"linhas por ano {found}, esperado {info.rows_by_year}"
            )
        return frame, info
    if not_found:  # e.g. a writer died between its two renames
        raise OfflineStoreNotFoundError(root)
    raise OfflineStoreCorruptError(
        f"armazenamento offline em {root} foi substituído repetidamente durante a leitura"
    )


def rows_per_year(frame: pd.DataFrame) -> dict[int, int]:
    """Rows per `ano`, in year order."""
    counts = frame["ano"].value_counts().sort_index()
    return {int(year): int(count) for year, count in zip(counts.index, counts, strict=True)}


def _swap_in(staging: Path, root: Path) -> None:
    """Put `staging` in place of `root`: rename the old store aside, the new one in, then drop
    the old one. A rename is atomic, so readers see the old store, the new one, or (for the
    instant between the renames) no root at all, which `read_offline` waits out."""
    retired = root.parent / f".{root.name}.old-{uuid.uuid4().hex}"
    if root.exists():
        root.rename(retired)
    staging.rename(root)
    shutil.rmtree(retired, ignore_errors=True)


def _remove_leftovers(root: Path) -> None:
    """Temporary and retired directories of writers that died (older than any live write)."""
    cutoff = time.time() - _LEFTOVER_SECONDS
    for pattern in (f".{root.name}.tmp-*", f".{root.name}.old-*"):
        for path in root.parent.glob(pattern):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    shutil.rmtree(path, ignore_errors=True)


def _swap_in_progress(root: Path) -> bool:
    return any(root.parent.glob(f".{root.name}.old-*"))


def _read_metadata(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / METADATA_FILE).read_text(encoding="utf-8"))
    return data


def _info(metadata: dict[str, Any], root: Path) -> OfflineInfo:
    rows_by_year = {int(year): int(count) for year, count in metadata["rows_by_year"].items()}
    return OfflineInfo(
        source_digest=str(metadata["source_digest"]),
        rows_by_year=dict(sorted(rows_by_year.items())),
        written_at=str(metadata["written_at"]),
        path=root,
    )


def _read_partitions(root: Path) -> pd.DataFrame:
    prefix = f"{PARTITION_COLUMN}="
    directories = sorted(
        (int(path.name.removeprefix(prefix)), path)
        for path in root.iterdir()
        if path.is_dir() and path.name.startswith(prefix)
    )
    parts: list[pd.DataFrame] = []
    for year, directory in directories:
        for file in sorted(directory.glob("*.parquet")):
            part = pq.read_table(file).to_pandas(types_mapper=_PANDAS_TYPES.get)
            part[PARTITION_COLUMN] = year
            parts.append(part)
    if not parts:
        return empty_canonical()
    frame = conform(pd.concat(parts, ignore_index=True))
    return frame.sort_values(SORT_KEYS, kind="stable").reset_index(drop=True)
