"""Reference profile of a model version: what its inputs and scores looked like at training.

Only summaries are kept (quantile-bin counts for numbers, frequencies for categories, the score
distribution and the positive rate): no student record leaves training in the profile. The
monitoring job compares each prediction with the profile of the version that made it.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray

from passos_magicos.features import CATEGORICAL
from passos_magicos.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

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


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", part)


class ReferenceProfiles:
    """Finds the profile of a (model, version): cache, the local model folder, then MLflow.

    Registered versions never change, so what comes from MLflow is cached on disk; the local
    model (version "local") is read afresh every time.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache_dir = settings.DATA_DIR / "monitoring" / "referencias"
        self.errors: dict[tuple[str, str], str] = {}  # why a profile could not be found (pt-BR)

    def get(self, model: str, version: str) -> dict[str, Any] | None:
        try:
            return self._get(model, version)
        except (OSError, ValueError) as exc:  # a damaged file: this version goes unmonitored
            self.errors[(model, version)] = f"perfil de referência ilegível ({exc})"[:300]
            return None

    def _get(self, model: str, version: str) -> dict[str, Any] | None:
        cached = self.cache_dir / _safe(model) / f"{_safe(version)}.json"
        if cached.is_file():
            return _read(cached)
        local = self._local(model, version)
        if local is not None:
            return local
        if version == "local" or not self.settings.MLFLOW_ENABLED:
            self.errors[(model, version)] = "perfil de referência não encontrado no modelo local"
            return None
        profile = self._from_mlflow(model, version)
        if profile is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            temporary = cached.with_suffix(".tmp")
            temporary.write_text(json.dumps(profile))
            temporary.replace(cached)
        return profile

    def _local(self, model: str, version: str) -> dict[str, Any] | None:
        from passos_magicos.training.packaging import read_local_metadata

        folder = self.settings.local_model_dir
        path = folder / REFERENCE_FILE
        if not path.is_file():
            return None
        metadata = read_local_metadata(folder)
        if str(metadata.get("version")) != version or metadata.get("model_name") != model:
            return None
        return _read(path)

    def _from_mlflow(self, model: str, version: str) -> dict[str, Any] | None:
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException

        from passos_magicos import registry

        try:
            client = registry.configure(self.settings)
            run_id = client.get_model_version(model, version).run_id
            if not run_id:
                raise LookupError("versão sem run")
            with_dir = Path(download_artifacts(run_id=run_id, artifact_path=REFERENCE_ARTIFACT))
            return _read(with_dir)
        except (MlflowException, OSError, LookupError) as exc:
            logger.warning("perfil de referência de %s v%s indisponível: %s", model, version, exc)
            self.errors[(model, version)] = f"perfil de referência indisponível no MLflow ({exc})"[
                :300
            ]
            return None


def _read(path: Path) -> dict[str, Any]:
    profile: dict[str, Any] = json.loads(path.read_text())
    if profile.get("formato") != PROFILE_FORMAT:
        raise ValueError(f"{path}: formato de perfil desconhecido {profile.get('formato')!r}")
    return profile
