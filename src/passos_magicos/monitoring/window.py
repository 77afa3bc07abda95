"""The monitoring window: the newest predictions of the log, as columns per model version.

The log is read backwards (newest file first, from its end) and reading stops as soon as the
window is full, so a 6-hourly job does not re-read months of log. Lines are parsed a batch at a
time by Arrow's JSON reader straight into columns (a million predictions never exist as a
million dicts); a batch it rejects (a malformed line) is parsed line by line instead, so that
only the bad lines are skipped and counted.

Roster views (`tipo: "consulta"`) are requests, not predictions: skipped, not counted as
invalid. A prediction of a student's own record counts once per (model version, feature-store
version, student): older repeats of the newest one are skipped (`repeated_lines`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
from numpy.typing import NDArray

from passos_magicos.features import CATEGORICAL
from passos_magicos.prediction_records import (
    KIND_INVALID,
    KIND_ROSTER,
    KIND_VIEW,
    iter_log_files,
    parse_line,
    prediction_key,
)

READ_BLOCK: Final = 16 << 20  # bytes read, and handed to the JSON reader, at once
ARROW_BLOCK: Final = 2 << 20  # the reader parses blocks of this size in parallel


def blocks_newest_first(path: Path) -> Iterator[bytes]:
    """Blocks of complete lines, newest block first (lines inside a block in file order), over
    the current file and then the rotated ones, newest first.

    The current file's unfinished last line (a write in progress) is left out; a rotated
    file's is a line like any other (nobody writes there again).
    """
    files = iter_log_files(path)
    for file in reversed(files):
        is_current = file == Path(path)
        try:
            fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # rotated away or pruned after listing
        try:
            yield from _file_blocks(fd, is_current)
        finally:
            os.close(fd)


def _file_blocks(fd: int, is_current: bool) -> Iterator[bytes]:
    position = os.fstat(fd).st_size
    carry = b""  # the start of the earliest line of the block read before (continues here)
    last_line = True
    while position > 0:
        start = max(0, position - READ_BLOCK)
        block = os.pread(fd, position - start, start) + carry
        position = start
        carry = b""
        if start > 0:
            cut = block.find(b"\n")
            if cut < 0:
                carry = block  # one line longer than a block: keep going back
                continue
            carry, block = block[: cut + 1], block[cut + 1 :]
            carry = carry[:-1]
        if last_line:
            end = block.rfind(b"\n") + 1
            tail = block[end:]
            block = block[:end]
            if tail.strip() and not is_current:
                block += tail + b"\n"
            last_line = False
        if block:
            yield block


@dataclass
class VersionWindow:
    """The predictions of one (model, version) in the window, as columns."""

    model: str
    version: str
    features: dict[str, NDArray[np.float64] | list[Any]]
    scores: NDArray[np.float64]
    predicted: NDArray[np.bool_]

    @property
    def n(self) -> int:
        return int(self.scores.size)


@dataclass
class Window:
    versions: list[VersionWindow]
    scanned_lines: int = 0
    invalid_lines: int = 0
    view_lines: int = 0  # roster views read (requests, not predictions)
    repeated_lines: int = 0  # older repeats of a prediction already in the window
    first_ts: str | None = None  # oldest prediction in the window
    last_ts: str | None = None

    @property
    def n(self) -> int:
        return sum(v.n for v in self.versions)


@dataclass
class _Rows:
    """Valid records of one batch, newest first, as columns."""

    key: NDArray[np.object_]  # "model\x1fversion" (a handful of distinct str objects)
    ts: pa.Array  # kept in Arrow: a million Python strings would cost ~100 MB
    scores: NDArray[np.float64]
    predicted: NDArray[np.bool_]
    features: dict[str, NDArray[Any]]
    line: NDArray[np.int64]  # position of each record among the batch's lines
    # "model, version, features version, student" for predictions of a student's own record
    # (None: caller-given inputs, never a repeat)
    identity: NDArray[np.object_]

    def __len__(self) -> int:
        return int(self.scores.size)

    def head(self, n: int) -> _Rows:
        return self.take(slice(0, n))

    def take(self, rows: slice | NDArray[np.bool_]) -> _Rows:
        return _Rows(
            self.key[rows],
            self.ts.filter(pa.array(rows)) if not isinstance(rows, slice) else self.ts[rows],
            self.scores[rows],
            self.predicted[rows],
            {k: v[rows] for k, v in self.features.items()},
            self.line[rows],
            self.identity[rows],
        )

    def lines_before(self, n: int, total: int) -> int:
        """Lines of the batch up to the n-th record (all of them when n ≥ len)."""
        if n >= len(self):
            return total
        return int(self.line[n])

    def first_older_than(self, since: str) -> int | None:
        older = pc.fill_null(pc.less(self.ts, pa.scalar(since)), False)
        index = pc.index(older, True).as_py()
        return None if index < 0 else int(index)

    def ts_at(self, index: int) -> str | None:
        value = self.ts[index].as_py()
        return value if isinstance(value, str) else None


KEY_SEPARATOR: Final = "\x1f"


@dataclass
class _Batch:
    """One block parsed: its valid predictions, how many lines were malformed, and where the
    roster views are (line positions, newest first like the rows)."""

    rows: _Rows
    invalid: int
    views: NDArray[np.int64]

    @property
    def lines(self) -> int:
        return len(self.rows) + self.invalid + int(self.views.size)


@cache
def _schema(feature_names: tuple[str, ...]) -> pa.Schema:
    def kind(name: str) -> pa.DataType:
        return pa.string() if name in CATEGORICAL else pa.float64()

    return pa.schema(
        [
            ("ts", pa.string()),
            ("tipo", pa.string()),
            ("aluno_id", pa.string()),
            ("features_versao", pa.int64()),
            ("modelo", pa.string()),
            ("versao", pa.string()),
            ("probabilidade", pa.float64()),
            ("pv_previsto", pa.bool_()),
            ("latencia_ms", pa.float64()),
            ("features", pa.struct([(name, kind(name)) for name in feature_names])),
        ]
    )


def _strings(array: pa.Array) -> NDArray[np.object_]:
    """Strings as an object array whose items are the few distinct str objects (None = null)."""
    encoded = pc.dictionary_encode(array)
    values = np.asarray([*encoded.dictionary.to_pylist(), None], dtype=object)
    indices = _plain(pc.fill_null(encoded.indices, len(values) - 1))
    result: NDArray[np.object_] = values[indices]
    return result


# Arrow → numpy only through zero-copy paths: the general conversion loads pandas (~1 s).
def _plain(array: pa.Array | pa.ChunkedArray) -> NDArray[Any]:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return np.asarray(array.to_numpy(zero_copy_only=True))


def _floats(array: pa.Array | pa.ChunkedArray) -> NDArray[np.float64]:
    return _plain(pc.fill_null(pc.cast(array, pa.float64()), np.nan))  # null → NaN


def _bools(array: pa.Array | pa.ChunkedArray) -> NDArray[np.bool_]:
    return _plain(pc.fill_null(pc.cast(array, pa.uint8()), 0)).astype(bool)


def _parse_fast(data: bytes, feature_names: tuple[str, ...]) -> _Batch | None:
    """Arrow's reader over a whole block, rows turned newest first; None when any line is not
    a JSON object of the expected types. Rows whose core fields are missing are invalid, as
    in `parse_line` (roster views apart)."""
    try:
        table = pa_json.read_json(
            io.BytesIO(data),
            read_options=pa_json.ReadOptions(block_size=ARROW_BLOCK),
            parse_options=pa_json.ParseOptions(
                explicit_schema=_schema(feature_names), unexpected_field_behavior="ignore"
            ),
        ).combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    table = table.take(pa.array(np.arange(table.num_rows - 1, -1, -1)))  # newest first
    core = [table.column(c).chunk(0) for c in ("probabilidade", "pv_previsto", "latencia_ms")]
    kind = table.column("tipo").chunk(0)
    prediction_kind = pc.fill_null(pc.equal(kind, pa.scalar(KIND_ROSTER)), True)
    valid_mask = pc.and_(
        pc.and_(pc.and_(core[0].is_valid(), core[1].is_valid()), core[2].is_valid()),
        prediction_kind,
    )
    view_mask = pc.and_(
        pc.fill_null(pc.equal(kind, pa.scalar(KIND_VIEW)), False), core[2].is_valid()
    )
    valid = _bools(valid_mask)
    views = _bools(view_mask)
    table = table.filter(valid_mask)
    features = table.column("features").chunk(0) if table.num_rows else None
    key = pc.binary_join_element_wise(
        table.column("modelo").chunk(0) if table.num_rows else pa.array([], pa.string()),
        table.column("versao").chunk(0) if table.num_rows else pa.array([], pa.string()),
        KEY_SEPARATOR,
    )
    identity = pc.binary_join_element_wise(
        key,
        pc.cast(table.column("features_versao").combine_chunks(), pa.string()),
        table.column("aluno_id").combine_chunks(),
        KEY_SEPARATOR,
    )
    columns: dict[str, NDArray[Any]] = {}
    for name in feature_names:
        field = features.field(name) if features is not None else pa.array([], pa.float64())
        columns[name] = _strings(field) if name in CATEGORICAL else _floats(field)
    return _Batch(
        _Rows(
            key=_strings(key),
            ts=table.column("ts").combine_chunks(),
            scores=_floats(table.column("probabilidade").combine_chunks()),
            predicted=_bools(table.column("pv_previsto")),
            features=columns,
            line=np.flatnonzero(valid),
            identity=_identities(identity),
        ),
        int((~valid & ~views).sum()),
        np.flatnonzero(views),
    )


def _identities(array: pa.Array) -> NDArray[np.object_]:
    """Object array of the identity strings (None where a part is missing)."""
    return np.asarray(array.to_pylist(), dtype=object)


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, int | float) else np.nan


def _lines(block: bytes) -> list[bytes]:
    """The block's non-blank lines, newest first."""
    lines = [line for line in block.split(b"\n") if line.strip()]
    lines.reverse()
    return lines


