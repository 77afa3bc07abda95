"""Every cycle of every student, from the offline store, in memory for the API's history view.

The Parquet store is read once and indexed by student; each lookup compares the store's
metadata file (inode, mtime, size: a write swaps in a new directory, so any write changes it)
with the one the cache was built from and reloads only when it changed. A reload replaces the
whole snapshot by one reference assignment, so a reader sees the old or the new one, never a mix.

Past cycles' PV is history, not a prediction target: it is part of the answer.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pandas as pd

from passos_magicos.feature_store.offline import (
    METADATA_FILE,
    OfflineInfo,
    OfflineStoreNotFoundError,
    read_offline,
)
from passos_magicos.feature_store.online import StudentIndex

logger = logging.getLogger(__name__)

INDICATOR_COLUMNS: Final = ("inde", "iaa", "ieg", "ips", "ipp", "ida", "ipv", "ian")
HISTORY_COLUMNS: Final = ("ano", "fase", "pedra", *INDICATOR_COLUMNS, "pv")

Signature = tuple[int, int, int]


@dataclass(frozen=True)
class StudentHistory:
    aluno_id: str
    cycles: tuple[dict[str, Any], ...]  # HISTORY_COLUMNS each, oldest year first; NA as None


@dataclass(frozen=True)
class HistorySnapshot:
    signature: Signature
    info: OfflineInfo
    index: StudentIndex[StudentHistory]


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _values(series: pd.Series, kind: type) -> list[Any]:
    return [None if _missing(v) else kind(v) for v in series.astype(object).tolist()]


def build_histories(table: pd.DataFrame) -> dict[str, StudentHistory]:
    """One `StudentHistory` per student of the canonical table (any row order)."""
    frame = table.sort_values(["aluno_id", "ano"], kind="stable")
    kinds: dict[str, type] = {"aluno_id": str, "ano": int, "fase": int, "pedra": str, "pv": bool}
    columns = {
        name: _values(frame[name], kinds.get(name, float))
        for name in ("aluno_id", *HISTORY_COLUMNS)
    }
    grouped: dict[str, list[dict[str, Any]]] = {}
    for i, aluno_id in enumerate(columns["aluno_id"]):
        if aluno_id is None:
            continue
        cycle = {name: columns[name][i] for name in HISTORY_COLUMNS}
        grouped.setdefault(str(aluno_id), []).append(cycle)
    return {key: StudentHistory(key, tuple(cycles)) for key, cycles in grouped.items()}


class OfflineHistory:
    """The offline store as a per-student index, reloaded when the store is rewritten."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._snapshot: HistorySnapshot | None = None
        self._lock = threading.Lock()

    def _signature(self) -> Signature | None:
        try:
            stat = (self.root / METADATA_FILE).stat()
        except OSError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def snapshot(self) -> HistorySnapshot:
        """The current snapshot, reloaded first if the store changed. Blocking (file reads):
        call it from a worker thread. Raises OfflineStoreNotFoundError when there is none."""
        signature = self._signature()
        current = self._snapshot
        if current is not None and signature is not None and current.signature == signature:
            return current
        with self._lock:
            signature = self._signature()
            current = self._snapshot
            if current is not None and signature is not None and current.signature == signature:
                return current
            try:
                # Read after taking the signature: a write in between only costs a reload later.
                table, info = read_offline(self.root)
            except OfflineStoreNotFoundError:
                self._snapshot = None
                raise
            signature = signature or self._signature() or (0, 0, 0)
            snapshot = HistorySnapshot(signature, info, StudentIndex(build_histories(table)))
            self._snapshot = snapshot
            logger.info(
                "histórico offline carregado: %d alunos, %d linhas", len(snapshot.index), info.rows
            )
            return snapshot

    def resolve(self, key: str) -> tuple[StudentHistory, OfflineInfo]:
        """A student's history (same id forms as the online store) and the store it came from."""
        snapshot = self.snapshot()
        return snapshot.index.resolve(key), snapshot.info
