"""The model as registered: an MLflow pyfunc that takes raw canonical fields.

Preprocessing, calibration and the decision threshold travel inside it, and so does this
package's code (`code_paths`), so `mlflow.pyfunc.load_model("models:/…@production")` works in
any process with the pinned requirements, not only where this project is installed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import ColSpec, Schema, TensorSpec

import passos_magicos
from passos_magicos.features import CATEGORICAL, NUMERIC_INPUTS
from passos_magicos.reference_profile import REFERENCE_FILE
from passos_magicos.settings import Settings
from passos_magicos.training.models import PontoViradaClassifier

REQUIRED_INPUTS: Final = ("fase", "inde", "iaa", "ieg", "ips", "ipp", "ida", "ipv", "ian")
OUTPUT_PROBABILITY: Final = "probabilidade_pv"
OUTPUT_LABEL: Final = "pv_previsto"
METADATA_FILE: Final = "ponto_virada.json"
BACKTEST_FILE: Final = "backtest.json"  # beside a local copy: what /model/backtest serves
BACKTEST_ARTIFACT: Final = f"backtest/{BACKTEST_FILE}"  # in the training run
FAIRNESS_FILE: Final = "equidade.json"  # beside a local copy: what /model/fairness serves
FAIRNESS_ARTIFACT: Final = f"fairness/{FAIRNESS_FILE}"  # in the training run


def pip_requirements() -> list[str]:
    return [
        f"{name}=={version(name)}"
        for name in ("scikit-learn", "pandas", "numpy", "scipy", "cloudpickle", "pydantic")
    ]


def model_signature() -> ModelSignature:
    inputs: list[ColSpec | TensorSpec] = [
        ColSpec("double", name, required=name in REQUIRED_INPUTS) for name in NUMERIC_INPUTS
    ]
    inputs += [ColSpec("string", name, required=False) for name in CATEGORICAL]
    outputs: list[ColSpec | TensorSpec] = [
        ColSpec("double", OUTPUT_PROBABILITY),
        ColSpec("boolean", OUTPUT_LABEL),
    ]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def conform_inputs(frame: pd.DataFrame, features: tuple[str, ...]) -> pd.DataFrame:
    """Optional inputs absent from the request become NaN; numbers become floats."""
    out = frame.reindex(columns=list(features))
    numeric = [c for c in features if c not in CATEGORICAL]
    out[numeric] = out[numeric].apply(pd.to_numeric, errors="coerce").astype("float64")
    for column in CATEGORICAL:
        if column in out:
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out


class PontoViradaModel(PythonModel):
    """pyfunc wrapper: DataFrame of canonical fields → probability and label per row."""

    def __init__(self, classifier: PontoViradaClassifier) -> None:
        self.classifier = classifier

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = conform_inputs(pd.DataFrame(model_input), self.classifier.features)
        probability = self.classifier.predict_proba(frame)
        return pd.DataFrame(
            {
                OUTPUT_PROBABILITY: probability,
                OUTPUT_LABEL: probability >= self.classifier.threshold,
            }
        )


def input_example(frame: pd.DataFrame, features: tuple[str, ...]) -> pd.DataFrame:
    """A made-up student (medians, the commonest pedra) and one with only the required fields:
    no real record of a minor goes into the model's artefacts."""
    inputs = conform_inputs(frame, features)
    typical: dict[str, Any] = {}
    for name in features:
        known = inputs[name].dropna()
        if known.empty:  # e.g. no previous cycle in a two-cycle file
            typical[name] = None
        else:
            typical[name] = known.mode().iloc[0] if name in CATEGORICAL else known.median()
    minimal = {name: typical[name] if name in REQUIRED_INPUTS else None for name in features}
    example = conform_inputs(pd.DataFrame([typical, minimal]), features)
    return example.replace({np.nan: None})


@contextmanager
def _package_code() -> Iterator[str]:
    """This package's code for `code_paths`, copied without its files' modes: MLflow keeps the
    modes it finds, and every file under the model folders stays owner-only (the umask)."""
    with tempfile.TemporaryDirectory(prefix="passos-code-") as tmp:
        target = Path(tmp) / "passos_magicos"
        shutil.copytree(
            Path(passos_magicos.__file__).parent,
            target,
            copy_function=shutil.copyfile,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        yield str(target)


def log_model(classifier: PontoViradaClassifier, example: pd.DataFrame) -> Any:
    """Log the pyfunc in the active run (registration is the registry module's job)."""
    with _package_code() as code:
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=PontoViradaModel(classifier),
            code_paths=[code],
            pip_requirements=pip_requirements(),
            signature=model_signature(),
            input_example=input_example(example, classifier.features),
            metadata={"threshold": classifier.threshold, "kind": classifier.kind},
        )