def _parse_slow(block: bytes, feature_names: tuple[str, ...]) -> _Batch:
    """Line by line with the log's own parser: only the malformed lines are lost."""
    lines = _lines(block)
    records, positions, views = [], [], []
    for position, line in enumerate(lines):
        kind, record = parse_line(line)
        if kind == KIND_VIEW:
            views.append(position)
        elif kind != KIND_INVALID and record is not None:
            records.append(record)
            positions.append(position)
    rows = [r["features"] if type(r.get("features")) is dict else {} for r in records]
    features: dict[str, NDArray[Any]] = {}
    for name in feature_names:
        values = [row.get(name) for row in rows]
        if name in CATEGORICAL:
            features[name] = np.asarray(
                [v if isinstance(v, str) else None for v in values], dtype=object
            )
        else:
            features[name] = np.asarray([_number(v) for v in values], dtype=np.float64)
    keys = [f"{r.get('modelo')}{KEY_SEPARATOR}{r.get('versao')}" for r in records]
    identities = [
        None if (k := prediction_key(r)) is None else KEY_SEPARATOR.join(map(str, k))
        for r in records
    ]
    return _Batch(
        _Rows(
            key=np.asarray(keys, dtype=object),
            ts=pa.array(
                [t if isinstance(t := r.get("ts"), str) else None for r in records], pa.string()
            ),
            scores=np.asarray([float(r["probabilidade"]) for r in records], dtype=np.float64),
            predicted=np.asarray([r["pv_previsto"] for r in records], dtype=bool),
            features=features,
            line=np.asarray(positions, dtype=np.int64),
            identity=np.asarray(identities, dtype=object),
        ),
        len(lines) - len(records) - len(views),
        np.asarray(views, dtype=np.int64),
    )


