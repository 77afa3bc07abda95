"""The expected performance of the cohort being scored now, before its outcomes exist.

The cohort is the newest cycle of the online feature store, scored by the model being served;
its calibrated probabilities give the expected ROC-AUC, PR-AUC, recall in the top K % and PV
rate (`performance.estimated_metrics`, in the spirit of NannyML's CBPE). Scoring a thousand
students and drawing the bootstrap costs a fraction of a second, so the result is kept until the
model or the feature-store version changes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from passos_magicos.feature_store.online import FeatureSnapshot
from passos_magicos.performance import Interval, estimated_metrics, positive_rate
from passos_magicos.performance_history import utc_now_iso
from passos_magicos.serving.compiled import encode_inputs
from passos_magicos.serving.runtime import LoadedModel

# (model name, version, when it was loaded, feature-store version)
CohortKey = tuple[str, str, str, int]


class IncompatibleFeaturesError(RuntimeError):
    """The feature store holds inputs for another model (message in pt-BR)."""


@dataclass(frozen=True)
class CohortEstimate:
    key: CohortKey
    ciclo: int
    n: int
    figures: dict[str, Interval]
    expected_rate: float  # mean probability: the PV rate the model expects
    predicted_rate: float  # share with pv_previsto
    threshold: float
    replicates: int
    computed_at: str


def cohort_key(model: LoadedModel, snapshot: FeatureSnapshot) -> CohortKey:
    return (model.name, model.version, model.loaded_at, snapshot.meta.version)


def estimate_cohort(
    model: LoadedModel, snapshot: FeatureSnapshot, replicates: int, seed: int
) -> CohortEstimate:
    if tuple(snapshot.meta.feature_columns) != model.classifier.features:
        raise IncompatibleFeaturesError(
            f"feature store ({snapshot.meta.feature_set_version}) não corresponde às entradas "
            "do modelo em uso; rode `passos-magicos materialize`"
        )
    cycle = snapshot.meta.latest_cycle
    students = [s for s in snapshot.students.values() if s.ano == cycle]
    probabilities = (
        np.asarray(model.predict(encode_inputs([dict(s.features) for s in students])))
        if students
        else np.zeros(0)
    )
    return CohortEstimate(
        key=cohort_key(model, snapshot),
        ciclo=cycle,
        n=len(students),
        figures=estimated_metrics(probabilities, replicates, seed),
        expected_rate=float(probabilities.mean()) if len(probabilities) else float("nan"),
        predicted_rate=positive_rate(probabilities, model.threshold),
        threshold=model.threshold,
        replicates=replicates,
        computed_at=utc_now_iso(),
    )


class CohortEstimates:
    """The latest estimate, recomputed only when the model or the feature store changed; one
    computation at a time (concurrent first requests wait for it instead of repeating it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: CohortEstimate | None = None

    def get(
        self, model: LoadedModel, snapshot: FeatureSnapshot, replicates: int, seed: int
    ) -> CohortEstimate:
        key = cohort_key(model, snapshot)
        latest = self._latest
        if latest is not None and latest.key == key:
            return latest
        with self._lock:
            latest = self._latest
            if latest is not None and latest.key == key:
                return latest
            estimate = estimate_cohort(model, snapshot, replicates, seed)
            self._latest = estimate
            return estimate
