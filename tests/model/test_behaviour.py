"""Behavioural tests of the fitted model (as in Made-With-ML): minimum functionality,
direction and invariance, for every candidate kind, on synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from passos_magicos.data.dataset import build_dataset
from passos_magicos.data.storage import SourceFile
from passos_magicos.data.synth import render_synthetic
from passos_magicos.features import MODEL_INPUTS, TransitionSet, build_transitions
from passos_magicos.training.evaluation import fit_recipe
from passos_magicos.training.models import MODEL_KINDS, PontoViradaClassifier
from passos_magicos.training.packaging import PontoViradaModel, conform_inputs

INDICATORS = ["inde", "iaa", "ieg", "ips", "ipp", "ida", "ipv", "ian"]


@pytest.fixture(scope="module")
def transitions() -> TransitionSet:
    content = render_synthetic(students=900, seed=3, fmt="csv")
    dataset = build_dataset([SourceFile("synth.csv", "synth.csv", content)])
    return build_transitions(dataset.table)


@pytest.fixture(scope="module", params=MODEL_KINDS)
def model(request: pytest.FixtureRequest, transitions: TransitionSet) -> PontoViradaClassifier:
    fitted, _ = fit_recipe(
        request.param, transitions.X, transitions.y, transitions.groups, folds=3, seed=0
    )
    return fitted


def student(**overrides: object) -> pd.DataFrame:
    base: dict[str, object] = dict.fromkeys(MODEL_INPUTS, np.nan)
    base |= {"fase": 3, "idade": 12, "anos_pm": 2, "pedra": "Ametista", "pv": 0.0}
    base |= dict.fromkeys(INDICATORS, 7.0)
    base |= overrides
    return conform_inputs(pd.DataFrame([base]), MODEL_INPUTS)


def test_a_strong_student_is_more_likely_than_a_weak_one(model: PontoViradaClassifier) -> None:
    strong = student(**dict.fromkeys(INDICATORS, 9.5), pv=1.0, pedra="Topázio")
    weak = student(**dict.fromkeys(INDICATORS, 4.0), pedra="Quartzo")
    assert model.predict_proba(strong)[0] > model.predict_proba(weak)[0] + 0.1


@pytest.mark.parametrize("indicator", ["ipv", "inde", "ida"])
def test_raising_an_indicator_never_lowers_the_probability(
    model: PontoViradaClassifier, indicator: str
) -> None:
    grid = pd.concat([student(**{indicator: v}) for v in np.linspace(3, 10, 15)])
    probabilities = model.predict_proba(grid)
    assert np.all(np.diff(probabilities) >= -0.01), probabilities


def test_probabilities_are_valid_and_the_label_follows_the_threshold(
    model: PontoViradaClassifier, transitions: TransitionSet
) -> None:
    probabilities = model.predict_proba(transitions.X)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    assert 0 < model.threshold < 1
    assert np.array_equal(model.predict(transitions.X), probabilities >= model.threshold)
    # Calibrated: the mean probability is close to the observed PV rate.
    assert probabilities.mean() == pytest.approx(transitions.y.mean(), abs=0.03)


def test_invariant_to_fields_that_are_not_inputs(model: PontoViradaClassifier) -> None:
    pyfunc = PontoViradaModel(model)
    base = student()
    extra = base.assign(aluno_id="RA-1", turma="K", genero="Feminino", nome="X")
    shuffled = extra[list(reversed(extra.columns))]
    expected = pyfunc.predict(None, base)
    pd.testing.assert_frame_equal(pyfunc.predict(None, shuffled), expected)


def test_missing_optional_inputs_are_accepted(model: PontoViradaClassifier) -> None:
    minimal = pd.DataFrame([dict.fromkeys(INDICATORS, 7.0) | {"fase": 2}])
    output = PontoViradaModel(model).predict(None, minimal)
    assert output["probabilidade_pv"].between(0, 1).all()
    assert output["pv_previsto"].dtype == bool
