"""Honest evaluation: out-of-time and student-grouped CV, the same metrics for the baselines.

Every number comes from rows the model (and its calibration and threshold) never saw: the
recipe — fit, calibrate on grouped out-of-fold scores, pick the threshold — is re-run inside
each training split.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    f1_score,
    precision_score,
    recall_score,
)
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.parallel import Parallel, delayed

from passos_magicos.data.schema import INDICATORS
from passos_magicos.features import TransitionSet
from passos_magicos.performance import DEFAULT_REPLICATES, Comparison, ScoredSet, point_metrics
from passos_magicos.training.models import (
    PontoViradaClassifier,
    apply_calibrator,
    build_estimator,
    fit_calibrator,
)

BASELINES: Final = {
    "inde_t": "INDE_t sozinho",
    "ipv_t": "IPV_t sozinho",
    "logistica_simples": "regressão logística simples (8 indicadores + PV_t)",
}
FOLD_JOBS: Final = min(2, os.cpu_count() or 1)


@dataclass
class Evaluation:
    """Metrics of the model and of each baseline under one protocol."""

    protocol: str  # "out_of_time" | "grouped_cv"
    description: str
    n_train: int
    n_test: int
    positive_rate: float
    model: dict[str, float]
    baselines: dict[str, dict[str, float]]
    y_true: np.ndarray = field(repr=False)
    y_score: np.ndarray = field(repr=False)
    baseline_scores: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    test_year: int | None = None
    scored: ScoredSet | None = field(repr=False, default=None)

    def paired(self, replicates: int = DEFAULT_REPLICATES, seed: int = 0) -> ScoredSet:
        """Model and baselines on the same students, for intervals and paired differences."""
        if self.scored is None:
            scores = {"modelo": self.y_score, **self.baseline_scores}
            self.scored = ScoredSet(self.y_true, scores, replicates, seed)
        return self.scored

    def verdicts(self, metric: str = "roc_auc") -> dict[str, Comparison]:
        """Model − baseline with its paired interval: `supera` only when it excludes zero."""
        scored = self.paired()
        return {name: scored.compare("modelo", name, metric) for name in self.baselines}


# ---------------------------------------------------------------------------------------------
# Metrics and the threshold rule


def choose_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    """The fallback cut, set at fitting time: the probability at which the share of students
    flagged in the out-of-fold predictions equals the real PV rate of the training cycles.
    Training then replaces it by `cohort_threshold` on the cycle it will score."""
    n = len(scores)
    if n == 0:
        return 0.5
    flagged = min(max(round(float(np.mean(y)) * n), 1), n)
    return float(np.sort(scores)[::-1][flagged - 1])


def cohort_threshold(probabilities: np.ndarray) -> float:
    """The rule for `pv_previsto` on the cycle being scored: flag as many students as the
    cohort is expected to have reach PV — the sum of their calibrated probabilities — taking
    the most likely first. The cut is the probability of the last one flagged.

    PV rates move between 11 % and 16 %; a cut fixed at training flags too many when the
    cohort's probabilities shift up (20 % for a real 16 % in 2023→2024) and too few when they
    shift down. Calibrated probabilities follow the shift, so their sum does too.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    p = p[np.isfinite(p)]
    if len(p) == 0:
        return 0.5
    expected = min(max(round(float(p.sum())), 1), len(p))
    return float(np.sort(p)[::-1][expected - 1])


def recall_at_top(y: np.ndarray, scores: np.ndarray, share: float) -> float:
    k = max(1, math.ceil(share * len(y)))
    top = np.argsort(-scores, kind="stable")[:k]
    positives = int(y.sum())
    return float(y[top].sum() / positives) if positives else float("nan")


def classification_metrics(
    y: np.ndarray, scores: np.ndarray, predicted: np.ndarray
) -> dict[str, float]:
    """Ranking and calibration figures (see `performance`) and the label's own figures."""
    metrics = point_metrics(y, scores)
    metrics |= {
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "predicted_rate": float(np.mean(predicted)) if len(predicted) else float("nan"),
    }
    return metrics


# ---------------------------------------------------------------------------------------------
# The recipe: fit + grouped out-of-fold calibration + threshold


def grouped_splits(
    y: np.ndarray, groups: np.ndarray, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    n_folds = max(2, min(folds, int(np.bincount(y).min())))
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y, groups))


