"""Threshold rule, ranking metrics and student-grouped splits."""

from __future__ import annotations

import numpy as np
import pytest

from passos_magicos.training.evaluation import (
    choose_kind,
    choose_threshold,
    classification_metrics,
    grouped_splits,
    recall_at_top,
)


def test_threshold_maximises_f1_on_a_known_case() -> None:
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.2, 0.1, 0.05])
    # Cutting at 0.6 flags 4 with 3 positives: F1 = 6/7, the best possible here.
    assert choose_threshold(y, scores) == pytest.approx(0.6)


def test_threshold_never_splits_tied_scores() -> None:
    y = np.array([1, 0, 1, 0])
    scores = np.array([0.5, 0.5, 0.5, 0.1])
    assert choose_threshold(y, scores) == pytest.approx(0.5)


def test_recall_at_top_counts_positives_in_the_top_share() -> None:
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 1])
    scores = np.linspace(1, 0, 10)
    assert recall_at_top(y, scores, 0.15) == pytest.approx(1 / 3)  # top 2: one positive
    assert recall_at_top(y, scores, 0.5) == pytest.approx(2 / 3)


def test_metrics_of_a_perfect_and_a_useless_ranking() -> None:
    y = np.array([0, 0, 1, 1])
    perfect = classification_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    assert perfect["roc_auc"] == 1.0 and perfect["f1"] == 1.0
    inverted = classification_metrics(y, np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0]))
    assert inverted["roc_auc"] == 0.0 and inverted["recall"] == 0.0


def test_grouped_splits_never_put_a_student_on_both_sides() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(200), 2)
    y = rng.integers(0, 2, size=400)
    for train, test in grouped_splits(y, groups, folds=5, seed=1):
        assert not set(groups[train]) & set(groups[test])


def test_auto_prefers_the_simpler_model_when_scores_are_close() -> None:
    assert choose_kind({"random_forest": 0.806, "logistic_regression": 0.803}) == (
        "logistic_regression"
    )
    assert choose_kind({"random_forest": 0.83, "logistic_regression": 0.80}) == "random_forest"
