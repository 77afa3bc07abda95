"""Ranking and calibration metrics with intervals, shared by the backtest (training) and the
realised / estimated performance (monitoring). Plain numpy: the monitoring job stays light.

Every metric is computed from *masses*: each student has a positive mass and a negative mass.
- observed labels: (y, 1 − y);
- a bootstrap replicate: the same times the replicate's multiplicity of the student;
- an estimate before the outcomes (in the spirit of NannyML's CBPE): (p, 1 − p), the
  calibrated probability as the expected label.
So one vectorised routine gives point figures, bootstrap intervals (B replicates at once) and
expected figures, with ties handled as scikit-learn does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

Array = np.ndarray[Any, np.dtype[np.float64]]

TOP_SHARES: Final = (0.15, 0.25)
RANKING_METRICS: Final = ("roc_auc", "pr_auc", *(f"recall_top{round(s * 100)}" for s in TOP_SHARES))
METRICS: Final = (*RANKING_METRICS, "brier")
LOWER_IS_BETTER: Final = frozenset({"brier"})
DEFAULT_REPLICATES: Final = 1000
CONFIDENCE: Final = 0.95

SUPERA: Final = "supera"
EMPATA: Final = "empata"
PERDE: Final = "perde"


def _tie_groups(sorted_scores: Array) -> np.ndarray[Any, np.dtype[np.intp]]:
    """Start index of each run of equal scores in a sorted vector."""
    if len(sorted_scores) == 0:
        return np.zeros(0, dtype=np.intp)
    changes = np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1]) + 1
    return np.concatenate([np.zeros(1, dtype=np.intp), changes.astype(np.intp)])


def _safe_divide(numerator: Array, denominator: Array) -> Array:
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(
            denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan
        )
    return np.asarray(out, dtype=np.float64)


def _tied_masses(scores: Array, pos: Array, neg: Array) -> tuple[Array, Array]:
    """Positive and negative mass of each run of tied scores, in ascending score order."""
    ascending = np.argsort(scores, kind="stable")
    starts = _tie_groups(scores[ascending])
    pos_groups = np.add.reduceat(pos[:, ascending], starts, axis=1) if len(starts) else pos[:, :0]
    neg_groups = np.add.reduceat(neg[:, ascending], starts, axis=1) if len(starts) else neg[:, :0]
    return pos_groups, neg_groups


def _roc_auc(pos_groups: Array, neg_groups: Array) -> Array:
    """Mann-Whitney over the tie groups (ties count half)."""
    neg_below = np.cumsum(neg_groups, axis=1) - neg_groups
    pairs = (pos_groups * (neg_below + 0.5 * neg_groups)).sum(axis=1)
    return _safe_divide(pairs, pos_groups.sum(axis=1) * neg_groups.sum(axis=1))


def mass_roc_auc(scores: Array, positive: Array, negative: Array) -> Array:
    """ROC-AUC alone, per row of the (R, n) mass matrices (the same as `mass_metrics`)."""
    scores = np.asarray(scores, dtype=np.float64)
    pos = np.atleast_2d(np.asarray(positive, dtype=np.float64))
    neg = np.atleast_2d(np.asarray(negative, dtype=np.float64))
    return _roc_auc(*_tied_masses(scores, pos, neg))


def mass_metrics(
    scores: Array,
    positive: Array,
    negative: Array,
    probabilities: Array | None = None,
) -> dict[str, Array]:
    """Metrics for each row of the (R, n) mass matrices over the same n scored students.

    ROC-AUC (Mann-Whitney, ties count half), PR-AUC (average precision, ties grouped as in
    scikit-learn), recall among the top 15 % / 25 % by score (stable order, as the dashboard
    lists them), and Brier of `probabilities` (default: `scores`). Returns (R,) arrays; NaN
    where a metric is undefined (no positive or no negative mass).
    """
    scores = np.asarray(scores, dtype=np.float64)
    pos = np.atleast_2d(np.asarray(positive, dtype=np.float64))
    neg = np.atleast_2d(np.asarray(negative, dtype=np.float64))
    probs = scores if probabilities is None else np.asarray(probabilities, dtype=np.float64)
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    out: dict[str, Array] = {}

    pos_groups, neg_groups = _tied_masses(scores, pos, neg)
    out["roc_auc"] = _roc_auc(pos_groups, neg_groups)

    # Descending groups: precision at the end of each group, weighted by its positive mass.
    pos_desc, neg_desc = pos_groups[:, ::-1], neg_groups[:, ::-1]
    true_pos, false_pos = np.cumsum(pos_desc, axis=1), np.cumsum(neg_desc, axis=1)
    precision = _safe_divide(true_pos, true_pos + false_pos)
    precision = np.nan_to_num(precision, nan=0.0)
    ap = _safe_divide((pos_desc * precision).sum(axis=1), total_pos)
    out["pr_auc"] = np.where(total_neg > 0, ap, np.nan)

    descending = np.argsort(-scores, kind="stable")
    weight = (pos + neg)[:, descending]
    share_pos = _safe_divide(pos[:, descending], weight)
    share_pos = np.nan_to_num(share_pos, nan=0.0)
    total = weight.sum(axis=1, keepdims=True)
    before = np.cumsum(weight, axis=1) - weight
    for share in TOP_SHARES:
        k = np.ceil(share * total - 1e-9)
        k = np.maximum(k, 1.0)
        taken = np.clip(k - before, 0.0, weight)
        found = (taken * share_pos).sum(axis=1)
        out[f"recall_top{round(share * 100)}"] = _safe_divide(found, total_pos)

    squared = pos * (1.0 - probs) ** 2 + neg * probs**2
    out["brier"] = _safe_divide(squared.sum(axis=1), total_pos + total_neg)
    return out


def selection_metrics(selected: np.ndarray, positive: Array, negative: Array) -> dict[str, Array]:
    """A fixed selection of students (e.g. `pv_previsto`, or the year's top 15 %) judged on each
    row of the (R, n) mass matrices: `recall` (share of the positive mass selected),
    `falsos_positivos` (share of the negative mass selected, the false-positive rate) and
    `selecionados` (share of all mass selected). NaN where a denominator is empty."""
    chosen = np.asarray(selected, dtype=np.float64)
    pos = np.atleast_2d(np.asarray(positive, dtype=np.float64))
    neg = np.atleast_2d(np.asarray(negative, dtype=np.float64))
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    return {
        "recall": _safe_divide(pos @ chosen, total_pos),
        "falsos_positivos": _safe_divide(neg @ chosen, total_neg),
        "selecionados": _safe_divide((pos + neg) @ chosen, total_pos + total_neg),
    }


def calibration_metrics(probabilities: Array, positive: Array, negative: Array) -> dict[str, Array]:
    """Per row of the (R, n) mass matrices: the mean probability (`prob_media`), the observed
    rate (`taxa_real`) and their gap (`calibracao` = mean probability − rate; > 0 means the
    probabilities overestimate). NaN for an empty row."""
    p = np.asarray(probabilities, dtype=np.float64)
    pos = np.atleast_2d(np.asarray(positive, dtype=np.float64))
    neg = np.atleast_2d(np.asarray(negative, dtype=np.float64))
    total = pos.sum(axis=1) + neg.sum(axis=1)
    mean = _safe_divide((pos + neg) @ p, total)
    rate = _safe_divide(pos.sum(axis=1), total)
    return {"prob_media": mean, "taxa_real": rate, "calibracao": mean - rate}


def point_metrics(y: Array, scores: Array, probabilities: Array | None = None) -> dict[str, float]:
    """The metrics of one labelled set (what `roc_auc_score` & co. would give)."""
    y = np.asarray(y, dtype=np.float64)
    values = mass_metrics(scores, y[None, :], 1.0 - y[None, :], probabilities)
    return {name: float(v[0]) for name, v in values.items()}


def bootstrap_masses(y: Array, replicates: int, seed: int) -> tuple[Array, Array]:
    """(R, n) positive and negative masses of R resamples of the students, with replacement."""
    n = len(y)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(np.float64)
    y = np.asarray(y, dtype=np.float64)
    return counts * y, counts * (1.0 - y)


@dataclass(frozen=True)
class Interval:
    """A figure with its percentile bootstrap interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float | None]:
        return {
            k: _finite_or_none(v)
            for k, v in (("valor", self.value), ("ic_inf", self.low), ("ic_sup", self.high))
        }

    def text(self, digits: int = 3) -> str:
        if not math.isfinite(self.value):
            return "—"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}; {self.high:.{digits}f}]"


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _interval(value: float, replicates: Array) -> Interval:
    finite = replicates[np.isfinite(replicates)]
    if not math.isfinite(value) or len(finite) < 10:
        return Interval(value, math.nan, math.nan)
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return Interval(value, float(low), float(high))


