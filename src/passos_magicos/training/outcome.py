"""What a training run produced, and the figures derived from it (shared by publishing)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from passos_magicos.data.dataset import Dataset
from passos_magicos.features import TransitionSet
from passos_magicos.registry import GateVerdict
from passos_magicos.training.backtest import Backtest
from passos_magicos.training.evaluation import Evaluation
from passos_magicos.training.fairness import FairnessReport
from passos_magicos.training.models import PontoViradaClassifier
from passos_magicos.training.selection import Selection


@dataclass
class TrainOutcome:
    kind: str
    classifier: PontoViradaClassifier
    dataset: Dataset
    transitions: TransitionSet
    evaluations: dict[str, Evaluation]  # "out_of_time" (the newest backtest year) or "grouped_cv"
    selection: Selection | None
    timings: dict[str, float]
    model_card: str
    run_id: str | None = None
    version: str | None = None
    gate: GateVerdict | None = None
    leakage_aucs: dict[str, float] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)  # monitoring's reference profile
    backtest: Backtest | None = None
    fairness: FairnessReport | None = None  # per group and backtest year (training/fairness.py)

    @property
    def headline(self) -> Evaluation:
        return self.evaluations.get("out_of_time") or self.evaluations["grouped_cv"]


def evaluation_key(dataset: Dataset, evaluation: Evaluation, horizon: int) -> str:
    raw = f"{dataset.digest}|{evaluation.protocol}|{evaluation.test_year}|{horizon}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def flat_metrics(outcome: TrainOutcome) -> dict[str, float]:
    prefixes = {"out_of_time": "oot", "grouped_cv": "cv"}
    metrics: dict[str, float] = {}
    for protocol, evaluation in outcome.evaluations.items():
        prefix = prefixes[protocol]
        metrics |= {f"{prefix}_{k}": v for k, v in evaluation.model.items()}
        for name, values in evaluation.baselines.items():
            metrics |= {f"{prefix}_baseline_{name}_{k}": v for k, v in values.items()}
        for name, comparison in evaluation.verdicts().items():
            diff = comparison.difference
            metrics |= {
                f"{prefix}_dif_{name}_roc_auc": diff.value,
                f"{prefix}_dif_{name}_roc_auc_ic_inf": diff.low,
                f"{prefix}_dif_{name}_roc_auc_ic_sup": diff.high,
            }
    if outcome.backtest is not None:
        metrics |= outcome.backtest.flat_metrics()
    if outcome.fairness is not None:
        metrics |= outcome.fairness.flat_metrics()
    return {k: v for k, v in metrics.items() if not np.isnan(v)}


def rescorer(outcome: TrainOutcome) -> Callable[[str], float] | None:
    """Score another registered model on this run's out-of-time test rows (for the gate)."""
    evaluation = outcome.evaluations.get("out_of_time")
    if evaluation is None:
        return None
    test = outcome.transitions.frame[outcome.transitions.frame["ano_alvo"] == evaluation.test_year]

    def score(uri: str) -> float:
        from passos_magicos.training.packaging import conform_inputs, load_classifier

        classifier, _ = load_classifier(uri)
        probability = classifier.predict_proba(conform_inputs(test, classifier.features))
        return float(roc_auc_score(test["pv_proximo"], probability))

    return score


def describe(outcome: TrainOutcome) -> dict[str, Any]:
    """A JSON-able summary of the run (printed by the CLI with --json)."""
    return {
        "modelo": outcome.kind,
        "versao": outcome.version,
        "run_id": outcome.run_id,
        "limiar": outcome.classifier.threshold,
        "metricas": flat_metrics(outcome),
        "backtest": outcome.backtest.as_dict() if outcome.backtest is not None else None,
        "equidade": outcome.fairness.as_dict() if outcome.fairness is not None else None,
        "selecao": outcome.selection.scores if outcome.selection is not None else None,
        "portao": outcome.gate.summary() if outcome.gate is not None else None,
        "aprovado": bool(outcome.gate.passed) if outcome.gate is not None else None,
        "tempos_s": {k: round(v, 2) for k, v in outcome.timings.items()},
        "dataset_sha256": outcome.dataset.digest,
        "descartes": outcome.dataset.report.dropped_by_reason(),
    }


def dump_json(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str)