def save_local(
    classifier: PontoViradaClassifier,
    path: Path,
    metadata: dict[str, Any],
    example: pd.DataFrame,
    extra_files: dict[str, str] | None = None,
) -> None:
    """Write the same pyfunc to a local folder (MLFLOW_ENABLED=false), with `extra_files`
    (name → text) beside it; the folder is swapped in whole."""
    from passos_magicos.registry import mlflow_defaults

    mlflow_defaults()
    with _swap_into(path) as target, _package_code() as code:
        mlflow.pyfunc.save_model(
            path=str(target),
            python_model=PontoViradaModel(classifier),
            code_paths=[code],
            pip_requirements=pip_requirements(),
            signature=model_signature(),
            input_example=input_example(example, classifier.features),
        )
        (target / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str))
        for name, text in (extra_files or {}).items():
            (target / name).write_text(text)


@contextmanager
def _swap_into(path: Path) -> Iterator[Path]:
    """Build the new folder beside `path`, then swap it in: readers never see half a model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        target = staging / "model"
        yield target
        previous = staging / "previous"
        if path.exists():
            path.rename(previous)
        target.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_classifier(model_uri: str) -> tuple[PontoViradaClassifier, dict[str, Any]]:
    """Load a registered or local model and unwrap the classifier (serving uses it directly)."""
    loaded = mlflow.pyfunc.load_model(model_uri)
    python_model = loaded.unwrap_python_model()
    if not isinstance(python_model, PontoViradaModel):
        raise TypeError(f"{model_uri} não é um modelo Ponto de Virada")
    metadata: dict[str, Any] = dict(loaded.metadata.metadata or {})
    return python_model.classifier, metadata


def download_registered(settings: Settings, version: str, target: Path) -> dict[str, Any]:
    """Download a registered version's files into `target` (an empty folder) and describe it:
    what /model/info and the local fallback need, from the version tags and the run."""
    from mlflow.artifacts import download_artifacts

    from passos_magicos import registry

    name = settings.MLFLOW_MODEL_NAME
    # The API's poller calls this beside other code: explicit URIs, no process-wide MLflow state.
    client = registry.client_for(settings)
    uris = {"tracking_uri": settings.tracking_uri, "registry_uri": settings.tracking_uri}
    model_version = client.get_model_version(name, version)
    tags = model_version.tags
    # The version's storage location, not `models:/…`: MLflow resolves that form with the
    # process-wide registry URI whatever is passed here.
    location = client.get_model_version_download_uri(name, version)
    staging = target / ".download"
    downloaded = Path(download_artifacts(artifact_uri=location, dst_path=str(staging), **uris))
    for item in downloaded.iterdir():  # the files land in a folder named after the location's
        item.rename(target / item.name)
    shutil.rmtree(staging)
    run_metrics: dict[str, float] = {}
    if model_version.run_id:
        run_metrics = {
            k: v
            for k, v in client.get_run(model_version.run_id).data.metrics.items()
            if k.startswith(("oot_", "cv_"))
        }
    metadata: dict[str, Any] = {
        "model_name": name,
        "version": version,
        "run_id": model_version.run_id,
        "kind": tags.get("model.kind"),
        "threshold": float(tags.get("model.threshold", "nan")),
        "eval_key": tags.get("eval.key"),
        "eval_metric": tags.get("eval.metric"),
        "eval_value": float(tags.get("eval.value", "nan")),
        "trained_at": tags.get("trained_at"),
        "dataset_sha256": tags.get("dataset.sha256"),
        "metrics": run_metrics,
        "exported_at": registry.now_iso(),
    }
    (target / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    if model_version.run_id and tags.get("monitoring.reference"):
        # The monitoring job finds the profile beside a local copy of the version it serves.
        reference = download_artifacts(
            run_id=model_version.run_id, artifact_path=tags["monitoring.reference"], **uris
        )
        profile = json.loads(Path(reference).read_text())
        profile["versao"] = version
        (target / REFERENCE_FILE).write_text(json.dumps(profile))
    if model_version.run_id:
        _copy_backtest(model_version.run_id, target, settings.tracking_uri)
    return metadata


def _copy_backtest(run_id: str, target: Path, tracking_uri: str) -> None:
    """The run's backtest and fairness tables beside the model copy (absent for
    single-transition runs, and fairness for runs older than it)."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    for artifact, name in ((BACKTEST_ARTIFACT, BACKTEST_FILE), (FAIRNESS_ARTIFACT, FAIRNESS_FILE)):
        try:
            path = download_artifacts(
                run_id=run_id, artifact_path=artifact, tracking_uri=tracking_uri
            )
        except (MlflowException, OSError):
            continue
        shutil.copyfile(path, target / name)


def export_registered(settings: Settings, version: str) -> Path:
    """Copy a registered version, byte for byte, to the local model folder (serving fallback)."""
    with _swap_into(settings.local_model_dir) as target:
        target.mkdir()
        download_registered(settings, version, target)
    return settings.local_model_dir


def read_local_metadata(path: Path) -> dict[str, Any]:
    metadata_path = path / METADATA_FILE
    if not metadata_path.exists():
        return {}
    data: dict[str, Any] = json.loads(metadata_path.read_text())
    return data
