"""Rolling-origin backtest: how the product would have done on each cycle it could have scored.

For every labelled test transition T (all but the first), everything is fitted only on the
transitions before T — `auto`'s choice, the model, its calibration and label threshold, and the
baselines (INDE_t alone, IPV_t alone, the plain logistic regression) by the same recipe — and
then T's students are scored. Per year: n, positives, label origin, ROC-AUC, PR-AUC, Brier,
recall in the top 15 % / 25 %, each with a bootstrap 95 % interval; the model minus each
baseline with a *paired* interval (the verdict "supera" needs it to exclude zero); the flagged
share against the real PV rate; and the performance estimated from the probabilities alone
(before the outcomes) beside the realised one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from passos_magicos.features import TransitionSet
from passos_magicos.performance import (
    METRICS,
    Comparison,
    Interval,
    ScoredSet,
    estimated_metrics,
    intervals_as_dict,
    positive_rate,
    reliability,
)
from passos_magicos.training.evaluation import (
    BASELINES,
    Evaluation,
    classification_metrics,
    cohort_threshold,
    fit_baseline,
    fit_recipe,
)
from passos_magicos.training.selection import FitCache, Selection, select_kind

MODEL: Final = "modelo"
COMPARED_METRICS: Final = ("roc_auc", "pr_auc")
NAMES: Final = {MODEL: "modelo", **BASELINES}
Progress = Callable[[str], None]


@dataclass
class BacktestYear:
    """One test transition (t → T) scored by what was fitted on the transitions before it."""

    test_year: int
    train_years: list[int]
    n_train: int
    kind: str
    selection: Selection | None
    scored: ScoredSet = field(repr=False)
    thresholds: dict[str, float]
    label_origins: dict[str, int]
    estimated: dict[str, Interval]

    @property
    def y(self) -> np.ndarray:
        return self.scored.y

    @property
    def n(self) -> int:
        return len(self.scored.y)

    @property
    def positives(self) -> int:
        return int(self.scored.y.sum())

    @property
    def real_rate(self) -> float:
        return float(self.scored.y.mean()) if self.n else float("nan")

    @property
    def probabilities(self) -> np.ndarray:
        return self.scored.scores[MODEL]

    def predicted_rate(self, name: str = MODEL) -> float:
        return positive_rate(self.scored.scores[name], self.thresholds[name])

    def figures(self, name: str = MODEL) -> dict[str, Interval]:
        return self.scored.figures(name)

    def comparison(self, baseline: str, metric: str = "roc_auc") -> Comparison:
        return self.scored.compare(MODEL, baseline, metric)

    @property
    def label(self) -> str:
        return f"{self.test_year - 1}→{self.test_year}"

    def as_evaluation(self) -> Evaluation:
        """The year as an out-of-time evaluation (plots, flat `oot_*` metrics, the gate)."""
        scores = self.scored.scores

        def metrics(name: str) -> dict[str, float]:
            predicted = (scores[name] >= self.thresholds[name]).astype(int)
            return classification_metrics(self.y, scores[name], predicted)

        return Evaluation(
            protocol="out_of_time",
            description=(
                f"treino nas transições até {self.train_years[-1] - 1}→{self.train_years[-1]}, "
                f"teste em {self.label}"
            ),
            n_train=self.n_train,
            n_test=self.n,
            positive_rate=self.real_rate,
            model=metrics(MODEL),
            baselines={name: metrics(name) for name in BASELINES},
            y_true=self.y,
            y_score=scores[MODEL],
            baseline_scores={name: scores[name] for name in BASELINES},
            test_year=self.test_year,
            scored=self.scored,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ano_teste": self.test_year,
            "transicao": self.label,
            "anos_treino": self.train_years,
            "n_treino": self.n_train,
            "n": self.n,
            "positivos": self.positives,
            "taxa_real": self.real_rate,
            "origem_rotulos": self.label_origins,
            "modelo_escolhido": self.kind,
            "selecao": self.selection.scores if self.selection else None,
            "limiar": self.thresholds[MODEL],
            "taxa_prevista": self.predicted_rate(),
            "metricas": {name: intervals_as_dict(self.figures(name)) for name in NAMES},
            "taxa_prevista_referencias": {name: self.predicted_rate(name) for name in BASELINES},
            "comparacoes": {
                baseline: {
                    metric: {
                        **self.comparison(baseline, metric).difference.as_dict(),
                        "veredito": self.comparison(baseline, metric).verdict,
                    }
                    for metric in COMPARED_METRICS
                }
                for baseline in BASELINES
            },
            "estimado": intervals_as_dict(self.estimated),
            "confiabilidade": reliability(self.y, self.probabilities),
        }


@dataclass
class Backtest:
    years: list[BacktestYear]
    requested_kind: str
    replicates: int

    @property
    def newest(self) -> BacktestYear:
        return self.years[-1]

    def as_dict(self) -> dict[str, Any]:
        return {
            "modelo_pedido": self.requested_kind,
            "replicas_bootstrap": self.replicates,
            "anos": [year.as_dict() for year in self.years],
        }

    def flat_metrics(self) -> dict[str, float]:
        """MLflow metrics: `bt_<year>_<name>_<metric>` (+ `_ic_inf` / `_ic_sup`), the paired
        differences `bt_<year>_dif_<baseline>_<metric>`, estimates `bt_<year>_estimado_*`."""
        out: dict[str, float] = {}
        for year in self.years:
            prefix = f"bt_{year.test_year}"
            out[f"{prefix}_n"] = year.n
            out[f"{prefix}_taxa_real"] = year.real_rate
            out[f"{prefix}_taxa_prevista"] = year.predicted_rate()
            for name in NAMES:
                for metric, interval in year.figures(name).items():
                    key = f"{prefix}_{name}_{metric}"
                    out |= {key: interval.value, f"{key}_ic_inf": interval.low}
                    out[f"{key}_ic_sup"] = interval.high
            for baseline in BASELINES:
                for metric in COMPARED_METRICS:
                    diff = year.comparison(baseline, metric).difference
                    key = f"{prefix}_dif_{baseline}_{metric}"
                    out |= {key: diff.value, f"{key}_ic_inf": diff.low, f"{key}_ic_sup": diff.high}
            for metric, interval in year.estimated.items():
                out[f"{prefix}_estimado_{metric}"] = interval.value
        return {k: float(v) for k, v in out.items() if np.isfinite(v)}


def backtest_year(
    transitions: TransitionSet,
    test_year: int,
    kind: str,
    folds: int,
    seed: int,
    replicates: int,
    cache: FitCache | None = None,
    cohort: pd.DataFrame | None = None,
) -> BacktestYear:
    """`cohort`: the model inputs of every student of cycle T−1, the roster that would have
    been scored (labels or not); the label threshold is set on it, as in production. Without
    it, the test students stand in for the roster."""
    past, test = transitions.before(test_year), transitions.in_year(test_year)
    selection = None
    if kind == "auto":
        selection = select_kind(past, folds, seed, cache)
        kind = selection.chosen
    fitted = {MODEL: fit_recipe(kind, past.X, past.y, past.groups, folds, seed)[0]}
    for name in BASELINES:
        fitted[name] = fit_baseline(name, past.X, past.y, past.groups, folds, seed)
    roster = test.X if cohort is None else cohort[list(transitions.features)]
    for model in fitted.values():
        model.threshold = cohort_threshold(model.predict_proba(roster))
    scores = {name: model.predict_proba(test.X) for name, model in fitted.items()}
    return BacktestYear(
        test_year=test_year,
        train_years=past.years,
        n_train=len(past),
        kind=kind,
        selection=selection,
        scored=ScoredSet(y=test.y, scores=scores, replicates=replicates, seed=seed + test_year),
        thresholds={name: model.threshold for name, model in fitted.items()},
        label_origins=test.label_origins(),
        estimated=estimated_metrics(scores[MODEL], replicates, seed + test_year),
    )


def run_backtest(
    transitions: TransitionSet,
    kind: str,
    folds: int,
    seed: int,
    replicates: int,
    cache: FitCache | None = None,
    progress: Progress | None = None,
    cohorts: Mapping[int, pd.DataFrame] | None = None,
) -> Backtest | None:
    """Every labelled transition but the first, in order; None with fewer than two.
    `cohorts`: cycle t → model inputs of all its students (see `backtest_year`)."""
    years = transitions.years
    if len(years) < 2:
        return None
    cache = {} if cache is None else cache
    done = []
    for test_year in years[1:]:
        cohort = None if cohorts is None else cohorts.get(test_year - 1)
        year = backtest_year(transitions, test_year, kind, folds, seed, replicates, cache, cohort)
        done.append(year)
        if progress:
            progress(year_line(year))
    return Backtest(years=done, requested_kind=kind, replicates=replicates)


def year_line(year: BacktestYear) -> str:
    """One line per test year for the terminal (pt-BR)."""
    model = year.figures()
    inde = year.figures("inde_t")["roc_auc"]
    verdict = year.comparison("inde_t").verdict
    return (
        f"{year.label}: {year.kind}, n={year.n} ({year.positives} com PV), ROC-AUC "
        f"{model['roc_auc'].text()} vs INDE_t {inde.text()} → {verdict}; taxa prevista "
        f"{year.predicted_rate():.1%} (real {year.real_rate:.1%})"
    )


def summary_rows(backtest: Backtest) -> list[dict[str, Any]]:
    """The per-year table: one row per (year, model or baseline)."""
    rows = []
    for year in backtest.years:
        for name, label in NAMES.items():
            figures = year.figures(name)
            rows.append(
                {
                    "transicao": year.label,
                    "n": year.n,
                    "positivos": year.positives,
                    "origem": _origin_text(year.label_origins),
                    "modelo": year.kind if name == MODEL else label,
                    **{metric: figures[metric] for metric in METRICS},
                }
            )
    return rows


def _origin_text(origins: dict[str, int]) -> str:
    return " + ".join(f"{count} {origin}" for origin, count in sorted(origins.items()))
