"""JSON types as the OpenAPI document states them, without coercion.

Pydantic's lax mode takes `"7.5"` for a number, `0` for false and `"3"` or `true` for an
integer; the schema says number, boolean and integer, and a client that sends otherwise has a
bug that deserves a 422, not a guess. An integer may still come as `3.0` (JSON Schema counts it
as an integer, and records built from spreadsheets often carry one)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BeforeValidator, Strict


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


INTEGRAL = BeforeValidator(_integral)
Integer = Annotated[int, Strict(), INTEGRAL]
Number = Annotated[float, Strict()]  # an integer is a number too (strict float takes it)
Boolean = Annotated[bool, Strict()]
# A nullable integer with bounds takes them inside, before INTEGRAL:
#     Annotated[int, Field(strict=True, ge=0, le=30), INTEGRAL] | None
# (`Integer | None = Field(ge=0)` validates the same, but Pydantic then writes the bounds into
# the OpenAPI document as `ge`/`le` instead of `minimum`/`maximum`, and clients ignore them.)


def json_safe(value: Any) -> Any:
    """NaN/inf (a metric that could not be computed) → None, in nested dicts and lists: JSON
    has no NaN, and a document read from a model's artefacts may hold one."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value
