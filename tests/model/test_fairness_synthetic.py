"""Fairness end to end on synthetic cycles 2020-2024 (the CSV and the workbook of one
population, PV after 2022 derived by the IPV rule): when the girls' labels of the later cycles
are noise, the rolling-origin backtest's fairness report — and the model card's "Equidade"
section — flag the girls, and only them; the same data unshifted flag nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from passos_magicos.data.dataset import build_dataset
from passos_magicos.data.storage import SourceFile
from passos_magicos.data.synth import render_synthetic
from passos_magicos.features import build_transitions, cohorts
from passos_magicos.training.backtest import run_backtest
from passos_magicos.training.fairness import FairnessReport, card_lines, fairness_report

pytestmark = pytest.mark.slow

STUDENTS, SEED, REPLICATES = 1000, 4, 300
NOISY_YEARS = (2023, 2024)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    files = [
        SourceFile("s.csv", "s.csv", render_synthetic(students=STUDENTS, seed=SEED, fmt="csv")),
        SourceFile("s.xlsx", "s.xlsx", render_synthetic(students=STUDENTS, seed=SEED, fmt="xlsx")),
    ]
    return build_dataset(files).table


def _report(table: pd.DataFrame) -> FairnessReport:
    transitions = build_transitions(table)
    backtest = run_backtest(
        transitions,
        "compact_logistic",
        folds=3,
        seed=SEED,
        replicates=REPLICATES,
        cohorts=cohorts(table),
    )
    assert backtest is not None
    return fairness_report(backtest, transitions)


def with_noisy_girls(table: pd.DataFrame) -> pd.DataFrame:
    """The girls' PV of 2023 and 2024 redrawn at the cycles' PV rate: nothing of a girl's
    record says anything about it any more (the boys' labels are untouched)."""
    table = table.copy()
    rng = np.random.default_rng(SEED)
    later = table["ano"].isin(NOISY_YEARS)
    girls = later & (table["genero"] == "Feminino") & table["pv"].notna()
    rate = float(table.loc[later, "pv"].astype(float).mean())
    table.loc[girls, "pv"] = rng.random(int(girls.sum())) < rate
    return table


def test_girls_with_noisy_labels_are_flagged_in_the_report_and_the_card(
    table: pd.DataFrame,
) -> None:
    report = _report(with_noisy_girls(table))
    newest = report.newest
    assert newest.label == "2023→2024"
    flagged = {(flag.grouping, flag.group) for flag in newest.flags}
    assert flagged == {("genero", "feminino")}, [f.text for f in newest.flags]
    assert "roc_auc" in {flag.gap.metric for flag in newest.flags}
    girls = next(g for g in newest.groups if g.group == "feminino")
    boys = next(g for g in newest.groups if g.group == "masculino")
    assert girls.figures["roc_auc"].high < boys.figures["roc_auc"].low  # worlds apart
    # No year before the noise (2021→2022, trained and tested on clean labels) is flagged.
    assert not report.years[0].flags

    card = "\n".join(card_lines(report))
    assert card.startswith("## Equidade")
    assert "| Gênero | feminino |" in card and "| Gênero | masculino |" in card
    assert "| Tipo de escola | pública |" in card
    assert "2023→2024, gênero “feminino”: ROC-AUC dentro do grupo" in card
    assert "o modelo ordena pior os alunos deste grupo" in card
    assert report.summary() in card and "diferença" in report.summary()


def test_the_same_data_unshifted_flags_nothing(table: pd.DataFrame) -> None:
    report = _report(table)
    assert [year.flags for year in report.years] == [[], [], []]
    assert all(year.tests >= 40 for year in report.years)  # the comparisons were made
    card = "\n".join(card_lines(report))
    assert "Nenhuma diferença sinalizada em 2023→2024." in card
    assert "nenhuma diferença entre grupos foi sinalizada" in report.summary()
