"""The prediction log's format: what a line holds and how the lines are read back.

The contract between the API, which writes the log (`serving/prediction_log.py`: locking,
rotation, lost lines), and whoever reads it (the API's own metrics, the monitoring job, realised
performance): below both, so that neither imports the other. Three kinds of line (`tipo`): none
(a prediction a caller asked for), `"lista"` (one student of a roster, written once per model
and feature-store version) and `"consulta"` (one view of a roster, no student data).

Readers never take the writers' lock: a file only grows by whole writes, rotated files
(`<stem>-YYYYMMDDTHHMMSSffffff[-N]<suffix>` beside it) are never written again, and a trailing
line without its newline is "not written yet" (current file) or malformed (rotated file).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, NotRequired, TypedDict

import orjson

ModelSourceName = Literal["mlflow", "local", "fallback"]
FeatureValue = float | str | None
KIND_ROSTER: Final = "lista"  # one student of a roster, logged once per (model, features, cycle)
KIND_VIEW: Final = "consulta"  # one view of a roster: a request, no student data
KIND_PREDICTION: Final = "previsao"  # lines without `tipo`
KIND_INVALID: Final = "invalida"

READ_CHUNK_BYTES: Final = 1 << 20
_NUMBER: Final = (float, int)


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
