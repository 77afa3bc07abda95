"""The model the API serves: loaded from the registry alias (or the local folder), compiled,
swapped atomically on reload, retried in the background when MLflow is unreachable.

A request reads `runtime.current` once and uses that object to the end, so a reload can never
hand it half of one model and half of another.

Every worker of every replica serves the same version:

- `POST /admin/reload-model` reloads the worker that got it, then rewrites a small marker file
  beside the prediction log (`ReloadMarker`; the log's volume is shared by every worker and
  replica). Before answering, each worker compares the marker with the one it last acted on
  (one `stat`, about a microsecond) and reloads first when it changed; a background thread
  does the same every second, so that usually happens before any request waits for it. After
  the reload call returns, no worker of that process answers with the old model.
- Without a reload call, every worker follows the alias by itself (`MODEL_POLL_SECONDS`, 30 s
  by default): a promotion reaches every replica within that bound plus the load time.
- MLflow unreachable: the current model keeps serving (or the local copy, `fallback`), and the
  registry is tried again every `MODEL_RETRY_SECONDS`.
"""

from __future__ import annotations

import fcntl
import gc
import json
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from starlette.concurrency import run_in_threadpool

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
MARKER_CHECK_SECONDS: Final = 1.0  # background check of the reload marker, per worker
Stamp = tuple[int, int, int]  # (inode, mtime ns, size) of the reload marker


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

    client = registry.client_for(settings)  # polled every few seconds: no global MLflow state
    version = registry.version_for_alias(client, settings.MLFLOW_MODEL_NAME, settings.model_alias)
    if version is None:
        raise ModelUnavailableError(
            f"nenhuma versão de {settings.MLFLOW_MODEL_NAME} com alias @{settings.model_alias}"
        )
    return version


@contextmanager
def local_copy_lock(settings: Settings) -> Iterator[None]:
    """One process at a time writes and reads the local copy (workers reloading together must
    not swap the folder under each other); no lock on a read-only models folder."""
    folder = settings.local_model_dir
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(
            folder.with_name(f".{folder.name}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def load_registered(settings: Settings) -> LoadedModel:
    """The alias's version, also kept as the local fallback copy when the folder is writable."""
    version = registry_version(settings)
    try:
        with local_copy_lock(settings):
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


class ReloadMarker:
    """The file a reload rewrites (a new file each time: `os.replace`), that every worker
    watches; its content says what was loaded, for people reading it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._name = str(self.path)

    def stamp(self) -> Stamp | None:
        try:
            st = os.stat(self._name)  # noqa: PTH116 - on every request: no Path overhead
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def publish(self, model: LoadedModel) -> Stamp | None:
        payload = {
            "geracao": uuid.uuid4().hex,
            "versao": model.version,
            "fonte": model.source,
            "em": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "processo": os.getpid(),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".recarga-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(payload, handle)
            Path(temporary).replace(self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return self.stamp()


class ModelRuntime:
    """Holds the served model; loads, reloads and follows the alias in the background."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._current: LoadedModel | None = None
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._marker_thread: threading.Thread | None = None
        self.marker = ReloadMarker(settings.reload_marker_path)
        self._marker_seen: Stamp | None = None  # the marker this worker last acted on
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
            return self._reload_locked()

    def reload_everywhere(self) -> tuple[LoadedModel | None, LoadedModel, bool]:
        """Reload this worker, then tell every other worker and replica (the marker); the
        last value is False when the marker could not be written (only this worker reloaded;
        the others still follow the alias within MODEL_POLL_SECONDS)."""
        with self._reload_lock:
            previous, model = self._reload_locked()
            try:
                self._marker_seen = self.marker.publish(model)
            except OSError as exc:
                logger.warning("recarga não propagada aos outros workers: %s", exc)
                return previous, model, False
            return previous, model, True

    def _reload_locked(self) -> tuple[LoadedModel | None, LoadedModel]:
        previous = self._current
        try:
            model = self._load()
        except Exception as exc:  # the current model stays; /ready says why
            self.last_error = f"recarga falhou: {exc}"[:500]
            raise
        self._current = model
        _settle_garbage_collector()
        if model.source != "fallback":
            self.last_error = None
        logger.info("model %s v%s loaded from %s", model.name, model.version, model.source)
        return previous, model

    async def ensure_fresh(self) -> None:
        """Before answering: when another worker reloaded (the marker changed), reload here
        first. Costs one `stat` when nothing changed."""
        if self.marker.stamp() != self._marker_seen:
            await run_in_threadpool(self.follow_marker)

    def follow_marker(self) -> bool:
        """Reload if the marker changed since this worker last acted on it; True if reloaded.
        A failed load is not retried per request: the current model stays (and the
        background retry or alias check takes over).

        The marker counts as seen only once the reload is over: requests arriving meanwhile
        still see it changed, so they wait here (on the lock) for the new model instead of
        answering with the old one."""
        with self._reload_lock:
            stamp = self.marker.stamp()
            if stamp == self._marker_seen:
                return False
            try:
                self._reload_locked()
            except Exception as exc:
                logger.warning("recarga pedida por outro worker falhou: %s", exc)
                return False
            finally:
                self._marker_seen = stamp
            return True

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
        self._marker_seen = self.marker.stamp()  # the load below is at least that recent
        self._thread = threading.Thread(target=self._background, name="model-runtime", daemon=True)
        self._thread.start()
        self._marker_thread = threading.Thread(
            target=self._watch_marker, name="model-reload-marker", daemon=True
        )
        self._marker_thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in (self._thread, self._marker_thread):
            if thread is not None:
                thread.join(timeout=5)

    def _watch_marker(self) -> None:
        while not self._stop.wait(MARKER_CHECK_SECONDS):
            if self.marker.stamp() != self._marker_seen:
                self.follow_marker()

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
