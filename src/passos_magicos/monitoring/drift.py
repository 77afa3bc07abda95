"""Drift statistics between a reference profile and the current predictions.

A feature drifts when the shift is large (PSI ≥ DRIFT_THRESHOLD) *and* unlikely to be chance
(chi-square test on the same bins, Bonferroni-corrected over the checks of one model version).
Requiring both keeps small windows from alerting on noise and huge windows from alerting on
differences too small to matter.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy import special

from passos_magicos.reference_profile import bin_counts

PSI_FLOOR: Final = 1e-4  # share given to an empty bin, so that PSI stays finite
MIN_COHEN_H: Final = 0.2  # a "small" effect: smaller changes in the positive rate do not alert


def psi(reference: NDArray[np.float64], current: NDArray[np.float64]) -> float:
    """Population stability index of two count vectors over the same bins."""
    ref = np.maximum(reference / max(reference.sum(), 1), PSI_FLOOR)
    cur = np.maximum(current / max(current.sum(), 1), PSI_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def chi_square(reference: NDArray[np.float64], current: NDArray[np.float64]) -> tuple[float, float]:
    """Chi-square test of homogeneity (reference vs current counts): p-value and Cramér's V."""
    keep = (reference + current) > 0
    table = np.vstack([reference[keep], current[keep]])
    if table.shape[1] < 2 or table[0].sum() == 0 or table[1].sum() == 0:
        return 1.0, 0.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    p_value = float(special.chdtrc(table.shape[1] - 1, statistic))  # df = (2-1)(k-1)
    return p_value, math.sqrt(statistic / table.sum())


def binned_ks(reference: NDArray[np.float64], current: NDArray[np.float64]) -> tuple[float, float]:
    """Kolmogorov-Smirnov D on the bins (missing excluded) and its asymptotic p-value.

    On binned data D can only underestimate the exact statistic: the test errs on the quiet side.
    """
    n_ref, n_cur = reference.sum(), current.sum()
    if n_ref == 0 or n_cur == 0:
        return 0.0, 1.0
    d = float(np.max(np.abs(np.cumsum(reference) / n_ref - np.cumsum(current) / n_cur)))
    effective = n_ref * n_cur / (n_ref + n_cur)
    return d, float(special.kolmogorov(d * math.sqrt(effective)))


@dataclass
class FeatureDrift:
    feature: str
    tipo: str
    psi: float
    p_valor: float  # chi-square on the PSI bins
    cramer_v: float
    ks_d: float | None  # numbers only
    ks_p_valor: float | None
    ausentes_ref: float  # share of missing values
    ausentes_atual: float
    media_ref: float | None
    media_atual: float | None
    drift: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def numeric_drift(name: str, profile: dict[str, Any], values: NDArray[np.float64]) -> FeatureDrift:
    counts, missing = bin_counts(values, profile["bordas"])
    reference = np.asarray([*profile["contagens"], profile["ausentes"]], dtype=np.float64)
    current = np.asarray([*counts, missing], dtype=np.float64)
    p_value, cramer = chi_square(reference, current)
    d, ks_p = binned_ks(reference[:-1], current[:-1])
    present = values[~np.isnan(values)]
    return FeatureDrift(
        feature=name,
        tipo="numerico",
        psi=psi(reference, current),
        p_valor=p_value,
        cramer_v=cramer,
        ks_d=d,
        ks_p_valor=ks_p,
        ausentes_ref=profile["ausentes"] / max(profile["n"], 1),
        ausentes_atual=missing / max(values.size, 1),
        media_ref=profile.get("media"),
        media_atual=float(present.mean()) if present.size else None,
    )