class _Groups:
    """Columns per model version, appended batch by batch."""

    def __init__(self, feature_names: tuple[str, ...]) -> None:
        self.feature_names = feature_names
        self.parts: dict[str, list[_Rows]] = {}

    def add(self, rows: _Rows) -> None:
        for key in dict.fromkeys(rows.key.tolist()):
            mask = rows.key == key
            part = _Rows(
                rows.key[:0],
                rows.ts[:0],
                rows.scores[mask],
                rows.predicted[mask],
                {name: values[mask] for name, values in rows.features.items()},
                rows.line[:0],
                rows.identity[:0],
            )
            self.parts.setdefault(str(key), []).append(part)

    def versions(self) -> list[VersionWindow]:
        result = []
        for key, parts in self.parts.items():
            model, _, version = key.partition(KEY_SEPARATOR)
            features: dict[str, NDArray[np.float64] | list[Any]] = {}
            for name in self.feature_names:
                joined = np.concatenate([p.features[name] for p in parts])
                features[name] = list(joined) if name in CATEGORICAL else joined
            result.append(
                VersionWindow(
                    model=model,
                    version=version,
                    features=features,
                    scores=np.concatenate([p.scores for p in parts]),
                    predicted=np.concatenate([p.predicted for p in parts]),
                )
            )
        self.parts.clear()
        return sorted(result, key=lambda v: -v.n)


