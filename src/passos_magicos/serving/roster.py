"""The roster: the students of one cycle of the online feature store, scored by the served model.

`GET /predict/alunos` (without ids) reads it. A roster is scored once per (model load,
feature-store version, cycle), in one batch, and kept in memory: each worker keeps its own copy,
identical to the others' (same model, same snapshot). It reaches the prediction log once per
(model version, feature-store version, cycle) across workers and replicas, as `tipo: "lista"`
lines (`PredictionLog.append_once`), by whichever worker scored it first. Every view appends a
single `tipo: "consulta"` line (a request: latency and how many students, no student data), so
opening the dashboard's Alunos page again adds no prediction to the log.

The default is the newest cycle: students whose latest record is older have left the
programme, and are scored only when asked for (`ciclo=2023`, `ciclo=todos`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from passos_magicos.feature_store.online import FeatureSnapshot, StudentFeatures
from passos_magicos.prediction_records import (
    KIND_ROSTER,
    KIND_VIEW,
    PredictionRecord,
    RosterViewRecord,
)
from passos_magicos.serving.compiled import encode_inputs
from passos_magicos.serving.prediction_log import LogWriteError, PredictionLog, utc_timestamp
from passos_magicos.serving.runtime import LoadedModel
from passos_magicos.serving.scoring import model_block

logger = logging.getLogger(__name__)

ALL_CYCLES: Final = "todos"
ENDPOINT: Final = "/predict/alunos"
MAX_ENTRIES: Final = 8  # (model load, feature version, cycle) kept; ~1 MB per 2,000 students

# (model name, version, when it was loaded, feature-store version, cycle)
RosterKey = tuple[str, str, str, int, int]


def profile(student: StudentFeatures) -> dict[str, Any]:
    """What the dashboard filters on, from the same snapshot as the features."""
    fase, pedra = student.features.get("fase"), student.features.get("pedra")
    return {
        "fase": int(fase) if isinstance(fase, int | float) else None,
        "turma": student.turma,
        "pedra": pedra if isinstance(pedra, str) else None,
        "genero": student.genero,
    }


def roster_id(model: LoadedModel, snapshot: FeatureSnapshot, cycle: int) -> str:
    """The roster's id in the log: one per (model version, feature-store version, cycle)."""
    return f"{model.name}@{model.version}/fs{snapshot.meta.version}/{cycle}"


@dataclass(frozen=True)
class CycleRoster:
    """The students of one cycle, scored and ranked (most likely to reach PV first)."""

    key: RosterKey
    log_id: str
    ciclo: int
    students: tuple[StudentFeatures, ...]
    bodies: tuple[dict[str, Any], ...]  # `PrevisaoDeAluno` bodies without `request_id`
    records: tuple[PredictionRecord, ...]  # the log lines, in the same order
    scored_at: str


def select_cycles(snapshot: FeatureSnapshot, ciclo: str | None) -> list[int]:
    """The cycles a roster request asks for: the newest by default, one (`2023`) or all."""
    if ciclo is None:
        return [snapshot.meta.latest_cycle]
    if ciclo == ALL_CYCLES:
        return sorted(snapshot.meta.cycles)
    return [int(ciclo)]


class RosterCache:
    """Rosters of this worker, scored on first use and logged once (see the module doc)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[RosterKey, CycleRoster] = OrderedDict()
        self._logged: set[str] = set()  # roster ids known to be in the log
        self._loss_counted: set[str] = set()  # roster ids whose failed write was counted once

    def get(
        self,
        model: LoadedModel,
        snapshot: FeatureSnapshot,
        cycle: int,
        *,
        request_id: str,
        log: PredictionLog,
    ) -> CycleRoster:
        """The cycle's roster (scored now if this worker has not yet), logged if not yet."""
        key: RosterKey = (model.name, model.version, model.loaded_at, snapshot.meta.version, cycle)
        with self._lock:
            roster = self._entries.get(key)
            if roster is None:
                roster = score_roster(model, snapshot, cycle, key, request_id)
                self._entries[key] = roster
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
        self._log_once(roster, log)
        return roster

    def _log_once(self, roster: CycleRoster, log: PredictionLog) -> None:
        if roster.log_id in self._logged or not roster.records:
            return
        first_failure = roster.log_id not in self._loss_counted
        try:
            log.append_once(roster.log_id, roster.records, count_loss=first_failure)
        except LogWriteError as exc:
            # Served anyway; written on a later view once the log can be written again.
            self._loss_counted.add(roster.log_id)
            if first_failure:
                logger.warning(
                    "lista %s não gravada no log (%s): %d linhas perdidas por ora",
                    roster.log_id,
                    exc.strerror,
                    exc.lost,
                )
            return
        self._logged.add(roster.log_id)


