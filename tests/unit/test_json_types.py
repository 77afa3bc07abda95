"""The API's JSON helpers: strict types and documents with metrics that could not be computed."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import BaseModel, ValidationError

from passos_magicos.json_types import Boolean, Integer, json_safe


def test_json_safe_turns_every_nan_and_inf_into_null_at_any_depth() -> None:
    document = {
        "roc_auc": math.nan,
        "anos": [{"ic": [0.7, math.inf]}, {"grupos": {"n": 3, "brier": -math.inf}}],
        "nome": "modelo",
        "flag": True,
    }
    safe = json_safe(document)
    assert safe == {
        "roc_auc": None,
        "anos": [{"ic": [0.7, None]}, {"grupos": {"n": 3, "brier": None}}],
        "nome": "modelo",
        "flag": True,
    }
    json.dumps(safe, allow_nan=False)  # raises on any NaN left
    assert math.isnan(document["roc_auc"])  # the input is left as it was


class _Body(BaseModel):
    pv: Boolean
    fase: Integer


def test_strict_types_refuse_what_the_schema_does_not_say() -> None:
    assert _Body.model_validate({"pv": False, "fase": 3.0}).fase == 3
    for bad in ({"pv": 0, "fase": 3}, {"pv": False, "fase": "3"}, {"pv": False, "fase": 3.5}):
        with pytest.raises(ValidationError):
            _Body.model_validate(bad)
