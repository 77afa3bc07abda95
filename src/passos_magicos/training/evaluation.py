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
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.parallel import Parallel, delayed

from passos_magicos.data.schema import INDICATORS
from passos_magicos.features import TransitionSet
from passos_magicos.training.models import (
    MODEL_KINDS,
    PontoViradaClassifier,
    apply_calibrator,
    build_estimator,
    fit_calibrator,
)

BASELINES: Final = {
    "ipv_t": "IPV_t sozinho",
    "pv_t": "PV_t sozinho",
    "logistica_simples": "regressão logística simples (8 indicadores + PV_t)",
}
TOP_SHARES: Final = (0.15, 0.25)
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

    @property
    def beats_baselines(self) -> dict[str, bool]:
        """Whether the model's ROC-AUC is above each baseline's, under this protocol."""
        return {
            name: self.model["roc_auc"] > metrics["roc_auc"]
            for name, metrics in self.baselines.items()
        }


# ---------------------------------------------------------------------------------------------
# Metrics and the threshold rule


def choose_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    """Documented rule: the probability cut that maximises F1 on out-of-fold predictions.

    F1 balances missing a student who will reach PV against flagging one who will not; ties go
    to the higher cut (fewer, more confident flags).
    """
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_y = scores[order], y[order]
    true_pos = np.cumsum(sorted_y)
    predicted_pos = np.arange(1, len(y) + 1)
    positives = max(int(y.sum()), 1)
    f1 = 2 * true_pos / (predicted_pos + positives)
    # Only cut between distinct scores.
    distinct = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    f1 = np.where(distinct, f1, -1.0)
    best = int(np.argmax(f1))
    return float(sorted_scores[best])


def recall_at_top(y: np.ndarray, scores: np.ndarray, share: float) -> float:
    k = max(1, math.ceil(share * len(y)))
    top = np.argsort(-scores, kind="stable")[:k]
    positives = int(y.sum())
    return float(y[top].sum() / positives) if positives else float("nan")


def classification_metrics(
    y: np.ndarray, scores: np.ndarray, predicted: np.ndarray
) -> dict[str, float]:
    both_classes = len(np.unique(y)) == 2
    metrics = {
        "roc_auc": float(roc_auc_score(y, scores)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(y, scores)) if both_classes else float("nan"),
        "brier": float(brier_score_loss(y, scores)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
    }
    for share in TOP_SHARES:
        metrics[f"recall_top{round(share * 100)}"] = recall_at_top(y, scores, share)
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
) -> tuple[PontoViradaClassifier, np.ndarray]:
    """Fit one model the way it is registered; also return its calibrated out-of-fold scores."""
    estimator = build_estimator(kind, seed)
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
    "ipv_t": ["ipv"],
    "pv_t": ["pv"],
    "logistica_simples": ["inde", *INDICATORS, "pv"],
}


def _baseline_estimator(features: list[str]) -> Pipeline:
    select = ColumnTransformer([("f", SimpleImputer(strategy="median"), features)])
    return make_pipeline(select, StandardScaler(), LogisticRegression(max_iter=1000))


def _baseline_fit_predict(
    name: str,
    train: pd.DataFrame,
    y_train: np.ndarray,
    test: pd.DataFrame,
    groups: np.ndarray,
    folds: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    estimator = _baseline_estimator(BASELINE_FEATURES[name])
    splits = grouped_splits(y_train, groups, folds, seed)
    oof = out_of_fold_scores(estimator, train, y_train, splits)
    threshold = choose_threshold(y_train, oof)
    scores = clone(estimator).fit(train, y_train).predict_proba(test)[:, 1]
    return scores, (scores >= threshold).astype(int)


# ---------------------------------------------------------------------------------------------
# Protocols

Progress = Callable[[str], None]


def evaluate_out_of_time(
    kind: str, transitions: TransitionSet, folds: int, seed: int
) -> Evaluation:
    """Fit on every transition but the last, test on the last (e.g. 2020→21 vs 2021→22)."""
    years = transitions.years
    if len(years) < 2:
        raise ValueError("out-of-time precisa de pelo menos duas transições")
    test_year = years[-1]
    frame = transitions.frame
    is_test = (frame["ano_alvo"] == test_year).to_numpy()
    X, y, groups = transitions.X, transitions.y, transitions.groups  # noqa: N806
    model, _ = fit_recipe(kind, X[~is_test], y[~is_test], groups[~is_test], folds, seed)
    scores = model.predict_proba(X[is_test])
    predicted = (scores >= model.threshold).astype(int)
    baselines, baseline_scores = {}, {}
    for name in BASELINES:
        b_scores, b_pred = _baseline_fit_predict(
            name, X[~is_test], y[~is_test], X[is_test], groups[~is_test], folds, seed
        )
        baselines[name] = classification_metrics(y[is_test], b_scores, b_pred)
        baseline_scores[name] = b_scores
    return Evaluation(
        protocol="out_of_time",
        description=(
            f"treino nas transições até {years[-2] - 1}→{years[-2]}, "
            f"teste em {test_year - 1}→{test_year}"
        ),
        n_train=int((~is_test).sum()),
        n_test=int(is_test.sum()),
        positive_rate=float(y[is_test].mean()),
        model=classification_metrics(y[is_test], scores, predicted),
        baselines=baselines,
        y_true=y[is_test],
        y_score=scores,
        baseline_scores=baseline_scores,
        test_year=test_year,
    )


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
        model, _ = fit_recipe(kind, X.iloc[train_idx], y[train_idx], groups[train_idx], folds, seed)
        scores[test_idx] = model.predict_proba(X.iloc[test_idx])
        predicted[test_idx] = (scores[test_idx] >= model.threshold).astype(int)
        for name in BASELINES:
            b_scores, b_pred = _baseline_fit_predict(
                name,
                X.iloc[train_idx],
                y[train_idx],
                X.iloc[test_idx],
                groups[train_idx],
                folds,
                seed,
            )
            baseline_scores[name][test_idx] = b_scores
            baseline_pred[name][test_idx] = b_pred
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


SELECTION_MARGIN: Final = 0.005


def choose_kind(cv_auc: dict[str, float]) -> str:
    """`auto`: the simplest kind whose grouped-CV ROC-AUC is within SELECTION_MARGIN of the
    best — differences smaller than that are noise on ~900 transitions."""
    best = max(cv_auc.values())
    return next(k for k in MODEL_KINDS if k in cv_auc and cv_auc[k] >= best - SELECTION_MARGIN)


def quick_cv_auc(kind: str, transitions: TransitionSet, folds: int, seed: int) -> float:
    """Cheap grouped-CV ROC-AUC of the uncalibrated pipeline (ranking only) for `auto`."""
    X, y, groups = transitions.X, transitions.y, transitions.groups  # noqa: N806
    splits = grouped_splits(y, groups, folds, seed)
    scores = out_of_fold_scores(build_estimator(kind, seed), X, y, splits)
    return float(roc_auc_score(y, scores))