def score_roster(
    model: LoadedModel, snapshot: FeatureSnapshot, cycle: int, key: RosterKey, request_id: str
) -> CycleRoster:
    started = time.perf_counter()
    students = sorted(
        (s for s in snapshot.students.values() if s.ano == cycle), key=lambda s: s.aluno_id
    )
    rows = [dict(s.features) for s in students]
    probabilities = model.predict(encode_inputs(rows)) if rows else np.zeros(0)
    labels = (probabilities >= model.threshold).tolist()
    rounded = np.round(probabilities, 6).tolist()
    order = sorted(range(len(students)), key=lambda i: (-rounded[i], students[i].aluno_id))
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    ts = utc_timestamp()
    block = model_block(model)
    log_id = roster_id(model, snapshot, cycle)
    ranked = tuple(students[i] for i in order)
    bodies, records = [], []
    for i in order:
        student = students[i]
        bodies.append(
            {
                "aluno_id": student.aluno_id,
                "ciclo": cycle,
                "probabilidade_pv": rounded[i],
                "pv_previsto": labels[i],
                "limiar": model.threshold,
                "modelo": block,
                "perfil": profile(student),
            }
        )
        records.append(
            PredictionRecord(
                ts=ts,
                request_id=request_id,
                aluno_id=student.aluno_id,
                ciclo=cycle,
                endpoint=ENDPOINT,
                modelo=model.name,
                versao=model.version,
                fonte=model.source,
                features=rows[i],
                probabilidade=rounded[i],
                pv_previsto=labels[i],
                limiar=model.threshold,
                latencia_ms=latency_ms,
                tipo=KIND_ROSTER,
                lista=log_id,
                features_versao=snapshot.meta.version,
            )
        )
    return CycleRoster(
        key=key,
        log_id=log_id,
        ciclo=cycle,
        students=ranked,
        bodies=tuple(bodies),
        records=tuple(records),
        scored_at=ts,
    )


def view_bodies(
    rosters: Sequence[CycleRoster],
    request_id: str,
    model: LoadedModel,
    explain: bool,
) -> list[dict[str, Any]]:
    """The answer's predictions, most likely first (rosters of several cycles merged)."""
    pairs = [
        (body, student)
        for roster in rosters
        for body, student in zip(roster.bodies, roster.students, strict=True)
    ]
    if len(rosters) > 1:
        pairs.sort(key=lambda p: (-p[0]["probabilidade_pv"], p[0]["aluno_id"]))
    bodies = [{"request_id": request_id, **body} for body, _ in pairs]
    if explain and pairs:
        raw = encode_inputs([dict(student.features) for _, student in pairs])
        _, factors = model.predict_and_explain(raw)
        for body, found in zip(bodies, factors, strict=True):
            body["fatores"] = found
    return bodies


def log_view(
    log: PredictionLog,
    *,
    request_id: str,
    model: LoadedModel,
    snapshot: FeatureSnapshot,
    cycles: list[int],
    students: int,
    started: float,
) -> None:
    """One line for the view (a request); a line that cannot be written is counted as lost."""
    record: RosterViewRecord = {
        "ts": utc_timestamp(),
        "tipo": KIND_VIEW,
        "request_id": request_id,
        "endpoint": ENDPOINT,
        "modelo": model.name,
        "versao": model.version,
        "fonte": model.source,
        "features_versao": snapshot.meta.version,
        "ciclos": cycles,
        "alunos": students,
        "latencia_ms": round((time.perf_counter() - started) * 1000, 3),
    }
    with contextlib.suppress(LogWriteError):  # counted by the log; the answer goes out anyway
        log.append([record])
