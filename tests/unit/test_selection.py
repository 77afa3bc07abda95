"""`auto`'s rule: the simplest kind unless a more complex one wins clearly and every year."""

from __future__ import annotations

from passos_magicos.training.selection import SELECTION_MARGIN, choose_kind


def test_a_small_gain_is_noise_and_the_simpler_kind_stays() -> None:
    scores = {
        "compact_logistic": {"2022": 0.80, "2023": 0.74},
        "random_forest": {"2022": 0.805, "2023": 0.745},
    }
    assert choose_kind(scores) == "compact_logistic"


def test_a_clear_gain_in_every_year_wins() -> None:
    gain = SELECTION_MARGIN + 0.01
    scores = {
        "compact_logistic": {"2022": 0.80, "2023": 0.74},
        "hist_gradient_boosting": {"2022": 0.80 + gain, "2023": 0.74 + gain},
    }
    assert choose_kind(scores) == "hist_gradient_boosting"


def test_winning_on_average_by_losing_one_year_is_not_enough() -> None:
    scores = {
        "compact_logistic": {"2022": 0.81, "2023": 0.75},
        "logistic_regression": {"2022": 0.86, "2023": 0.74},  # mean +0.02, but loses 2023
    }
    assert choose_kind(scores) == "compact_logistic"


def test_kinds_are_compared_in_order_of_simplicity() -> None:
    scores = {
        "hist_gradient_boosting": {"cv": 0.825},
        "logistic_regression": {"cv": 0.82},
        "compact_logistic": {"cv": 0.79},
    }
    # logistic_regression beats compact clearly; boosting is not clearly above it.
    assert choose_kind(scores) == "logistic_regression"
