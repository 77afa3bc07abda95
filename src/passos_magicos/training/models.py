"""Candidate models: sklearn pipelines that take the raw canonical inputs.

Every pipeline starts with the same preprocessing: changes since t−1 are derived from the
`_anterior` fields, missing values are imputed with a missing flag, and pedra is encoded by
its band order. The fitted model (`PontoViradaClassifier`) adds a Platt calibration fitted on
student-grouped out-of-fold scores and the decision threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OrdinalEncoder, StandardScaler

from passos_magicos.data.schema import INDICATORS, PEDRAS
from passos_magicos.features import CATEGORICAL, CURRENT_NUMERIC, HISTORY_FIELDS, MODEL_INPUTS

MODEL_KINDS: Final = (
    "compact_logistic",
    "logistic_regression",
    "random_forest",
    "hist_gradient_boosting",
)
"""Candidate kinds, simplest first (`auto` prefers the simpler one unless another wins clearly)."""

COMPACT_FEATURES: Final = ("inde", "ipv", "ida", "ieg", "pv")
"""The compact logistic regression's inputs: the indicators that rank next year's PV best and
most steadily across the 2021→22 and 2022→23 cycles (the years the design was chosen on)."""
COMPACT_C: Final = 0.3

DELTA_FEATURES: Final = tuple(f"delta_{name}" for name in HISTORY_FIELDS)


class ChangeSinceLastCycle(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Replaces each `<x>_anterior` input by `delta_<x>` = x(t) − x(t−1) (NaN when unknown)."""

    def fit(self, X: pd.DataFrame, y: object = None) -> ChangeSinceLastCycle:  # noqa: N803
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
        out = X[[c for c in X.columns if not c.endswith("_anterior")]].copy()
        for name in HISTORY_FIELDS:
            previous = f"{name}_anterior"
            if previous in X and name in X:
                out[f"delta_{name}"] = X[name].astype(float) - X[previous].astype(float)
        return out

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        names = [c for c in (input_features or MODEL_INPUTS) if not c.endswith("_anterior")]
        return np.array([*names, *DELTA_FEATURES], dtype=object)


# Inputs that may be unknown for a student; a flag tells the model that they were missing.
# One flag covers the whole previous cycle (its fields are missing together).
MISSING_FLAGGED: Final = ("idade", "anos_pm", "pv", "delta_inde")
NUMERIC_COLUMNS: Final = (*CURRENT_NUMERIC, *DELTA_FEATURES)
TRANSFORMED_FEATURES: Final = (
    *NUMERIC_COLUMNS,
    *(f"missingindicator_{name}" for name in MISSING_FLAGGED),
    *CATEGORICAL,
)
# Domain prior: a higher indicator (or PV) at t never lowers the chance of PV at t+1.
INCREASING: Final = frozenset({"inde", *INDICATORS, "pv", "pedra"})
MONOTONIC_CST: Final = tuple(1 if name in INCREASING else 0 for name in TRANSFORMED_FEATURES)


class ColumnSubset(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Keeps some of the preprocessed columns (by name, from TRANSFORMED_FEATURES)."""

    def __init__(self, names: tuple[str, ...] = ()) -> None:
        self.names = names

    @property
    def indices(self) -> list[int]:
        return [TRANSFORMED_FEATURES.index(name) for name in self.names]

    def fit(self, X: np.ndarray, y: object = None) -> ColumnSubset:  # noqa: N803
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        return np.asarray(X)[:, self.indices]

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        return np.array(list(self.names), dtype=object)


def _preprocessor(scale: bool) -> Pipeline:
    """Same output columns whatever the training rows (TRANSFORMED_FEATURES, in that order)."""
    scaler = [StandardScaler()] if scale else []
    values = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), *scaler)
    pedra = make_pipeline(
        OrdinalEncoder(
            categories=[list(PEDRAS)],
            handle_unknown="use_encoded_value",
            unknown_value=np.nan,
            encoded_missing_value=np.nan,
        ),
        SimpleImputer(strategy="median", keep_empty_features=True),
        *([StandardScaler()] if scale else []),
    )
    columns = ColumnTransformer(
        [
            ("values", values, list(NUMERIC_COLUMNS)),
            ("missing", MissingIndicator(features="all"), list(MISSING_FLAGGED)),
            ("pedra", pedra, list(CATEGORICAL)),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline([("changes", ChangeSinceLastCycle()), ("columns", columns)])


def build_estimator(kind: str, seed: int) -> Pipeline:
    """An unfitted pipeline for one model kind (hyper-parameters chosen for ~1,000 rows)."""
    if kind == "random_forest":
        estimator: Any = RandomForestClassifier(
            n_estimators=150,
            min_samples_leaf=20,
            max_features="sqrt",
            monotonic_cst=list(MONOTONIC_CST),
            n_jobs=1,  # on ~1,000 rows thread start-up costs more than it saves
            random_state=seed,
        )
        return Pipeline([("prep", _preprocessor(scale=False)), ("model", estimator)])
    if kind == "compact_logistic":
        return Pipeline(
            [
                ("prep", _preprocessor(scale=True)),
                ("select", ColumnSubset(COMPACT_FEATURES)),
                ("model", LogisticRegression(C=COMPACT_C, max_iter=2000)),
            ]
        )
    if kind == "logistic_regression":
        estimator = LogisticRegression(
            C=1.0, max_iter=2000
        )  # sklearn's default C: not tuned on test
        return Pipeline([("prep", _preprocessor(scale=True)), ("model", estimator)])
    if kind == "hist_gradient_boosting":
        estimator = HistGradientBoostingClassifier(
            max_depth=3,
            learning_rate=0.04,
            max_iter=200,
            min_samples_leaf=30,
            l2_regularization=1.0,
            monotonic_cst=list(MONOTONIC_CST),
            random_state=seed,
        )
        return Pipeline([("prep", _preprocessor(scale=False)), ("model", estimator)])
    raise ValueError(f"modelo desconhecido: {kind!r}; opções: {', '.join(MODEL_KINDS)}, auto")


def model_params(kind: str, pipeline: Pipeline) -> dict[str, Any]:
    params = pipeline.named_steps["model"].get_params()
    return {f"{kind}.{k}": v for k, v in sorted(params.items()) if np.isscalar(v) or v is None}


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(clipped / (1 - clipped)))


@dataclass
class PontoViradaClassifier:
    """A fitted pipeline + Platt calibration + decision threshold: what gets registered."""

    kind: str
    pipeline: Pipeline
    calibrator: LogisticRegression
    threshold: float
    features: tuple[str, ...] = MODEL_INPUTS
    metadata: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Calibrated probability of Ponto de Virada in the next cycle, one per row."""
        raw = self.pipeline.predict_proba(X[list(self.features)])[:, 1]
        return np.asarray(self.calibrator.predict_proba(_logit(raw).reshape(-1, 1))[:, 1])

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return (self.predict_proba(X) >= self.threshold).astype(int)


def fit_calibrator(raw_scores: np.ndarray, y: np.ndarray) -> LogisticRegression:
    calibrator = LogisticRegression(C=1e6, max_iter=1000)
    calibrator.fit(_logit(raw_scores).reshape(-1, 1), y)
    return calibrator


def apply_calibrator(calibrator: LogisticRegression, raw_scores: np.ndarray) -> np.ndarray:
    return np.asarray(calibrator.predict_proba(_logit(raw_scores).reshape(-1, 1))[:, 1])


EstimatorFactory = Callable[[], Pipeline]
