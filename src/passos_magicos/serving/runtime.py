"""The model the API serves: loaded from the registry alias (or the local folder), compiled,
swapped atomically on reload, retried in the background when MLflow is unreachable.

A request reads `runtime.current` once and uses that object to the end, so a reload can never
hand it half of one model and half of another.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from passos_magicos.data.schema import PEDRAS
from passos_magicos.features import CURRENT_NUMERIC, MODEL_INPUTS
from passos_magicos.serving.compiled import (
    MAX_DIFFERENCE,
    Array,
    CompilationError,
    CompiledModel,
    compile_classifier,
    largest_difference,
)
from passos_magicos.serving.explain import Explainer, Factor
from passos_magicos.settings import Settings
from passos_magicos.training.models import PontoViradaClassifier
from passos_magicos.training.packaging import (
    BACKTEST_FILE,
    FAIRNESS_FILE,
    conform_inputs,
    download_registered,
    export_registered,
    load_classifier,
    read_local_metadata,
)

logger = logging.getLogger(__name__)

Source = Literal["mlflow", "local", "fallback"]


class ModelNotReadyError(RuntimeError):
    """No model loaded yet (the readiness probe answers 503)."""


class ModelUnavailableError(RuntimeError):
    """The configured model cannot be loaded now; the message says why (pt-BR)."""


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    alias: str | None
    source: Source
    uri: str
    kind: str
    threshold: float
    classifier: PontoViradaClassifier = field(repr=False)
    compiled: CompiledModel | None = field(repr=False)
    explainer: Explainer = field(repr=False)
    metadata: dict[str, Any] = field(default_factory=dict)
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    compile_difference: float | None = None
    # The training run's per-year backtest (backtest.json); None when trained on one transition.
    backtest: dict[str, Any] | None = field(default=None, repr=False)
    # Its fairness per group and backtest year (equidade.json); None when it has none.
    fairness: dict[str, Any] | None = field(default=None, repr=False)

    def predict(self, raw: Array) -> Array:
        """Calibrated probabilities for a float matrix of raw inputs (MODEL_INPUTS order)."""
        if self.compiled is not None:
            return self.compiled.predict_proba(raw)
        return _sklearn_predict(self.classifier, raw)

    def predict_and_explain(self, raw: Array) -> tuple[Array, list[list[Factor]]]:
        return self.explainer.predict_and_explain(raw)


def _sklearn_predict(classifier: PontoViradaClassifier, raw: Array) -> Array:
    """The slow, always-correct path (used only when compilation is not exact)."""
    frame = pd.DataFrame(raw, columns=list(MODEL_INPUTS))
    codes = frame["pedra"]
    frame["pedra"] = [None if np.isnan(c) else PEDRAS[int(c)] for c in codes]
    return np.asarray(classifier.predict_proba(conform_inputs(frame, classifier.features)))


def read_backtest(folder: Path, name: str = BACKTEST_FILE) -> dict[str, Any] | None:
    """The backtest (or, with `name`, another JSON table such as FAIRNESS_FILE) beside a model
    copy, read at load time: with a read-only models folder the copy lives in a temporary
    folder that is gone once the model is loaded."""
    path = folder / name
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        logger.warning("backtest not readable at %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) and data else None


def build_loaded_model(
    classifier: PontoViradaClassifier,
    metadata: dict[str, Any],
    *,
    name: str,
    version: str,
    alias: str | None,
    source: Source,
    uri: str,
    backtest: dict[str, Any] | None = None,
    fairness: dict[str, Any] | None = None,
) -> LoadedModel:
    compiled: CompiledModel | None = None
    difference: float | None = None
    try:
        candidate = compile_classifier(classifier)
        difference = largest_difference(candidate, classifier)
        if difference <= MAX_DIFFERENCE:
            compiled = candidate
        else:
            logger.warning("compiled model differs by %.2e: using sklearn", difference)
    except CompilationError as exc:
        logger.warning("model not compiled (%s): using sklearn", exc)

    def predict(raw: Array) -> Array:
        if compiled is not None:
            return compiled.predict_proba(raw)
        return _sklearn_predict(classifier, raw)

    columns = classifier.pipeline.named_steps["prep"].named_steps["columns"]
    medians = np.asarray(columns.named_transformers_["values"].steps[0][1].statistics_)
    pedra_median = float(columns.named_transformers_["pedra"].steps[1][1].statistics_[0])
    return LoadedModel(
        name=name,
        version=version,
        alias=alias,
        source=source,
        uri=uri,
        kind=classifier.kind,
        threshold=float(classifier.threshold),
        classifier=classifier,
        compiled=compiled,
        explainer=Explainer(predict, medians[: len(CURRENT_NUMERIC)], pedra_median),
        metadata=metadata,
        compile_difference=difference,
        backtest=backtest,
        fairness=fairness,
    )


def load_local(settings: Settings, source: Source) -> LoadedModel:
    path = settings.local_model_dir
    if not (path / "MLmodel").exists():
        raise ModelUnavailableError(f"nenhum modelo local em {path}")
    classifier, _ = load_classifier(str(path))
    metadata = read_local_metadata(path)
    return build_loaded_model(
        classifier,
        metadata,
        name=str(metadata.get("model_name", settings.MLFLOW_MODEL_NAME)),
        version=str(metadata.get("version", "local")),
        alias=None,
        source=source,
        uri=str(path),
        backtest=read_backtest(path),
        fairness=read_backtest(path, FAIRNESS_FILE),
    )


def registry_version(settings: Settings) -> str:
    from passos_magicos import registry

    client = registry.configure(settings)
    version = registry.version_for_alias(client, settings.MLFLOW_MODEL_NAME, settings.model_alias)
    if version is None:
        raise ModelUnavailableError(
            f"nenhuma versão de {settings.MLFLOW_MODEL_NAME} com alias @{settings.model_alias}"
        )
    return version


def load_registered(settings: Settings) -> LoadedModel:
    """The alias's version, also kept as the local fallback copy when the folder is writable."""
    version = registry_version(settings)
    try:
        export_registered(settings, version)
        classifier, _ = load_classifier(str(settings.local_model_dir))
        metadata = read_local_metadata(settings.local_model_dir)
        backtest = read_backtest(settings.local_model_dir)
        fairness = read_backtest(settings.local_model_dir, FAIRNESS_FILE)
    except OSError:  # read-only models folder: load from a temporary copy
        with tempfile.TemporaryDirectory() as tmp:
            metadata = download_registered(settings, version, Path(tmp))
            classifier, _ = load_classifier(tmp)
            backtest = read_backtest(Path(tmp))
            fairness = read_backtest(Path(tmp), FAIRNESS_FILE)
    return build_loaded_model(
        classifier,
        metadata,
        name=settings.MLFLOW_MODEL_NAME,
        version=version,
        alias=settings.model_alias,
        source="mlflow",
        uri=f"models:/{settings.MLFLOW_MODEL_NAME}/{version}",
        backtest=backtest,
        fairness=fairness,
    )