def categorical_drift(name: str, profile: dict[str, Any], values: list[Any]) -> FeatureDrift:
    categories: list[str] = list(profile["categorias"])
    position = {c: i for i, c in enumerate(categories)}
    current = np.zeros(len(categories) + 2)  # …, unseen categories, missing
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            current[-1] += 1
        else:
            current[position.get(str(value), len(categories))] += 1
    reference = np.asarray(
        [*profile["categorias"].values(), 0, profile["ausentes"]], dtype=np.float64
    )
    p_value, cramer = chi_square(reference, current)
    return FeatureDrift(
        feature=name,
        tipo="categorico",
        psi=psi(reference, current),
        p_valor=p_value,
        cramer_v=cramer,
        ks_d=None,
        ks_p_valor=None,
        ausentes_ref=profile["ausentes"] / max(profile["n"], 1),
        ausentes_atual=current[-1] / max(len(values), 1),
        media_ref=None,
        media_atual=None,
    )


@dataclass
class PositiveRate:
    referencia: float
    atual: float
    n: int
    positivos: int
    p_valor: float
    cohen_h: float
    drift: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def binomial_p_value(k: int, n: int, p: float) -> float:
    """Exact two-sided binomial test: the probability of every outcome no likelier than k."""
    if p <= 0.0 or p >= 1.0:
        return 1.0 if k == round(n * p) else 0.0
    outcomes = np.arange(n + 1)
    log_pmf = (
        special.gammaln(n + 1)
        - special.gammaln(outcomes + 1)
        - special.gammaln(n - outcomes + 1)
        + outcomes * math.log(p)
        + (n - outcomes) * math.log1p(-p)
    )
    observed = log_pmf[k]
    pmf = np.exp(log_pmf)
    return float(min(1.0, pmf[log_pmf <= observed + 1e-7].sum()))


def positive_rate_test(positives: int, n: int, reference_rate: float) -> PositiveRate:
    """Binomial test of the share of predicted PV against the reference rate, with Cohen's h."""
    rate = positives / n if n else 0.0
    p_value = binomial_p_value(positives, n, reference_rate) if n else 1.0
    h = abs(2 * math.asin(math.sqrt(rate)) - 2 * math.asin(math.sqrt(reference_rate)))
    return PositiveRate(reference_rate, rate, n, positives, p_value, h)


@dataclass
class VersionDrift:
    """Every statistic for the predictions of one model version, against its profile."""

    n: int
    alpha_por_teste: float
    features: list[FeatureDrift] = field(default_factory=list)
    score: FeatureDrift | None = None
    taxa_positiva: PositiveRate | None = None

    @property
    def drifted(self) -> list[FeatureDrift]:
        return sorted((f for f in self.features if f.drift), key=lambda f: -f.psi)


def compare(
    profile: dict[str, Any],
    columns: dict[str, NDArray[np.float64] | list[Any]],
    scores: NDArray[np.float64],
    predicted: NDArray[np.bool_],
    psi_threshold: float,
    alpha: float,
) -> VersionDrift:
    """Drift of the current `columns` (feature → values), scores and labels against `profile`."""
    names = [name for name in profile["features"] if name in columns]
    tests = len(names) + 2  # features, score distribution, positive rate
    per_test = alpha / tests
    result = VersionDrift(n=int(scores.size), alpha_por_teste=per_test)
    for name in names:
        spec = profile["features"][name]
        values = columns[name]
        if spec["tipo"] == "categorico":
            drift = categorical_drift(name, spec, list(values))
        else:
            drift = numeric_drift(name, spec, np.asarray(values, dtype=np.float64))
        drift.drift = drift.psi >= psi_threshold and drift.p_valor < per_test
        result.features.append(drift)
    score = numeric_drift("score", profile["score"], scores)
    score.drift = score.psi >= psi_threshold and score.p_valor < per_test
    result.score = score
    if profile.get("taxa_positiva") is not None:
        positives, n = int(predicted.sum()), int(predicted.size)
        rate = positive_rate_test(positives, n, profile["taxa_positiva"])
        rate.drift = rate.p_valor < per_test and rate.cohen_h >= MIN_COHEN_H
        result.taxa_positiva = rate
    return result
