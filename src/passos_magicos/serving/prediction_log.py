"""The shared prediction log: one JSON line per prediction, appended by every worker and replica.

`logs/predictions.jsonl` lives on a volume shared by the API replicas. Three kinds of line
(`tipo`):

- no `tipo`: a prediction a caller asked for (`/predict`, `/predict/batch`, `/predict/aluno`,
  `/predict/alunos?aluno_ids=`), one line per student;
- `"tipo": "lista"`: one student of a roster (`GET /predict/alunos`), written once per
  (model version, feature-store version, cycle) by whichever worker scored it first
  (`append_once`), never again on later views;
- `"tipo": "consulta"`: one view of a roster (request id, latency, how many students), with no
  student data.

Writers append under an exclusive `flock` on the current file, with one `write` per call, so
lines from several threads, workers and pods never tear or interleave. The file is rotated by
size and (optionally) when the UTC day changes; rotated files are renamed to
`predictions-YYYYMMDDTHHMMSSffffff.jsonl` beside it, under the same lock.

A line that cannot be written (disk full, read-only volume) is lost, not retried: `append`
counts it (`lost_lines`, and `on_loss` for a count shared by every replica) and raises
`LogWriteError`, and the API answers anyway.

Readers (`SharedLogMetrics`, the monitoring job) never take the lock: a file only grows by
whole `write`s, rotated files are never written again, and a trailing line without its newline
is treated as "not written yet" (current file) or as malformed (rotated file).
"""

from __future__ import annotations

import fcntl
import hashlib
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
from typing import Any, Final, Literal, NotRequired, Self, TypedDict

import orjson

__all__ = [
    "KIND_ROSTER",
    "KIND_VIEW",
    "FeatureValue",
    "LineReader",
    "LogRecord",
    "LogWriteError",
    "ModelSourceName",
    "PredictionLog",
    "PredictionRecord",
    "ReadStats",
    "RosterViewRecord",
    "encode_records",
    "iter_log_files",
    "iter_records",
    "parse_line",
    "parse_record",
    "rotated_log_files",
    "utc_timestamp",
]

ModelSourceName = Literal["mlflow", "local", "fallback"]
FeatureValue = float | str | None
KIND_ROSTER: Final = "lista"  # one student of a roster, logged once per (model, features, cycle)
KIND_VIEW: Final = "consulta"  # one view of a roster: a request, no student data
KIND_PREDICTION: Final = "previsao"  # lines without `tipo`
KIND_INVALID: Final = "invalida"

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
    # Roster lines only: KIND_ROSTER and the roster's id ("modelo@versao/fs<N>/<ciclo>").
    tipo: NotRequired[Literal["lista"]]
    lista: NotRequired[str]
    # The online feature-store version the inputs came from (feature-store endpoints only):
    # with `aluno_id` and the model version it identifies a prediction, counted once.
    features_versao: NotRequired[int | None]


class RosterViewRecord(TypedDict):
    """One view of a roster (`GET /predict/alunos` without ids): a request, no student data."""

    ts: str
    tipo: Literal["consulta"]
    request_id: str
    endpoint: str
    modelo: str
    versao: str
    fonte: ModelSourceName
    features_versao: int
    ciclos: list[int]
    alunos: int
    latencia_ms: float


LogRecord = PredictionRecord | RosterViewRecord


class LogWriteError(OSError):
    """`lost` of the `total` lines of one append did not reach the log (`errno` says why)."""

    def __init__(self, cause: OSError, lost: int, total: int) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.lost = lost
        self.total = total


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


