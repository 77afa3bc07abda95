"""Finds the reference profile of a model version (built at training: reference_profile.py)
for the monitoring job: on-disk cache, the local model folder, then MLflow."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from passos_magicos.reference_profile import PROFILE_FORMAT, REFERENCE_ARTIFACT, REFERENCE_FILE
from passos_magicos.settings import Settings

logger = logging.getLogger(__name__)


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
        # Imported here: packaging pulls in MLflow (~1.3 s), which most monitor runs never need.
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
            client = registry.client_for(self.settings)
            run_id = client.get_model_version(model, version).run_id
            if not run_id:
                raise LookupError("versão sem run")
            with_dir = Path(
                download_artifacts(
                    run_id=run_id,
                    artifact_path=REFERENCE_ARTIFACT,
                    tracking_uri=self.settings.tracking_uri,
                )
            )
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
