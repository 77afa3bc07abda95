"""The compiled model takes shortcuts on the request path (one row, a dozen rows, folded linear
weights, log-odds without the sigmoid round trip): each must give what the registered sklearn
model gives, and a row scored alone must get the same probability and factors as in a batch."""

from __future__ import annotations

import numpy as np
import pytest

from passos_magicos.data.dataset import build_dataset
from passos_magicos.data.storage import SourceFile
from passos_magicos.data.synth import render_synthetic
from passos_magicos.features import TransitionSet, build_transitions
from passos_magicos.serving.compiled import (
    MAX_DIFFERENCE,
    compile_classifier,
    encode_inputs,
    frame_records,
    reference_batch,
)
from passos_magicos.serving.runtime import build_loaded_model
from passos_magicos.training.evaluation import fit_recipe
from passos_magicos.training.packaging import conform_inputs

KINDS = ("compact_logistic", "logistic_regression", "random_forest", "hist_gradient_boosting")


@pytest.fixture(scope="module")
def transitions() -> TransitionSet:
    content = render_synthetic(students=500, seed=11)
    return build_transitions(build_dataset([SourceFile("s.csv", "s.csv", content)]).table)


@pytest.mark.parametrize("kind", KINDS)
def test_every_path_matches_sklearn_and_a_row_alone_matches_the_batch(
    kind: str, transitions: TransitionSet
) -> None:
    classifier, _ = fit_recipe(kind, transitions.X, transitions.y, transitions.groups, 3, 5)
    compiled = compile_classifier(classifier)
    batch = reference_batch(size=64, seed=3)
    expected = classifier.predict_proba(conform_inputs(batch, classifier.features))
    raw = encode_inputs(frame_records(batch))
    shapes = {
        "batch": compiled.predict_proba(raw),
        "one by one": np.concatenate([compiled.predict_proba(raw[i : i + 1]) for i in range(64)]),
        "a dozen at a time": np.concatenate(
            [compiled.predict_proba(raw[i : i + 12]) for i in range(0, 64, 12)]
        ),
    }
    for shape, probabilities in shapes.items():
        assert np.max(np.abs(probabilities - expected)) <= MAX_DIFFERENCE, shape

    model = build_loaded_model(
        classifier, {}, name="m", version="1", alias=None, source="local", uri="-"
    )
    assert model.compiled is not None
    together, factors = model.predict_and_explain(raw)
    for i in range(len(raw)):
        alone, own = model.predict_and_explain(raw[i : i + 1])
        assert alone[0] == pytest.approx(together[i], abs=1e-12)
        assert own[0] == factors[i]
    assert any(factors), "nenhum fator: o teste não compararia nada"
