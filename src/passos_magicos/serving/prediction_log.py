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

The format of a line, and how readers (`SharedLogMetrics`, the monitoring job) read the files
back without the lock, are in `passos_magicos.prediction_records`, below serving and monitoring.
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
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import orjson

from passos_magicos.prediction_records import (
    KIND_INVALID,
    KIND_PREDICTION,
    KIND_ROSTER,
    KIND_VIEW,
    FeatureValue,
    LineReader,
    LogRecord,
    ModelSourceName,
    PredictionRecord,
    ReadStats,
    RosterViewRecord,
    iter_log_files,
    iter_records,
    parse_line,
    parse_record,
    rotated_log_files,
)

# The format's names stay importable from here (the writer's callers and the tests use them).
__all__ = [
    "KIND_INVALID",
    "KIND_PREDICTION",
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

FILE_MODE = 0o600  # students' predictions: owner-only (every replica runs as the same user)
_SECONDS_PER_DAY = 86_400
_EPOCH = date(1970, 1, 1)
_DUMPS_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY
_FIRST_TS = re.compile(rb'"ts"\s*:\s*"(\d{4}-\d{2}-\d{2})')
_HEAD_BYTES = 4096

logger = logging.getLogger(__name__)

# The clock used for rotation decisions, rotated names and `utc_timestamp`; tests replace it.
_now: Callable[[], float] = time.time


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