def interval(value: float, replicates: Array) -> Interval:
    """`value` with the percentile interval (CONFIDENCE) of its bootstrap `replicates` (NaN
    bounds with fewer than 10 finite replicates)."""
    return _interval(value, np.asarray(replicates, dtype=np.float64))


@dataclass(frozen=True)
class Comparison:
    """Model minus a baseline on the same students, with the paired bootstrap interval."""

    metric: str
    difference: Interval

    @property
    def verdict(self) -> str:
        """`supera` only when the interval excludes zero in the model's favour."""
        low, high = self.difference.low, self.difference.high
        if not (math.isfinite(low) and math.isfinite(high)):
            return EMPATA
        better_low, better_high = (-high, -low) if self.metric in LOWER_IS_BETTER else (low, high)
        if better_low > 0:
            return SUPERA
        if better_high < 0:
            return PERDE
        return EMPATA


@dataclass
class ScoredSet:
    """Labelled students scored by a model and by its baselines: figures with intervals."""

    y: Array
    scores: dict[str, Array]  # name → calibrated probabilities ("modelo" and the baselines)
    replicates: int = DEFAULT_REPLICATES
    seed: int = 0

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=np.float64)
        pos, neg = bootstrap_masses(self.y, self.replicates, self.seed)
        self._point = {name: point_metrics(self.y, s) for name, s in self.scores.items()}
        self._boot = {name: mass_metrics(s, pos, neg) for name, s in self.scores.items()}

    def figures(self, name: str) -> dict[str, Interval]:
        return {m: _interval(self._point[name][m], self._boot[name][m]) for m in METRICS}

    def compare(self, name: str, baseline: str, metric: str = "roc_auc") -> Comparison:
        point = self._point[name][metric] - self._point[baseline][metric]
        paired = self._boot[name][metric] - self._boot[baseline][metric]
        return Comparison(metric, _interval(point, paired))


