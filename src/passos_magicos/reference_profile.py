"""Reference profile of a model version: what its inputs and scores looked like at training.

Only summaries are kept (quantile-bin counts for numbers, frequencies for categories, the score
distribution and the positive rate): no student record leaves training in the profile. Training
writes it beside the model (training/); the monitoring job reads it (monitoring/reference.py)
and compares each prediction with the profile of the version that made it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray

from passos_magicos.features import CATEGORICAL

if TYPE_CHECKING:
    import pandas as pd

PROFILE_FORMAT: Final = 1
REFERENCE_FILE: Final = "reference_profile.json"
REFERENCE_ARTIFACT: Final = f"monitoring/{REFERENCE_FILE}"  # in the training run
QUANTILES: Final = tuple(np.linspace(0.1, 0.9, 9))  # deciles → at most 10 bins


def numeric_edges(values: NDArray[np.float64]) -> list[float]:
    """Interior bin edges at the deciles of the non-missing values (repeated edges merged)."""
    present = values[~np.isnan(values)]
    if present.size == 0:
        return []
    return sorted({float(q) for q in np.quantile(present, QUANTILES)})


def bin_counts(values: NDArray[np.float64], edges: list[float]) -> tuple[list[int], int]:
    """Counts per bin (len(edges) + 1 bins; a value on an edge goes right) and missing count."""
    missing = np.isnan(values)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values[~missing], side="right")
    counts = np.bincount(index, minlength=len(edges) + 1)
    return [int(c) for c in counts], int(missing.sum())


def numeric_profile(values: NDArray[np.float64]) -> dict[str, Any]:
    edges = numeric_edges(values)
    counts, missing = bin_counts(values, edges)
    present = values[~np.isnan(values)]
    return {
        "tipo": "numerico",
        "bordas": edges,
        "contagens": counts,
        "ausentes": missing,
        "n": int(values.size),
        "media": float(present.mean()) if present.size else None,
    }


def categorical_profile(values: pd.Series) -> dict[str, Any]:
    present = values.dropna().astype(str)
    frequencies = present.value_counts().sort_index()
    return {
        "tipo": "categorico",
        "categorias": {str(k): int(v) for k, v in frequencies.items()},
        "ausentes": int(values.isna().sum()),
        "n": len(values),
    }


def build_reference(
    features: pd.DataFrame,
    scores: NDArray[np.float64],
    threshold: float,
    model_name: str,
    positive_rate: float | None = None,
) -> dict[str, Any]:
    """The profile of a model trained on `features`, whose out-of-sample scores are `scores`.

    Out-of-fold scores stand for what the model gives students it has not seen, which is what
    it does in production (in-sample scores of a forest would be too confident).
    `positive_rate`: the flagged share expected in production (the label threshold is set on
    the cycle being scored); default: the share of `scores` at or above `threshold`.
    """
    profile: dict[str, Any] = {}
    for name in features.columns:
        if name in CATEGORICAL:
            profile[name] = categorical_profile(features[name])
        else:
            profile[name] = numeric_profile(features[name].to_numpy(dtype=np.float64))
    scores = np.asarray(scores, dtype=np.float64)
    valid = scores[~np.isnan(scores)]
    return {
        "formato": PROFILE_FORMAT,
        "modelo": model_name,
        "versao": None,  # set when the version is known (registration or export)
        "criado_em": datetime.now(UTC).isoformat(timespec="seconds"),
        "n": len(features),
        "limiar": float(threshold),
        "features": profile,
        "score": numeric_profile(valid),
        "taxa_positiva": (
            positive_rate
            if positive_rate is not None
            else float(np.mean(valid >= threshold))
            if valid.size
            else None
        ),
    }