def read_window(
    path: Path, feature_names: tuple[str, ...], limit: int, since: str | None = None
) -> Window:
    """The newest `limit` valid predictions (only those at or after `since`, an ISO time)."""
    window = Window(versions=[])
    groups = _Groups(feature_names)
    taken = 0
    oldest: _Rows | None = None
    seen: set[str] = set()  # identities already in the window (their newest prediction)
    for block in blocks_newest_first(path):
        batch = _parse_fast(block, feature_names) or _parse_slow(block, feature_names)
        total = batch.lines  # non-blank lines of the block
        rows, repeats = _drop_repeats(batch.rows, seen)
        keep = len(rows)
        if since is not None and (older := rows.first_older_than(since)) is not None:
            keep = older  # the log is in time order: everything after is older still
        keep = min(keep, limit - taken)
        consumed = rows.lines_before(keep, total)
        views = int((batch.views < consumed).sum())
        repeated = int((repeats < consumed).sum())
        seen.update(i for i in rows.identity[:keep].tolist() if i is not None)
        window.scanned_lines += consumed
        window.view_lines += views
        window.repeated_lines += repeated
        window.invalid_lines += consumed - keep - views - repeated
        taken += keep
        if keep:
            rows = rows.head(keep)
            window.last_ts = window.last_ts or rows.ts_at(0)
            oldest = rows
            groups.add(rows)
        if keep < len(rows) or taken >= limit:
            break
    if oldest is not None:
        window.first_ts = oldest.ts_at(len(oldest) - 1)
    window.versions = groups.versions()
    return window


def _drop_repeats(rows: _Rows, seen: set[str]) -> tuple[_Rows, NDArray[np.int64]]:
    """`rows` without the predictions already seen (newer in the window, or earlier in this
    newest-first batch), and the line positions of those dropped."""
    identities = rows.identity.tolist()
    if all(i is None for i in identities):
        return rows, np.zeros(0, dtype=np.int64)
    local = set(seen)
    repeat = np.zeros(len(identities), dtype=bool)
    for index, identity in enumerate(identities):
        if identity is None:
            continue
        if identity in local:
            repeat[index] = True
        else:
            local.add(identity)
    if not repeat.any():
        return rows, np.zeros(0, dtype=np.int64)
    return rows.take(~repeat), rows.line[repeat]
