"""The quality gate's own checks: the floor on the newest backtest year, and never a model that
loses (with its interval) to INDE_t alone."""

from __future__ import annotations

import pytest

from passos_magicos import registry
from passos_magicos.settings import Settings


def _candidate(value: float, verdict: str | None) -> registry.GateCandidate:
    return registry.GateCandidate(
        metric="oot_roc_auc",
        value=value,
        evaluation_key="k",
        test_year=2024,
        inde_verdict=verdict,
        inde_difference="-0.030 (IC 95% -0.050 a -0.010)" if verdict == "perde" else "+0.000",
    )


@pytest.mark.parametrize(
    ("value", "verdict", "passed"),
    [
        (0.76, "empata", True),
        (0.76, "supera", True),
        (0.76, "perde", False),  # worse than ranking by INDE: refused whatever its AUC
        (0.69, "supera", False),  # below the floor
        (0.76, None, True),  # single-transition runs have no backtest verdict
    ],
)
def test_floor_and_inde_verdict(value: float, verdict: str | None, passed: bool) -> None:
    settings = Settings(GATE_MIN_ROC_AUC=0.70)
    result = registry.absolute_checks(settings, _candidate(value, verdict))
    assert result.passed is passed
    assert "2023→2024" in result.summary()
    if verdict == "perde":
        assert "perde para o INDE_t sozinho" in result.summary()
