"""`auto`: which model kind to fit, chosen on past cycles only.

Validation mimics use: with two or more labelled transitions, each kind is fitted on the
transitions before a year and ranks that year (rolling origin, every year but the first);
with a single transition, student-grouped CV on it. Then the rule:

    the simplest kind (MODEL_KINDS order) unless a more complex one has a mean validation
    ROC-AUC at least SELECTION_MARGIN higher AND is not worse in any validation year.

One AUC on ~500 students has a standard error near 0.02-0.03; a smaller gain is noise, and a
kind that wins on average by losing one year is a bet on that year's pattern returning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from passos_magicos.features import TransitionSet
from passos_magicos.training.evaluation import grouped_splits, out_of_fold_scores
from passos_magicos.training.models import MODEL_KINDS, build_estimator

SELECTION_MARGIN: Final = 0.01
CV_KEY: Final = "cv"  # the validation "year" when only one transition exists

# (kind, training label years, validation year) → ROC-AUC: the backtest asks the same fits
# for several origins, so one run shares them.
FitCache = dict[tuple[str, tuple[int, ...], int | str], float]


@dataclass
class Selection:
    """Validation ROC-AUC per kind and year, and the kind the rule chose."""

    chosen: str
    scores: dict[str, dict[str, float]] = field(default_factory=dict)

    def mean(self, kind: str) -> float:
        return float(np.mean(list(self.scores[kind].values())))

    @property
    def means(self) -> dict[str, float]:
        return {kind: self.mean(kind) for kind in self.scores}

    def describe(self) -> str:
        years = next(iter(self.scores.values())).keys() if self.scores else []
        where = (
            "CV agrupada por aluno (uma só transição no passado)"
            if list(years) == [CV_KEY]
            else "anos " + ", ".join(f"{int(y) - 1}→{y}" for y in years)
        )
        shown = ", ".join(f"{k} {v:.3f}" for k, v in self.means.items())
        return f"{self.chosen} (validação em {where}: {shown})"


def _validation_auc(
    kind: str, transitions: TransitionSet, year: int, seed: int, cache: FitCache
) -> float:
    frame = transitions.frame
    train_years = tuple(y for y in transitions.years if y < year)
    key = (kind, train_years, year)
    if key not in cache:
        train = (frame["ano_alvo"] < year).to_numpy()
        test = (frame["ano_alvo"] == year).to_numpy()
        X, y = transitions.X, transitions.y  # noqa: N806
        model = clone(build_estimator(kind, seed)).fit(X[train], y[train])
        scores = model.predict_proba(X[test])[:, 1]
        cache[key] = (
            float(roc_auc_score(y[test], scores)) if len(np.unique(y[test])) == 2 else np.nan
        )
    return cache[key]


def _cv_auc(kind: str, transitions: TransitionSet, folds: int, seed: int, cache: FitCache) -> float:
    key = (kind, tuple(transitions.years), CV_KEY)
    if key not in cache:
        X, y, groups = transitions.X, transitions.y, transitions.groups  # noqa: N806
        splits = grouped_splits(y, groups, folds, seed)
        scores = out_of_fold_scores(build_estimator(kind, seed), X, y, splits)
        cache[key] = float(roc_auc_score(y, scores))
    return cache[key]


def validation_scores(
    transitions: TransitionSet,
    folds: int,
    seed: int,
    kinds: Sequence[str] = MODEL_KINDS,
    cache: FitCache | None = None,
) -> dict[str, dict[str, float]]:
    cache = {} if cache is None else cache
    years = transitions.years
    scores: dict[str, dict[str, float]] = {}
    for kind in kinds:
        if len(years) >= 2:
            scores[kind] = {
                str(year): _validation_auc(kind, transitions, year, seed, cache)
                for year in years[1:]
            }
        else:
            scores[kind] = {CV_KEY: _cv_auc(kind, transitions, folds, seed, cache)}
    return scores


def choose_kind(scores: dict[str, dict[str, float]]) -> str:
    """The rule in the module docstring; `scores` lists kinds simplest first."""
    kinds = [k for k in MODEL_KINDS if k in scores] + [k for k in scores if k not in MODEL_KINDS]
    chosen = kinds[0]
    for kind in kinds[1:]:
        gain = np.nanmean(list(scores[kind].values())) - np.nanmean(list(scores[chosen].values()))
        never_worse = all(
            scores[kind][year] >= scores[chosen][year]
            for year in scores[chosen]
            if year in scores[kind]
        )
        if gain >= SELECTION_MARGIN and never_worse:
            chosen = kind
    return chosen


def select_kind(
    transitions: TransitionSet,
    folds: int,
    seed: int,
    cache: FitCache | None = None,
    progress: Callable[[str], None] | None = None,
) -> Selection:
    scores = validation_scores(transitions, folds, seed, cache=cache)
    selection = Selection(chosen=choose_kind(scores), scores=scores)
    if progress:
        progress(f"escolhido: {selection.describe()}")
    return selection