def encode_records(records: Sequence[LogRecord]) -> bytes:
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

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        daily: bool,
        on_loss: Callable[[int], None] | None = None,
    ) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes deve ser positivo")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.daily = daily
        self.on_loss = on_loss  # told how many lines each failed append lost
        self.lost_lines = 0  # lines this process could not write (disk full, I/O error)
        self._lock = threading.Lock()  # flock does not exclude threads sharing one descriptor
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None
        self._day: int | None = None  # epoch day of the open file's first line, once known
        # Size of the open file right after our last write (it ended with a newline): equal to
        # the size seen under the next lock, nobody wrote since and no pread is needed.
        self._end: int | None = None
        self._name = str(self.path)  # os.stat on a str: no pathlib layer on every append
        self._rotation_warned = False
        _INSTANCES.add(self)

    @property
    def markers_dir(self) -> Path:
        """Where `append_once` notes which blocks were written (beside the log, shared)."""
        return self.path.with_name(f".{self.path.stem}-listas")

    # -- public API -------------------------------------------------------------------------

    def append(self, records: Sequence[LogRecord]) -> None:
        """Append `records` atomically (all their lines in one write) to the current file.

        Raises LogWriteError (lines counted in `lost_lines`) when they cannot be written."""
        if not records:
            return
        data = encode_records(records)
        with self._lock:
            self._append_counted(data, len(records), None, count_loss=True)

    def append_once(
        self, key: str, records: Sequence[LogRecord], *, count_loss: bool = True
    ) -> bool:
        """Append `records` unless a block with the same `key` was appended before, by this or
        any other process sharing the log's folder; True when written now.

        The check and the write happen under the log's lock, and the block's marker is created
        right after the write, so two workers (or replicas) never both write it. A block that
        could not be written leaves no marker: a later call writes it. `count_loss=False`
        leaves a failed block out of `lost_lines` (a caller that will retry counts it once)."""
        if not records:
            return False
        data = encode_records(records)
        marker = self.markers_dir / hashlib.sha256(key.encode()).hexdigest()[:32]
        with self._lock:
            return self._append_counted(data, len(records), (marker, key), count_loss=count_loss)

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

    def _append_counted(
        self, data: bytes, lines: int, marker: tuple[Path, str] | None, *, count_loss: bool
    ) -> bool:
        try:
            return self._append_locked(data, marker)
        except OSError as exc:
            error = exc if isinstance(exc, LogWriteError) else LogWriteError(exc, lines, lines)
            if count_loss and error.lost:
                self.lost_lines += error.lost
                if self.on_loss is not None:
                    self.on_loss(error.lost)
            raise error from exc

    def _append_locked(self, data: bytes, marker: tuple[Path, str] | None = None) -> bool:
        while True:
            fd, st = self._lock_current()
            rotated = False
            try:
                if marker is not None and marker[0].exists():
                    return False  # written before, by us or another process
                if self._must_rotate(fd, st, len(data)):
                    rotated = self._rename_current()
                if not rotated:
                    # A writer killed mid-write may have left a partial line: end it first, so
                    # only that line is lost, not ours too. (Not needed when the file still
                    # ends where our own last write, a whole line, ended.)
                    size = st.st_size
                    if size and size != self._end and os.pread(fd, 1, size - 1) != b"\n":
                        data = b"\n" + data
                    self._end = None
                    _write_all(fd, data)
                    if data.endswith(b"\n"):
                        self._end = size + len(data)
                    if marker is not None:
                        _create_marker(*marker)
                    return True
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
                st: os.stat_result | None = os.stat(self._name)  # noqa: PTH116 - hot path
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
        self._end = None
        return fd

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._ident = None
        self._day = None
        self._end = None

    def _forget_after_fork(self) -> None:
        self._lock = threading.Lock()
        if self._fd is not None:
            # Close the child's copy only: LOCK_UN here would release a lock the parent holds.
            os.close(self._fd)
        self._fd = None
        self._ident = None
        self._day = None
        self._end = None

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
    """One write in practice; the loop only covers a short write (signal, disk nearly full).

    On an error, the lines already written whole are kept; LogWriteError says how many of the
    others were lost (a line cut short stays as a malformed line, which readers skip)."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except OSError as exc:
            done = len(data) - len(view)
            whole = data.count(b"\n", 0, done) - (1 if data.startswith(b"\n") and done else 0)
            total = data.count(b"\n") - (1 if data.startswith(b"\n") else 0)
            raise LogWriteError(exc, total - whole, total) from exc
        view = view[written:]


def _create_marker(path: Path, key: str) -> None:
    """Note that the block `key` is in the log (0600, in a 0700 folder beside it)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return
    except OSError as exc:  # the block is written; a later call may write it again
        logger.warning("marcador do bloco %r não criado em %s: %s", key, path, exc)
        return
    try:
        os.write(fd, key.encode() + b"\n")
    except OSError:
        pass  # an empty marker still marks
    finally:
        os.close(fd)


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


def classify(obj: Any) -> str:
    """The kind of a decoded line: KIND_PREDICTION or KIND_ROSTER (a prediction, core fields
    valid), KIND_VIEW (a roster view, its latency valid) or KIND_INVALID."""
    if type(obj) is not dict:
        return KIND_INVALID
    kind = obj.get("tipo")
    if kind == KIND_VIEW:
        return KIND_VIEW if type(obj.get("latencia_ms")) in _NUMBER else KIND_INVALID
    if (
        (kind is not None and kind != KIND_ROSTER)
        or type(obj.get("pv_previsto")) is not bool
        or type(obj.get("probabilidade")) not in _NUMBER
        or type(obj.get("latencia_ms")) not in _NUMBER
    ):
        return KIND_INVALID
    return KIND_PREDICTION if kind is None else KIND_ROSTER


def parse_line(line: bytes) -> tuple[str, dict[str, Any] | None]:
    """(kind, record) of one line; (KIND_INVALID, None) when it is malformed."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return KIND_INVALID, None
    kind = classify(obj)
    return kind, (None if kind == KIND_INVALID else obj)


def parse_record(line: bytes) -> dict[str, Any] | None:
    """The prediction on `line` (a caller's or a roster's), or None when the line is malformed
    or not a prediction (a roster view)."""
    kind, record = parse_line(line)
    return record if kind in (KIND_PREDICTION, KIND_ROSTER) else None


def prediction_key(record: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """What identifies a prediction of a student's own record: (model, version, feature-store
    version, student). None for predictions of caller-given inputs (each one counts)."""
    features_version, student = record.get("features_versao"), record.get("aluno_id")
    if type(features_version) is not int or type(student) is not str:
        return None
    return (record.get("modelo"), record.get("versao"), features_version, student)


@dataclass
class ReadStats:
    """What `iter_records` saw: valid records, malformed lines skipped, unterminated bytes."""

    records: int = 0
    invalid: int = 0
    pending_bytes: int = 0  # the current file's last line, not finished yet (not counted)
    views: int = 0  # roster views (KIND_VIEW lines): requests, not predictions


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
                    record = _counted(line, stats)
                    if record is not None:
                        yield record
            tail = reader.tail.strip()
            if not tail:
                continue
            if index == len(files) - 1 and file == Path(path):
                stats.pending_bytes = len(reader.tail)
                continue
            record = _counted(tail, stats)  # final: a rotated file is never written again
            if record is not None:
                yield record
        finally:
            os.close(fd)


def _counted(line: bytes, stats: ReadStats) -> dict[str, Any] | None:
    kind, record = parse_line(line)
    if kind == KIND_VIEW:
        stats.views += 1
        return None
    if record is None:
        stats.invalid += 1
        return None
    stats.records += 1
    return record
