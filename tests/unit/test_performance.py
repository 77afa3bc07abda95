"""The shared metrics: equal to scikit-learn's (ties included), bootstrap replicates equal to
metrics of resampled sets, paired verdicts, and estimates before the outcomes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from passos_magicos.performance import (
    EMPATA,
    PERDE,
    SUPERA,
    Comparison,
    Interval,
    ScoredSet,
    estimated_metrics,
    mass_metrics,
    point_metrics,
    reliability,
)


def _recall_at_top(y: np.ndarray, scores: np.ndarray, share: float) -> float:
    k = max(1, math.ceil(share * len(y)))
    top = np.argsort(-scores, kind="stable")[:k]
    return float(y[top].sum() / y.sum())


@pytest.mark.parametrize("seed", range(25))
def test_point_metrics_match_scikit_learn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    y = (rng.random(n) < 0.2).astype(float)
    y[:2] = [0.0, 1.0]
    scores = np.round(rng.random(n) * int(rng.integers(2, 30))) / 30  # many ties
    got = point_metrics(y, scores)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert got["pr_auc"] == pytest.approx(average_precision_score(y, scores), abs=1e-12)
    assert got["brier"] == pytest.approx(brier_score_loss(y, scores), abs=1e-12)
    for share in (0.15, 0.25):
        expected = _recall_at_top(y, scores, share)
        assert got[f"recall_top{round(share * 100)}"] == pytest.approx(expected, abs=1e-12)


def test_a_bootstrap_replicate_equals_the_metrics_of_the_resampled_set() -> None:
    rng = np.random.default_rng(1)
    n = 300
    y, scores = (rng.random(n) < 0.15).astype(float), rng.random(n)
    counts = rng.multinomial(n, np.full(n, 1 / n)).astype(float)
    replicate = mass_metrics(scores, (counts * y)[None], (counts * (1 - y))[None])
    index = np.repeat(np.arange(n), counts.astype(int))
    expanded = point_metrics(y[index], scores[index])
    for name, value in expanded.items():
        assert replicate[name][0] == pytest.approx(value, abs=1e-12), name


def test_undefined_metrics_are_nan_not_errors() -> None:
    got = point_metrics(np.zeros(10), np.linspace(0, 1, 10))
    assert math.isnan(got["roc_auc"]) and math.isnan(got["pr_auc"])
    assert got["brier"] == pytest.approx(np.mean(np.linspace(0, 1, 10) ** 2))


def _scored(shift: float, n: int = 800, seed: int = 0) -> ScoredSet:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.15).astype(float)
    signal = y + rng.normal(0, 1.0, n)
    baseline = signal + rng.normal(0, 0.6, n)  # the same signal, noisier
    model = signal + shift * y
    return ScoredSet(y=y, scores={"modelo": model, "base": baseline}, replicates=500, seed=seed)


def test_intervals_contain_the_point_and_a_clear_gain_is_a_win() -> None:
    scored = _scored(shift=1.0)
    figures = scored.figures("modelo")
    for interval in figures.values():
        assert interval.low <= interval.value <= interval.high
    assert scored.compare("modelo", "base").verdict == SUPERA
    assert scored.compare("base", "modelo").verdict == PERDE


def test_the_same_scores_plus_noise_only_tie() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random(600) < 0.15).astype(float)
    base = y + rng.normal(0, 1.0, 600)
    scored = ScoredSet(
        y=y, scores={"modelo": base + rng.normal(0, 0.05, 600), "base": base}, replicates=500
    )
    comparison = scored.compare("modelo", "base")
    assert comparison.verdict == EMPATA
    assert comparison.difference.low < 0 < comparison.difference.high


def test_lower_is_better_for_brier() -> None:
    better = Comparison("brier", Interval(-0.02, -0.03, -0.01))
    assert better.verdict == SUPERA
    assert Comparison("brier", Interval(0.02, 0.01, 0.03)).verdict == PERDE


def test_estimates_from_calibrated_probabilities_match_the_realised_figures() -> None:
    rng = np.random.default_rng(11)
    probabilities = rng.beta(1.2, 6, size=2000)
    estimate = estimated_metrics(probabilities, replicates=300, seed=1)
    realised = []
    for _ in range(40):
        y = (rng.random(len(probabilities)) < probabilities).astype(float)
        realised.append(point_metrics(y, probabilities)["roc_auc"])
    assert estimate["roc_auc"].value == pytest.approx(float(np.mean(realised)), abs=0.01)
    inside = np.mean([estimate["roc_auc"].low <= r <= estimate["roc_auc"].high for r in realised])
    assert inside >= 0.85


def test_reliability_bins_cover_every_student() -> None:
    rng = np.random.default_rng(2)
    p = rng.random(400)
    y = (rng.random(400) < p).astype(float)
    bins = reliability(y, p, bins=8)
    assert sum(b["n"] for b in bins) == 400
    assert all(0 <= b["taxa_real"] <= 1 for b in bins)
    means = [b["prob_media"] for b in bins]
    assert means == sorted(means)
