"""`GET /metrics` figures computed from the shared prediction log, not from process memory.

Every worker and replica appends to the same log (a shared volume), so every replica that
reads it reports the same totals, class distribution and latency percentiles, whichever pod
answers. `SharedLogMetrics` reads the log incrementally: the first `refresh()` reads every
file (rotated, then current); later ones read only the bytes appended since, following
rotations, so a `GET /metrics` costs a `stat` and a small read.

What is counted: a prediction of a student's own record (feature-store endpoints, rosters) once
per (model version, feature-store version, student), however often it is viewed again
(`predicoes_repetidas` counts the repeats); a prediction of caller-given inputs each time.
Requests are counted apart (`requisicoes`): each call of a prediction endpoint, each roster
view (`consultas_lista`). Lines lost to a full disk never reach the log: the router adds
`linhas_perdidas` from the shared loss counter.
"""

from __future__ import annotations

import math
import os
import stat
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from passos_magicos.prediction_records import (
    KIND_INVALID,
    KIND_ROSTER,
    KIND_VIEW,
    LineReader,
    classify,
    prediction_key,
    rotated_log_files,
)

__all__ = ["MetricsSnapshot", "SharedLogMetrics", "prometheus_text"]

POSITIVE, NEGATIVE = "pv_sim", "nao"
UNKNOWN_VERSION = "desconhecida"
_QUANTILES = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0))


@dataclass(frozen=True)
class MetricsSnapshot:
    """The figures of `GET /metrics` (field names are the API's pt-BR JSON contract).

    Totals cover every line of the log (all files kept on the volume); latency and probability
    statistics cover the last `janela` predictions. Statistics of an empty window are None.
    """

    total_predicoes: int
    por_classe: Mapping[str, int]
    distribuicao_classes: Mapping[str, float]
    distribuicao_classes_janela: Mapping[str, float]
    latencia_ms: Mapping[str, float | None]
    probabilidade_media: float | None
    versoes_modelo: Mapping[str, int]
    ultima_predicao_em: str | None
    linhas_invalidas: int
    janela: int
    predicoes_na_janela: int = field(default=0)
    requisicoes: int = 0  # calls of prediction endpoints and roster views
    consultas_lista: int = 0  # roster views (GET /predict/alunos without ids)
    listas_registradas: int = 0  # rosters logged (one per model, feature-store version, cycle)
    predicoes_repetidas: int = 0  # the same student, model and features again: not counted
    linhas_perdidas: int = 0  # lines that could not be written (full disk), every replica

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_predicoes": self.total_predicoes,
            "requisicoes": self.requisicoes,
            "consultas_lista": self.consultas_lista,
            "listas_registradas": self.listas_registradas,
            "predicoes_repetidas": self.predicoes_repetidas,
            "linhas_perdidas": self.linhas_perdidas,
            "por_classe": dict(self.por_classe),
            "distribuicao_classes": dict(self.distribuicao_classes),
            "distribuicao_classes_janela": dict(self.distribuicao_classes_janela),
            "latencia_ms": dict(self.latencia_ms),
            "probabilidade_media": self.probabilidade_media,
            "versoes_modelo": dict(self.versoes_modelo),
            "ultima_predicao_em": self.ultima_predicao_em,
            "linhas_invalidas": self.linhas_invalidas,
            "janela": self.janela,
            "predicoes_na_janela": self.predicoes_na_janela,
        }


def _percentile(ordered: list[float], q: float) -> float:
    """numpy's default ("linear") percentile of sorted values, without importing numpy."""
    rank = q / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _shares(positive: int, total: int) -> dict[str, float]:
    if total == 0:
        return {POSITIVE: 0.0, NEGATIVE: 0.0}
    share = round(positive / total, 6)
    return {POSITIVE: share, NEGATIVE: round(1.0 - share, 6)}


