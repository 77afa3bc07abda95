"""Label rule, classification metrics and student-grouped splits."""

from __future__ import annotations

import numpy as np
import pytest

from passos_magicos.training.evaluation import (
    choose_threshold,
    classification_metrics,
    grouped_splits,
)


def test_threshold_flags_the_training_pv_rate() -> None:
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])  # 20 % reached PV
    scores = np.linspace(0.9, 0.0, 10)
    threshold = choose_threshold(y, scores)
    assert threshold == pytest.approx(0.8)  # the second highest: 2 of 10 flagged
    assert (scores >= threshold).mean() == pytest.approx(y.mean())


def test_threshold_keeps_the_flagged_share_whatever_the_scores() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(1000) < 0.14).astype(int)
    scores = rng.beta(1, 6, size=1000)  # scale and shape unrelated to the labels
    flagged = (scores >= choose_threshold(y, scores)).mean()
    assert flagged == pytest.approx(y.mean(), abs=0.002)


def test_threshold_flags_at_least_one_student() -> None:
    assert choose_threshold(np.zeros(5), np.array([0.1, 0.4, 0.3, 0.2, 0.0])) == 0.4


def test_metrics_of_a_perfect_and_a_useless_ranking() -> None:
    y = np.array([0, 0, 1, 1])
    perfect = classification_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    assert perfect["roc_auc"] == 1.0 and perfect["f1"] == 1.0
    assert perfect["predicted_rate"] == 0.5
    inverted = classification_metrics(y, np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0]))
    assert inverted["roc_auc"] == 0.0 and inverted["recall"] == 0.0


def test_grouped_splits_never_put_a_student_on_both_sides() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(200), 2)
    y = rng.integers(0, 2, size=400)
    for train, test in grouped_splits(y, groups, folds=5, seed=1):
        assert not set(groups[train]) & set(groups[test])