def _settle_garbage_collector() -> None:
    """Loading MLflow and sklearn leaves ~400k long-lived objects; a full collection over them
    pauses every request for ~200 ms. Collect once now and move them out of the GC's way."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelRuntime:
    """Holds the served model; loads, reloads and follows the alias in the background."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._current: LoadedModel | None = None
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        # A dead MLflow must fail fast here, not after minutes of client retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def require(self) -> LoadedModel:
        model = self._current
        if model is None:
            raise ModelNotReadyError(self.last_error or "modelo ainda não carregado")
        return model

    def _load(self) -> LoadedModel:
        settings = self.settings
        if settings.MODEL_SOURCE == "local" or not settings.MLFLOW_ENABLED:
            return load_local(settings, "local")
        try:
            return load_registered(settings)
        except Exception as exc:  # MLflow down, alias missing, artefact store unreachable
            reason = f"MLflow indisponível: {type(exc).__name__}: {exc}"[:500]
            if settings.MODEL_FALLBACK_LOCAL:
                try:
                    model = load_local(settings, "fallback")
                except ModelUnavailableError as local_exc:
                    raise ModelUnavailableError(f"{reason}; {local_exc}") from exc
                logger.warning("serving the local fallback model: %s", reason)
                self.last_error = reason
                return model
            raise ModelUnavailableError(reason) from exc

    def reload(self) -> tuple[LoadedModel | None, LoadedModel]:
        """Load again (same rules as at start) and swap; the old model serves until then."""
        with self._reload_lock:
            previous = self._current
            model = self._load()
            self._current = model
            _settle_garbage_collector()
            if model.source != "fallback":
                self.last_error = None
            logger.info("model %s v%s loaded from %s", model.name, model.version, model.source)
            return previous, model

    def try_load(self) -> bool:
        try:
            self.reload()
        except Exception as exc:
            self.last_error = str(exc)[:500]
            logger.warning("model not loaded: %s", self.last_error)
            return False
        return True

    def start(self) -> None:
        """Load in the background: the API starts at once and answers 503 until ready."""
        self._thread = threading.Thread(target=self._background, name="model-runtime", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _background(self) -> None:
        self.try_load()
        poll = self.settings.MODEL_POLL_SECONDS
        while not self._stop.is_set():
            model = self._current
            if model is None or model.source == "fallback":
                # Not ready, or serving the fallback: keep trying the registry.
                if self._stop.wait(self.settings.MODEL_RETRY_SECONDS):
                    return
                self.try_load()
            elif poll > 0 and model.source == "mlflow":
                if self._stop.wait(poll):
                    return
                self._follow_alias(model)
            elif self._stop.wait(self.settings.MODEL_RETRY_SECONDS):
                # Nothing to do now; look again (a reload may have switched to the fallback).
                return

    def _follow_alias(self, model: LoadedModel) -> None:
        try:
            version = registry_version(self.settings)
        except Exception as exc:
            logger.warning("alias check failed: %s", exc)
            return
        if version != model.version:
            logger.info("alias @%s moved to v%s: reloading", model.alias, version)
            self.try_load()