class SharedLogMetrics:
    """Aggregates of the prediction log at `path`, kept up to date by `refresh()`.

    Only aggregates and the last `window` latencies / probabilities / classes are kept in
    memory, never the records. Thread-safe: refresh and snapshot serialise on one lock.
    """

    def __init__(self, path: Path, window: int) -> None:
        if window < 1:
            raise ValueError("window deve ser ao menos 1")
        self.path = Path(path)
        self.window = window
        self._lock = threading.Lock()
        self._started = False
        # The file followed at the last refresh (dev, inode) and the byte after its last
        # complete line; a trailing line without its newline is read again next time.
        self._current: tuple[int, int] | None = None
        self._offset = 0
        self._done_rotated: set[str] = set()  # names of rotated files fully read
        self._total = 0
        self._positive = 0
        self._invalid = 0
        self._versions: dict[str, int] = {}
        self._last_ts: str | None = None
        self._last_request: Any = None
        self._requests = 0
        self._views = 0
        self._repeated = 0
        self._rosters: set[str] = set()  # roster ids seen (a handful per model version)
        # Predictions of students' own records seen: (model, version, features) → students.
        self._seen: dict[tuple[Any, Any, int], set[str]] = {}
        self._latencies: deque[float] = deque(maxlen=window)  # one per request
        self._probabilities: deque[float] = deque(maxlen=window)
        self._classes: deque[bool] = deque(maxlen=window)

    def refresh(self) -> None:
        """Read what was appended since the last call (everything on the first call)."""
        with self._lock:
            self._refresh_locked()

    def snapshot(self) -> MetricsSnapshot:
        with self._lock:
            latencies = sorted(self._latencies)
            probabilities = list(self._probabilities)
            window_positive = sum(self._classes)
            window_count = len(self._classes)
            total, positive = self._total, self._positive
            versions = dict(sorted(self._versions.items()))
            last_ts, invalid = self._last_ts, self._invalid
            requests, views, repeated = self._requests, self._views, self._repeated
            rosters = len(self._rosters)
        latency: dict[str, float | None] = dict.fromkeys(("p50", "p95", "p99", "media"))
        if latencies:
            for key, q in _QUANTILES:
                latency[key] = round(_percentile(latencies, q), 3)
            latency["media"] = round(math.fsum(latencies) / len(latencies), 3)
        return MetricsSnapshot(
            total_predicoes=total,
            por_classe={POSITIVE: positive, NEGATIVE: total - positive},
            distribuicao_classes=_shares(positive, total),
            distribuicao_classes_janela=_shares(window_positive, window_count),
            latencia_ms=latency,
            probabilidade_media=(
                round(math.fsum(probabilities) / len(probabilities), 6) if probabilities else None
            ),
            versoes_modelo=versions,
            ultima_predicao_em=last_ts,
            linhas_invalidas=invalid,
            janela=self.window,
            predicoes_na_janela=window_count,
            requisicoes=requests,
            consultas_lista=views,
            listas_registradas=rosters,
            predicoes_repetidas=repeated,
        )

    # -- incremental reading ----------------------------------------------------------------

    def _refresh_locked(self) -> None:
        # Open the current file BEFORE listing rotated files: if it is rotated in between, it
        # shows up in the listing and is finished there, and is not read again below.
        try:
            fd: int | None = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = None
        if fd is not None and not stat.S_ISREG(os.fstat(fd).st_mode):
            # Not a log file (a device such as /dev/full, a folder): nothing to read, and a
            # device could be read forever.
            os.close(fd)
            fd = None
        try:
            ident = _identity(os.fstat(fd)) if fd is not None else None
            finished: set[tuple[int, int]] = set()
            if not self._started or ident is None or ident != self._current:
                finished = self._read_new_rotated_files()
            self._started = True
            if fd is None or ident is None or ident in finished:
                self._current, self._offset = None, 0
                return
            if ident != self._current:
                self._current, self._offset = ident, 0
            elif os.fstat(fd).st_size < self._offset:
                self._offset = 0  # truncated or replaced in place: start over
            reader = LineReader(fd, self._offset)
            self._consume(reader)
            self._offset = reader.offset
        finally:
            if fd is not None:
                os.close(fd)

    def _read_new_rotated_files(self) -> set[tuple[int, int]]:
        """Read rotated files not read yet, oldest first; return their identities."""
        finished: set[tuple[int, int]] = set()
        listed = rotated_log_files(self.path)
        for file in listed:
            if file.name in self._done_rotated:
                continue
            try:
                fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # pruned by retention in the meantime
            try:
                ident = _identity(os.fstat(fd))
                # The file we were following: continue where we stopped.
                start = self._offset if ident == self._current else 0
                reader = LineReader(fd, start)
                self._consume(reader)
                tail = reader.tail.strip()
                if tail:
                    # Rotated files are never written again: the last line is final.
                    self._consume_line(tail)
            finally:
                os.close(fd)
            if ident == self._current:
                self._current, self._offset = None, 0
            finished.add(ident)
            self._done_rotated.add(file.name)
        # Forget names that are gone (retention), so the set stays as small as the directory.
        self._done_rotated.intersection_update(file.name for file in listed)
        return finished

    def _consume(self, reader: Iterable[list[bytes]]) -> None:
        """Fold every complete line of `reader` into the aggregates (one decode, one
        `classify` and, for a prediction, one `_fold` per line)."""
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        fold = self._fold
        for lines in reader:
            for line in lines:
                if not line:
                    continue
                try:
                    obj = loads(line)
                except decode_error:
                    self._invalid += 1
                    continue
                kind = classify(obj)
                if kind == KIND_INVALID:
                    self._invalid += 1
                elif kind == KIND_VIEW:  # a roster view: a request, no prediction
                    self._requests += 1
                    self._views += 1
                    self._latencies.append(obj["latencia_ms"])
                else:
                    fold(obj, kind)

    def _fold(self, obj: dict[str, Any], kind: str) -> None:
        if kind == KIND_ROSTER:
            roster = obj.get("lista")
            if type(roster) is str:
                self._rosters.add(roster)
        else:
            # A batch logs one line per student with the request's latency, on consecutive
            # lines: count the request and its latency once.
            request = obj.get("request_id")
            if request is None or request != self._last_request:
                self._requests += 1
                self._latencies.append(obj["latencia_ms"])
            self._last_request = request
        key = prediction_key(obj)
        if key is not None:
            students = self._seen.setdefault(key[:3], set())
            if key[3] in students:
                self._repeated += 1
                return
            students.add(key[3])
        pv = obj["pv_previsto"]
        self._total += 1
        if pv:
            self._positive += 1
        version = obj.get("versao")
        if type(version) is not str:
            version = UNKNOWN_VERSION
        self._versions[version] = self._versions.get(version, 0) + 1
        ts = obj.get("ts")
        if type(ts) is str and (self._last_ts is None or ts > self._last_ts):
            self._last_ts = ts
        self._probabilities.append(obj["probabilidade"])
        self._classes.append(pv)

    def _consume_line(self, line: bytes) -> None:
        """Fold one line (a rotated file's unterminated last line) into the aggregates."""
        self._consume([[line]])


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