def estimated_metrics(
    probabilities: Array, replicates: int = DEFAULT_REPLICATES, seed: int = 0
) -> dict[str, Interval]:
    """Expected figures of a cohort before its outcomes, if the probabilities are calibrated.

    The value uses each probability as the expected label (CBPE); the interval is the spread
    of the realised figure when the labels are drawn from those probabilities.
    """
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    expected = mass_metrics(p, p[None, :], 1.0 - p[None, :])
    rng = np.random.default_rng(seed)
    drawn = (rng.random((replicates, len(p))) < p).astype(np.float64)
    simulated = mass_metrics(p, drawn, 1.0 - drawn)
    return {m: _interval(float(expected[m][0]), simulated[m]) for m in METRICS}


def positive_rate(probabilities: Array, threshold: float) -> float:
    p = np.asarray(probabilities, dtype=np.float64)
    return float((p >= threshold).mean()) if len(p) else math.nan


def reliability(y: Array, probabilities: Array, bins: int = 8) -> list[dict[str, float]]:
    """Mean probability vs observed PV rate in quantile bins (the reliability plot's points)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(p) == 0:
        return []
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    rows = []
    for b in np.unique(which):
        members = which == b
        rows.append(
            {
                "prob_media": float(p[members].mean()),
                "taxa_real": float(y[members].mean()),
                "n": int(members.sum()),
            }
        )
    return rows


def intervals_as_dict(figures: Mapping[str, Interval]) -> dict[str, dict[str, float | None]]:
    return {name: interval.as_dict() for name, interval in figures.items()}
