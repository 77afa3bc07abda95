"""Drift that means something: shifted traffic names the shifted features; traffic from the
training distribution almost never alerts (at most 5 of 100 seeded runs)."""

from __future__ import annotations

import numpy as np
import pytest

from passos_magicos.monitoring.drift import (
    binned_ks,
    chi_square,
    compare,
    positive_rate_test,
    psi,
)
from tests.monitoring.conftest import SHIFTED, Scenario, scored

THRESHOLD, ALPHA, N = 0.2, 0.01, 500


def _alerts(scenario: Scenario, seed: int, shifted: bool) -> tuple[list[str], bool, bool]:
    frame = scenario.traffic(N, seed, shifted)
    scores, predicted = scored(scenario.model, frame)
    drift = compare(
        scenario.reference, scenario.columns(frame), scores, predicted, THRESHOLD, ALPHA
    )
    assert drift.score is not None and drift.taxa_positiva is not None
    return [f.feature for f in drift.drifted], drift.score.drift, drift.taxa_positiva.drift


def test_shifted_traffic_names_exactly_the_shifted_features(scenario: Scenario) -> None:
    for seed in range(5):
        features, _, _ = _alerts(scenario, seed, shifted=True)
        assert sorted(features) == sorted(SHIFTED), f"seed {seed}: {features}"


def test_unshifted_traffic_alerts_in_at_most_5_of_100_runs(scenario: Scenario) -> None:
    alerting = []
    for seed in range(100):
        features, score, rate = _alerts(scenario, 1000 + seed, shifted=False)
        if features or score or rate:
            alerting.append((seed, features, score, rate))
    assert len(alerting) <= 5, alerting


def test_statistics_basics() -> None:
    same = np.array([100.0, 200.0, 300.0])
    assert psi(same, same / 2) == pytest.approx(0.0)
    assert psi(same, np.array([300.0, 200.0, 100.0])) > 0.5
    p_same, v_same = chi_square(same, same)
    assert p_same == pytest.approx(1.0) and v_same == pytest.approx(0.0)
    p_diff, v_diff = chi_square(same, np.array([300.0, 200.0, 100.0]))
    assert p_diff < 1e-6 and v_diff > 0.2
    d, p = binned_ks(same, np.array([0.0, 0.0, 600.0]))
    assert d == pytest.approx(0.5) and p < 1e-6
    rate = positive_rate_test(50, 100, 0.15)
    assert rate.p_valor < 1e-6 and rate.cohen_h > 0.5
    assert positive_rate_test(15, 100, 0.15).p_valor > 0.5


def test_unseen_category_and_missing_values_count_as_drift(scenario: Scenario) -> None:
    frame = scenario.traffic(N, seed=7)
    frame["pedra"] = "Diamante"  # a category the reference never saw
    frame["ieg"] = np.nan  # a field that stopped arriving
    scores, predicted = scored(scenario.model, frame)
    drift = compare(scenario.reference, scenario.columns(frame), scores, predicted, 0.2, 0.01)
    by_name = {f.feature: f for f in drift.features}
    assert by_name["pedra"].drift and by_name["pedra"].cramer_v > 0.5
    assert by_name["ieg"].drift and by_name["ieg"].ausentes_atual == 1.0
