"""Batch scoring: the latest cycle of a file → next-cycle PV probability per student."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from passos_magicos import registry
from passos_magicos.data.dataset import Dataset, load_dataset
from passos_magicos.data.storage import is_s3_uri, write_s3
from passos_magicos.features import scoring_frame
from passos_magicos.settings import Settings
from passos_magicos.training.models import PontoViradaClassifier
from passos_magicos.training.packaging import conform_inputs, load_classifier, read_local_metadata

OUTPUT_COLUMNS = ("aluno_id", "ano", "probabilidade_pv", "pv_previsto", "modelo_versao")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedModel:
    uri: str
    version: str
    source: str  # "mlflow" | "local"
    alias: str | None = None
    name: str | None = None  # registered model name (None: MLFLOW_MODEL_NAME)


def resolve_model(settings: Settings, model_uri: str | None = None) -> ResolvedModel:
    """Which model to use: an explicit URI, the local export, or the registry alias."""
    if model_uri is None and (settings.MODEL_SOURCE == "local" or not settings.MLFLOW_ENABLED):
        model_uri = str(settings.local_model_dir)
        if not (settings.local_model_dir / "MLmodel").exists():
            raise registry.RegistryError(
                f"nenhum modelo local em {settings.local_model_dir}; rode `passos-magicos train`"
            )
    if model_uri is not None and not model_uri.startswith("models:/"):
        metadata = read_local_metadata(Path(model_uri))
        return ResolvedModel(
            uri=model_uri,
            version=str(metadata.get("version", "local")),
            source="local",
            name=str(metadata.get("model_name", settings.MLFLOW_MODEL_NAME)),
        )

    client = registry.configure(settings)
    name: str = settings.MLFLOW_MODEL_NAME
    alias: str | None = settings.model_alias
    version: str | None = None
    if model_uri is not None:
        reference = model_uri.removeprefix("models:/")
        if "@" in reference:
            name, alias = reference.split("@", 1)
        else:
            name, _, version = reference.partition("/")
            alias = None
    if version is None:
        version = registry.version_for_alias(client, name, str(alias))
        if version is None:
            raise registry.RegistryError(
                f"nenhuma versão de {name!r} com alias @{alias}; promova uma com "
                "`passos-magicos promote` (ou use --model-uri models:/NOME@staging)"
            )
    return ResolvedModel(
        uri=registry.model_uri(name, version=version),
        version=version,
        source="mlflow",
        alias=alias,
        name=name,
    )


def score(dataset: Dataset, classifier: PontoViradaClassifier, version: str) -> pd.DataFrame:
    frame = scoring_frame(dataset.table)
    probability = classifier.predict_proba(conform_inputs(frame, classifier.features))
    out = pd.DataFrame(
        {
            "aluno_id": frame["aluno_id"].astype(str),
            "ano": frame["ano"].astype(int),
            "probabilidade_pv": probability.round(4),
            "pv_previsto": probability >= classifier.threshold,
            "modelo_versao": version,
        }
    )
    return out.sort_values(
        ["probabilidade_pv", "aluno_id"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


def predict_file(
    settings: Settings, data_uris: Sequence[str], output: str, model_uri: str | None = None
) -> tuple[pd.DataFrame, ResolvedModel, Dataset]:
    resolved = resolve_model(settings, model_uri)
    dataset = load_dataset(data_uris, settings.PV_DERIVED_LABELS)
    classifier, _ = load_classifier(resolved.uri)
    scored = score(dataset, classifier, resolved.version)
    write_csv(scored, output)
    record_roster(settings, scored, resolved, float(classifier.threshold), dataset.digest)
    return scored, resolved, dataset


def record_roster(
    settings: Settings,
    scored: pd.DataFrame,
    resolved: ResolvedModel,
    threshold: float,
    dataset_digest: str | None,
) -> int:
    """Keep the scored roster in the monitoring store, so that its realised performance can be
    measured once the next cycle arrives (`passos-magicos evaluate`). Ids only, never names.
    A store that cannot be written costs a warning, not the predictions already written."""
    from sqlalchemy.exc import SQLAlchemyError

    from passos_magicos.performance_history import PerformanceHistory, RosterRow

    rows = [
        RosterRow(str(student), int(cycle), float(probability), bool(flag))
        for student, cycle, probability, flag in zip(
            scored["aluno_id"],
            scored["ano"],
            scored["probabilidade_pv"],
            scored["pv_previsto"],
            strict=True,
        )
    ]
    try:
        history = PerformanceHistory(settings.monitoring_store_url)
        try:
            return history.record_roster(
                modelo=resolved.name or settings.MLFLOW_MODEL_NAME,
                versao=resolved.version,
                fonte=resolved.source,
                limiar=threshold,
                rows=rows,
                dataset_sha256=dataset_digest,
            )
        finally:
            history.dispose()
    except (SQLAlchemyError, OSError) as exc:
        logger.warning(
            "lista pontuada não registrada no histórico de monitoramento (%s): a avaliação do "
            "desempenho realizado não a verá",
            type(exc).__name__,
        )
        return 0


def write_csv(frame: pd.DataFrame, output: str) -> None:
    if is_s3_uri(output):
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        write_s3(output, buffer.getvalue().encode())
        return
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