# -- Prometheus text exposition format 0.0.4 -------------------------------------------------

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _timestamp_seconds(ts: str | None) -> float | None:
    if ts is None:
        return None
    try:
        return datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: list[tuple[Mapping[str, str], float | None]],
    ) -> None:
        self.lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            rendered = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
            label_part = f"{{{rendered}}}" if rendered else ""
            self.lines.append(f"{name}{label_part} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def prometheus_text(
    snapshot: MetricsSnapshot, model_name: str, model_version: str | None, ready: bool
) -> str:
    """`snapshot` (plus this replica's model and readiness) in the Prometheus text format."""
    out = _Exposition()
    out.family(
        "passos_predicoes_total",
        "counter",
        "Predições registradas no log compartilhado, por classe prevista (cada aluno, versão "
        "do modelo e versão do feature store contado uma vez).",
        [({"classe": cls}, n) for cls, n in snapshot.por_classe.items()],
    )
    out.family(
        "passos_requisicoes_total",
        "counter",
        "Chamadas dos endpoints de previsão e consultas à lista de alunos.",
        [({}, snapshot.requisicoes)],
    )
    out.family(
        "passos_consultas_lista_total",
        "counter",
        "Consultas à lista de alunos (GET /predict/alunos sem ids).",
        [({}, snapshot.consultas_lista)],
    )
    out.family(
        "passos_listas_registradas_total",
        "counter",
        "Listas pontuadas registradas no log (uma por versão do modelo, do feature store e ciclo).",
        [({}, snapshot.listas_registradas)],
    )
    out.family(
        "passos_predicoes_repetidas_total",
        "counter",
        "Previsões repetidas (mesmo aluno, versão do modelo e do feature store), não contadas.",
        [({}, snapshot.predicoes_repetidas)],
    )
    out.family(
        "passos_predicoes_por_versao_total",
        "counter",
        "Predições registradas no log compartilhado, por versão do modelo.",
        [({"versao": version}, n) for version, n in snapshot.versoes_modelo.items()],
    )
    out.family(
        "passos_latencia_ms",
        "gauge",
        f"Latência das predições em ms (quantis das últimas {snapshot.janela} predições).",
        [
            ({"quantile": q}, snapshot.latencia_ms.get(key))
            for q, key in (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))
        ],
    )
    out.family(
        "passos_latencia_media_ms",
        "gauge",
        f"Latência média das predições em ms (últimas {snapshot.janela} predições).",
        [({}, snapshot.latencia_ms.get("media"))],
    )
    out.family(
        "passos_probabilidade_media",
        "gauge",
        f"Probabilidade média de ponto de virada (últimas {snapshot.janela} predições).",
        [({}, snapshot.probabilidade_media)],
    )
    out.family(
        "passos_proporcao_pv_sim_janela",
        "gauge",
        f"Proporção de predições pv_sim nas últimas {snapshot.janela} predições.",
        [({}, snapshot.distribuicao_classes_janela.get(POSITIVE))],
    )
    last_seconds = _timestamp_seconds(snapshot.ultima_predicao_em)
    if last_seconds is not None:
        out.family(
            "passos_ultima_predicao_timestamp_seconds",
            "gauge",
            "Momento (Unix, UTC) da predição mais recente no log compartilhado.",
            [({}, last_seconds)],
        )
    out.family(
        "passos_log_linhas_invalidas_total",
        "counter",
        "Linhas malformadas ignoradas no log de predições.",
        [({}, snapshot.linhas_invalidas)],
    )
    out.family(
        "passos_log_linhas_perdidas_total",
        "counter",
        "Linhas que não puderam ser gravadas no log (disco cheio, erro de E/S), em todas as "
        "réplicas.",
        [({}, snapshot.linhas_perdidas)],
    )
    out.family(
        "passos_modelo_info",
        "gauge",
        "Modelo carregado nesta réplica.",
        [({"modelo": model_name, "versao": model_version or "nenhuma"}, 1)],
    )
    out.family(
        "passos_api_pronta",
        "gauge",
        "1 quando esta réplica tem um modelo carregado e aceita predições.",
        [({}, 1 if ready else 0)],
    )
    return out.text()
