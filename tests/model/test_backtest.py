"""The rolling-origin backtest on synthetic cycles 2020-2024 (rule-derived labels after 2022):
nothing of a test year or later reaches its fit, and its figures say what they claim."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from passos_magicos.data.dataset import build_dataset
from passos_magicos.data.schema import PV_DERIVADO, PV_OFICIAL
from passos_magicos.data.storage import SourceFile
from passos_magicos.data.synth import render_synthetic
from passos_magicos.features import LABEL, TransitionSet, build_transitions, cohorts
from passos_magicos.performance import EMPATA, PERDE, SUPERA
from passos_magicos.training.backtest import BASELINES, Backtest, run_backtest

pytestmark = pytest.mark.slow

REPLICATES = 300


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    files = [
        SourceFile("s.csv", "s.csv", render_synthetic(students=700, seed=4, fmt="csv")),
        SourceFile("s.xlsx", "s.xlsx", render_synthetic(students=700, seed=4, fmt="xlsx")),
    ]
    return build_dataset(files).table


@pytest.fixture(scope="module")
def transitions(table: pd.DataFrame) -> TransitionSet:
    return build_transitions(table)


@pytest.fixture(scope="module")
def backtest(transitions: TransitionSet, table: pd.DataFrame) -> Backtest:
    result = run_backtest(
        transitions, "auto", folds=3, seed=1, replicates=REPLICATES, cohorts=cohorts(table)
    )
    assert result is not None
    return result


def test_every_transition_but_the_first_is_a_test_year(
    transitions: TransitionSet, backtest: Backtest
) -> None:
    assert transitions.years == [2021, 2022, 2023, 2024]
    assert [y.test_year for y in backtest.years] == [2022, 2023, 2024]
    for year in backtest.years:
        assert year.train_years == [y for y in transitions.years if y < year.test_year]
        assert year.n_train == len(transitions.before(year.test_year))
        assert year.n == len(transitions.in_year(year.test_year))
    assert backtest.years[0].label_origins == {PV_OFICIAL: backtest.years[0].n}
    assert backtest.years[-1].label_origins == {PV_DERIVADO: backtest.years[-1].n}


def test_a_test_year_never_sees_its_own_or_later_labels(
    transitions: TransitionSet, backtest: Backtest, table: pd.DataFrame
) -> None:
    """Shuffle the labels of 2024: the figures of 2022 and 2023 must not move at all."""
    frame = transitions.frame.copy()
    last = (frame["ano_alvo"] == 2024).to_numpy()
    frame.loc[last, LABEL] = np.random.default_rng(0).permutation(frame.loc[last, LABEL])
    shuffled = TransitionSet(frame, transitions.features)
    again = run_backtest(
        shuffled, "auto", folds=3, seed=1, replicates=REPLICATES, cohorts=cohorts(table)
    )
    assert again is not None
    for before, after in zip(backtest.years[:2], again.years[:2], strict=True):
        assert before.kind == after.kind
        np.testing.assert_array_equal(before.probabilities, after.probabilities)
    assert again.years[2].figures()["roc_auc"].value < backtest.years[2].figures()["roc_auc"].value


def test_figures_come_with_intervals_and_paired_verdicts(backtest: Backtest) -> None:
    for year in backtest.years:
        for name in ("modelo", *BASELINES):
            for interval in year.figures(name).values():
                assert interval.low <= interval.value <= interval.high
        for name in BASELINES:
            comparison = year.comparison(name)
            diff = comparison.difference
            expected = SUPERA if diff.low > 0 else PERDE if diff.high < 0 else EMPATA
            assert comparison.verdict == expected
        assert 0.0 < year.estimated["roc_auc"].value < 1.0
        assert abs(year.predicted_rate() - year.real_rate) <= 0.05


def test_the_table_and_the_flat_metrics_agree(backtest: Backtest) -> None:
    table = backtest.as_dict()
    flat = backtest.flat_metrics()
    for year, row in zip(backtest.years, table["anos"], strict=True):
        auc = row["metricas"]["modelo"]["roc_auc"]
        assert flat[f"bt_{year.test_year}_modelo_roc_auc"] == auc["valor"]
        assert flat[f"bt_{year.test_year}_modelo_roc_auc_ic_inf"] == auc["ic_inf"]
        verdict = row["comparacoes"]["inde_t"]["roc_auc"]["veredito"]
        assert verdict == year.comparison("inde_t").verdict
        assert sum(p["n"] for p in row["confiabilidade"]) == year.n


def test_a_single_transition_has_no_backtest(transitions: TransitionSet) -> None:
    assert run_backtest(transitions.in_year(2022), "auto", 3, 1, REPLICATES) is None
