"""The shared prediction log: one JSON line per prediction, appended by every worker and replica.

`logs/predictions.jsonl` lives on a volume shared by the API replicas. Every line is a
`PredictionRecord`. Writers append under an exclusive `flock` on the current file, with one
`write` per call, so lines from several threads, workers and pods never tear or interleave.
The file is rotated by size and (optionally) when the UTC day changes; rotated files are
renamed to `predictions-YYYYMMDDTHHMMSSffffff.jsonl` beside it, under the same lock.

Readers (`SharedLogMetrics`, the monitoring job) never take the lock: a file only grows by
whole `write`s, rotated files are never written again, and a trailing line without its newline
is treated as "not written yet" (current file) or as malformed (rotated file).
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NotRequired, Self, TypedDict

import orjson

__all__ = [
    "FeatureValue",
    "LineReader",
    "ModelSourceName",
    "PredictionLog",
    "PredictionRecord",
    "ReadStats",
    "encode_records",
    "iter_log_files",
    "iter_records",
    "parse_record",
    "rotated_log_files",
    "utc_timestamp",
]

ModelSourceName = Literal["mlflow", "local", "fallback"]
FeatureValue = float | str | None

FILE_MODE = 0o600  # students' predictions: owner-only (every replica runs as the same user)
READ_CHUNK_BYTES = 1 << 20
_SECONDS_PER_DAY = 86_400
_EPOCH = date(1970, 1, 1)
_DUMPS_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY
_FIRST_TS = re.compile(rb'"ts"\s*:\s*"(\d{4}-\d{2}-\d{2})')
_HEAD_BYTES = 4096
_NUMBER = (float, int)

logger = logging.getLogger(__name__)

# The clock used for rotation decisions, rotated names and `utc_timestamp`; tests replace it.
_now: Callable[[], float] = time.time


class PredictionRecord(TypedDict):
    """One prediction, exactly as written to the log (the keys are the log's pt-BR contract)."""

    ts: str  # UTC ISO 8601 with milliseconds, see `utc_timestamp`
    request_id: str
    aluno_id: str | None  # pseudonymous dataset id only, never a name
    # Cycle t of the student record that was scored (null when the caller did not say);
    # absent in lines written before it existed: read it with `.get("ciclo")`.
    ciclo: NotRequired[int | None]
    endpoint: str
    modelo: str
    versao: str
    fonte: ModelSourceName
    features: Mapping[str, FeatureValue]  # Mapping: a dict[str, float] is accepted as is
    probabilidade: float
    pv_previsto: bool
    limiar: float
    latencia_ms: float


_second_prefix: tuple[int, str] = (-1, "")  # (whole second, "YYYY-MM-DDTHH:MM:SS"): reused


def utc_timestamp(seconds: float | None = None) -> str:
    """`2026-03-01T12:34:56.789Z` for `seconds` since the epoch (default: now).

    Called once per request: the date-time part is formatted once per second, not per call.
    """
    global _second_prefix  # noqa: PLW0603 - a one-entry cache; a lost race only redoes work
    moment = _now() if seconds is None else seconds
    millis = math.floor(moment * 1000)
    whole, frac = divmod(millis, 1000)
    cached_second, prefix = _second_prefix
    if whole != cached_second:
        prefix = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second_prefix = (whole, prefix)
    return f"{prefix}.{frac:03d}Z"


def _encode_default(value: object) -> object:
    # Records are built by the API from mappings that are not always plain dicts.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"tipo não serializável no log de predições: {type(value).__name__}")


def encode_records(records: Sequence[PredictionRecord]) -> bytes:
    """The bytes `append` writes: one JSON object per line, each ending with a newline."""
    dumps = orjson.dumps
    return b"".join([dumps(r, default=_encode_default, option=_DUMPS_OPTIONS) for r in records])


def _epoch_day(seconds: float) -> int:
    return int(seconds // _SECONDS_PER_DAY)


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


# Instances to reset in a forked child (gunicorn-style preload): the inherited descriptor shares
# the parent's open file description, so its flock would not exclude the parent.
_INSTANCES: weakref.WeakSet[PredictionLog] = weakref.WeakSet()


def _reset_instances_after_fork() -> None:
    for log in list(_INSTANCES):
        log._forget_after_fork()


os.register_at_fork(after_in_child=_reset_instances_after_fork)


class PredictionLog:
    """Append-only JSON-lines log shared by threads, processes and pods (see the module doc).

    `append` costs the encoding (outside any lock) plus five system calls: `flock`, `stat`
    (has the path been rotated?), a one-byte `pread` (does the file end with a newline?),
    `write`, unlock. The descriptor is opened lazily and reopened whenever
    the path points to another file (rotated by someone else, deleted, recreated).
    `close()` releases the descriptor; a later `append` reopens it.
    """

    def __init__(self, path: Path, max_bytes: int, daily: bool) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes deve ser positivo")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.daily = daily
        self._lock = threading.Lock()  # flock does not exclude threads sharing one descriptor
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None
        self._day: int | None = None  # epoch day of the open file's first line, once known
        self._rotation_warned = False
        _INSTANCES.add(self)

    # -- public API -------------------------------------------------------------------------

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Append `records` atomically (all their lines in one write) to the current file."""
        if not records:
            return
        data = encode_records(records)
        with self._lock:
            self._append_locked(data)

    def close(self) -> None:
        with self._lock:
            self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _append_locked(self, data: bytes) -> None:
        while True:
            fd, st = self._lock_current()
            rotated = False
            try:
                if self._must_rotate(fd, st, len(data)):
                    rotated = self._rename_current()
                if not rotated:
                    # A writer killed mid-write may have left a partial line: end it first, so
                    # only that line is lost, not ours too.
                    if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
                        data = b"\n" + data
                    _write_all(fd, data)
                    return
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                if rotated:
                    self._close()

    def _lock_current(self) -> tuple[int, os.stat_result]:
        """Hold the flock of the file the path points to *now*; return its fd and stat."""
        while True:
            fd = self._fd if self._fd is not None else self._open()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                st: os.stat_result | None = self.path.stat()
            except FileNotFoundError:
                st = None
            if st is not None and _identity(st) == self._ident:
                return fd, st
            # Rotated or removed while we waited for (or before we took) the lock: reopen.
            fcntl.flock(fd, fcntl.LOCK_UN)
            self._close()

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_RDWR (not O_WRONLY) so the first line and last byte can be read back with pread.
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(self.path, flags, FILE_MODE)
        self._fd = fd
        self._ident = _identity(os.fstat(fd))
        self._day = None
        return fd

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._ident = None
        self._day = None

    def _forget_after_fork(self) -> None:
        self._lock = threading.Lock()
        if self._fd is not None:
            # Close the child's copy only: LOCK_UN here would release a lock the parent holds.
            os.close(self._fd)
        self._fd = None
        self._ident = None
        self._day = None

    def _must_rotate(self, fd: int, st: os.stat_result, incoming: int) -> bool:
        if st.st_size == 0:
            return False  # never leave an empty rotated file, even for an oversized batch
        if st.st_size + incoming > self.max_bytes:
            return True
        if not self.daily:
            return False
        if self._day is None:
            self._day = _first_line_day(fd, st)
        # `<`, not `!=`: a pod whose clock is a little behind must not rotate a file that a
        # pod with a faster clock started "tomorrow" (rotations would ping-pong at midnight).
        return self._day < _epoch_day(_now())

    def _rename_current(self) -> bool:
        """Rotate the current file (we hold its lock); False if the rename failed."""
        stamp = datetime.fromtimestamp(_now(), UTC).strftime("%Y%m%dT%H%M%S%f")
        stem, suffix = self.path.stem, self.path.suffix
        target = self.path.with_name(f"{stem}-{stamp}{suffix}")
        counter = 0
        # Rotations are serialised by the lock, so exists() + rename cannot race another rotation.
        while target.exists():
            counter += 1
            target = self.path.with_name(f"{stem}-{stamp}-{counter}{suffix}")
        try:
            self.path.rename(target)
        except OSError as exc:
            # Keep logging predictions in the oversized / old file rather than failing them.
            if not self._rotation_warned:
                logger.warning("não foi possível rotacionar %s: %s", self.path, exc)
                self._rotation_warned = True
            return False
        return True


def _write_all(fd: int, data: bytes) -> None:
    # One write in practice; the loop only covers a short write (signal, disk nearly full).
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _first_line_day(fd: int, st: os.stat_result) -> int:
    """The UTC day of the file's first record (its `ts`), else of its last modification."""
    head = os.pread(fd, _HEAD_BYTES, 0).split(b"\n", 1)[0]
    match = _FIRST_TS.search(head)
    if match:
        try:
            return (date.fromisoformat(match.group(1).decode()) - _EPOCH).days
        except ValueError:
            pass
    return _epoch_day(st.st_mtime)


def rotated_log_files(path: Path) -> list[Path]:
    """Rotated files of the log at `path`, oldest first (by the timestamp in their names)."""
    path = Path(path)
    pattern = re.compile(
        rf"{re.escape(path.stem)}-(\d{{8}}T\d{{12}})(?:-(\d+))?{re.escape(path.suffix)}"
    )
    found: list[tuple[str, int, Path]] = []
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match and entry.is_file():
            found.append((match.group(1), int(match.group(2) or 0), Path(entry.path)))
    found.sort(key=lambda item: (item[0], item[1]))
    return [item[2] for item in found]


def iter_log_files(path: Path) -> list[Path]:
    """Every file of the log in chronological order: rotated files, then the current one."""
    path = Path(path)
    files = rotated_log_files(path)
    if path.is_file():
        files.append(path)
    return files


class LineReader:
    """Complete lines of a file from a byte offset, in chunks, without reading it all at once.

    Iterating yields lists of lines (without their newline). Afterwards `offset` is the byte
    just past the last complete line and `tail` the bytes after it that have no newline yet
    (a write in progress, or a crash's leftover).
    """

    def __init__(self, fd: int, offset: int = 0, chunk_bytes: int = READ_CHUNK_BYTES) -> None:
        self.fd = fd
        self.offset = offset
        self.tail = b""
        self._chunk_bytes = chunk_bytes

    def __iter__(self) -> Iterator[list[bytes]]:
        position = self.offset
        pending = b""
        while True:
            chunk = os.pread(self.fd, self._chunk_bytes, position)
            if not chunk:
                break
            position += len(chunk)
            lines = (pending + chunk if pending else chunk).split(b"\n")
            pending = lines.pop()
            if lines:
                self.offset = position - len(pending)
                yield lines
        self.tail = pending


def parse_record(line: bytes) -> dict[str, Any] | None:
    """The record on `line`, or None when it is malformed (not JSON, or core fields wrong)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if (
        type(obj) is not dict
        or type(obj.get("pv_previsto")) is not bool
        or type(obj.get("probabilidade")) not in _NUMBER
        or type(obj.get("latencia_ms")) not in _NUMBER
    ):
        return None
    return obj


@dataclass
class ReadStats:
    """What `iter_records` saw: valid records, malformed lines skipped, unterminated bytes."""

    records: int = 0
    invalid: int = 0
    pending_bytes: int = 0  # the current file's last line, not finished yet (not counted)


def iter_records(path: Path, stats: ReadStats | None = None) -> Iterator[dict[str, Any]]:
    """Every valid record of the log at `path` (rotated files, then current), in order.

    Malformed lines are skipped and counted in `stats.invalid`; a rotated file's unterminated
    last line is malformed (nobody writes there again), the current file's is left pending.
    """
    stats = stats if stats is not None else ReadStats()
    files = iter_log_files(path)
    for index, file in enumerate(files):
        try:
            fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # pruned between listing and opening
        try:
            reader = LineReader(fd)
            for lines in reader:
                for line in lines:
                    if not line:
                        continue
                    record = parse_record(line)
                    if record is None:
                        stats.invalid += 1
                        continue
                    stats.records += 1
                    yield record
            tail = reader.tail.strip()
            if not tail:
                continue
            if index == len(files) - 1 and file == Path(path):
                stats.pending_bytes = len(reader.tail)
                continue
            record = parse_record(tail)  # final: a rotated file is never written again
            if record is None:
                stats.invalid += 1
            else:
                stats.records += 1
                yield record
        finally:
            os.close(fd)
