"""A model, its reference profile and pools of fresh traffic, all from the synthetic generator.

Students are split three ways: the model is fitted on a fifth of them, the reference profile is
built from its scores on three tenths (out of sample, as training does with out-of-fold scores),
and traffic is drawn from the other half: new students from the same distribution.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from passos_magicos.data.dataset import SourceFile, build_dataset
from passos_magicos.data.synth import render_synthetic
from passos_magicos.features import CATEGORICAL, MODEL_INPUTS, build_transitions
from passos_magicos.reference_profile import build_reference
from passos_magicos.training.evaluation import fit_recipe
from passos_magicos.training.models import PontoViradaClassifier

SHIFTED = ("iaa", "ida")


@dataclass
class Scenario:
    model: PontoViradaClassifier
    reference: dict[str, Any]
    pool: pd.DataFrame  # model inputs of students the model and the reference never saw

    def traffic(self, n: int, seed: int, shifted: bool = False) -> pd.DataFrame:
        rows = self.pool.sample(n=n, random_state=seed).reset_index(drop=True)
        if shifted:
            rows["iaa"] = (rows["iaa"] + 2.0).clip(upper=10.0)
            rows["ida"] = (rows["ida"] - 2.0).clip(lower=0.0)
        return rows

    def columns(self, frame: pd.DataFrame) -> dict[str, Any]:
        return {
            name: list(frame[name]) if name in CATEGORICAL else frame[name].to_numpy(float)
            for name in MODEL_INPUTS
        }


@pytest.fixture(scope="session")
def scenario() -> Scenario:
    content = render_synthetic(students=4000, seed=21, fmt="csv")
    dataset = build_dataset([SourceFile("synth.csv", "synth.csv", content)])
    transitions = build_transitions(dataset.table)
    tenth = np.array([zlib.crc32(str(g).encode()) % 10 for g in transitions.groups])
    X, y, groups = transitions.X, transitions.y, transitions.groups  # noqa: N806
    fit = tenth < 2
    model, _ = fit_recipe("logistic_regression", X[fit], y[fit], groups[fit], folds=3, seed=0)
    ref = X[(tenth >= 2) & (tenth < 5)].reset_index(drop=True)
    reference = build_reference(ref, model.predict_proba(ref), model.threshold, "modelo-teste")
    return Scenario(model, reference, X[tenth >= 5].reset_index(drop=True))


def scored(model: PontoViradaClassifier, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    scores = model.predict_proba(frame)
    return scores, scores >= model.threshold


def request_body(row: pd.Series) -> dict[str, Any] | None:
    """A model-input row as a POST /predict body; None when a required field is missing."""
    required = ("fase", "inde", "iaa", "ieg", "ips", "ipp", "ida", "ipv", "ian")
    if any(pd.isna(row[name]) for name in required) or not 0 <= row["fase"] <= 7:
        return None

    def value(name: str) -> Any:
        item = row[name]
        return None if pd.isna(item) else item

    body: dict[str, Any] = {name: float(row[name]) for name in required}
    body["fase"] = int(row["fase"])
    if value("idade") is not None and 4 <= row["idade"] <= 40:
        body["idade"] = float(row["idade"])
    if value("anos_pm") is not None:
        body["anos_pm"] = int(row["anos_pm"])
    if value("pedra") is not None:
        body["pedra"] = str(row["pedra"])
    if value("pv") is not None:
        body["pv"] = bool(row["pv"])
    previous = {
        name.removesuffix("_anterior"): value(name)
        for name in row.index
        if name.endswith("_anterior") and value(name) is not None
    }
    if "pv" in previous:
        previous["pv"] = bool(previous["pv"])
    if previous:
        body["anterior"] = previous
    return body