def out_of_fold_scores(
    estimator: Pipeline,
    X: pd.DataFrame,  # noqa: N803
    y: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    def fit_fold(train_idx: np.ndarray, test_idx: np.ndarray) -> np.ndarray:
        fitted = clone(estimator).fit(X.iloc[train_idx], y[train_idx])
        return np.asarray(fitted.predict_proba(X.iloc[test_idx])[:, 1])

    # Threads: tree building and BLAS release the GIL, and nothing is copied to workers.
    fold_scores = Parallel(n_jobs=FOLD_JOBS, prefer="threads")(
        delayed(fit_fold)(train_idx, test_idx) for train_idx, test_idx in splits
    )
    scores = np.full(len(y), np.nan)
    for (_, test_idx), values in zip(splits, fold_scores, strict=True):
        scores[test_idx] = values
    return scores


def fit_recipe(
    kind: str,
    X: pd.DataFrame,  # noqa: N803
    y: np.ndarray,
    groups: np.ndarray,
    folds: int,
    seed: int,
    estimator: Pipeline | None = None,
) -> tuple[PontoViradaClassifier, np.ndarray]:
    """Fit one model the way it is registered (or a baseline's `estimator` the same way); also
    return its calibrated out-of-fold scores."""
    estimator = build_estimator(kind, seed) if estimator is None else estimator
    splits = grouped_splits(y, groups, folds, seed)
    raw_oof = out_of_fold_scores(estimator, X, y, splits)
    calibrator = fit_calibrator(raw_oof, y)
    oof = apply_calibrator(calibrator, raw_oof)
    threshold = choose_threshold(y, oof)
    pipeline = clone(estimator).fit(X, y)
    model = PontoViradaClassifier(
        kind=kind,
        pipeline=pipeline,
        calibrator=calibrator,
        threshold=threshold,
        features=tuple(X.columns),
    )
    return model, oof


# ---------------------------------------------------------------------------------------------
# Baselines: one feature, a logistic regression on it (so they have probabilities too)

BASELINE_FEATURES: Final = {
    "inde_t": ["inde"],
    "ipv_t": ["ipv"],
    "logistica_simples": ["inde", *INDICATORS, "pv"],
}


def baseline_estimator(name: str) -> Pipeline:
    select = ColumnTransformer([("f", SimpleImputer(strategy="median"), BASELINE_FEATURES[name])])
    return make_pipeline(select, StandardScaler(), LogisticRegression(max_iter=1000))


def fit_baseline(
    name: str,
    X: pd.DataFrame,  # noqa: N803
    y: np.ndarray,
    groups: np.ndarray,
    folds: int,
    seed: int,
) -> PontoViradaClassifier:
    """A baseline fitted by the same recipe as the model (calibration and label rule too)."""
    model, _ = fit_recipe(name, X, y, groups, folds, seed, baseline_estimator(name))
    return model


# ---------------------------------------------------------------------------------------------
# Protocols

Progress = Callable[[str], None]


def evaluate_grouped_cv(
    kind: str,
    transitions: TransitionSet,
    folds: int,
    seed: int,
    progress: Progress | None = None,
) -> Evaluation:
    """Student-grouped CV: a student's transitions are never on both sides of a split."""
    X, y, groups = transitions.X, transitions.y, transitions.groups  # noqa: N806
    outer = grouped_splits(y, groups, folds, seed + 1)
    scores = np.full(len(y), np.nan)
    predicted = np.zeros(len(y), dtype=int)
    baseline_scores = {name: np.full(len(y), np.nan) for name in BASELINES}
    baseline_pred = {name: np.zeros(len(y), dtype=int) for name in BASELINES}
    for fold, (train_idx, test_idx) in enumerate(outer, start=1):
        if progress:
            progress(f"fold {fold}/{len(outer)}")
        fitted = {"modelo": fit_recipe(kind, *_rows(X, y, groups, train_idx), folds, seed)[0]}
        for name in BASELINES:
            fitted[name] = fit_baseline(name, *_rows(X, y, groups, train_idx), folds, seed)
        test_rows = X.iloc[test_idx]
        for name, model in fitted.items():
            fold_scores = model.predict_proba(test_rows)
            fold_pred = (fold_scores >= model.threshold).astype(int)
            if name == "modelo":
                scores[test_idx], predicted[test_idx] = fold_scores, fold_pred
            else:
                baseline_scores[name][test_idx] = fold_scores
                baseline_pred[name][test_idx] = fold_pred
    return Evaluation(
        protocol="grouped_cv",
        description=f"validação cruzada em {len(outer)} partes agrupadas por aluno",
        n_train=len(y),
        n_test=len(y),
        positive_rate=float(y.mean()),
        model=classification_metrics(y, scores, predicted),
        baselines={
            name: classification_metrics(y, baseline_scores[name], baseline_pred[name])
            for name in BASELINES
        },
        y_true=y,
        y_score=scores,
        baseline_scores=baseline_scores,
    )


def _rows(
    X: pd.DataFrame,  # noqa: N803
    y: np.ndarray,
    groups: np.ndarray,
    index: np.ndarray,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    return X.iloc[index], y[index], groups[index]
