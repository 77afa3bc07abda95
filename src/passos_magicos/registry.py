"""MLflow tracking and registry: configure, quality gate, aliases, promotion history.

Aliases, not stages: `MLFLOW_MODEL_STAGE=Production` means `@production`. Every promotion and
rollback is appended to a history kept as a tag of the registered model, so that `rollback`
knows where to go back to and `models` can say when and by whom a version was promoted.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from passos_magicos.settings import Settings

HISTORY_TAG: Final = "promotion_history"
HISTORY_MAX_EVENTS: Final = 40  # keeps the tag well under MLflow's tag size limit
STAGING: Final = "staging"
PRODUCTION: Final = "production"
ALIASES: Final = (STAGING, PRODUCTION)


class RegistryError(RuntimeError):
    """A registry operation that cannot be done; the message (pt-BR) says why."""


class _DropKnownNoise(logging.Filter):
    """MLflow warnings that say nothing actionable for this project."""

    NOISE = (
        "Passing a Python object as `python_model`",  # we pin requirements and own the class
        "Failed to resolve installed pip version",  # uv environments have no pip
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in self.NOISE)


def quiet_mlflow_logs() -> None:
    for name in ("mlflow", "mlflow.pyfunc", "mlflow.utils.environment"):
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.level, logging.WARNING))
        if not any(isinstance(f, _DropKnownNoise) for f in logger.filters):
            logger.addFilter(_DropKnownNoise())


def mlflow_defaults() -> None:
    """Environment defaults for every MLflow call of this project (the user's env wins)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # MLflow would copy this project's uv.lock into every model: the pinned pip requirements
    # already describe the model's environment.
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    # Keep stdout for results (`--json`); we print the run link ourselves, on stderr.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    quiet_mlflow_logs()


def client_for(settings: Settings) -> MlflowClient:
    """A client of the configured server (or of the embedded store under DATA_DIR) that leaves
    MLflow's process-wide URIs alone: the API's alias poller runs beside other code."""
    mlflow_defaults()
    if settings.MLFLOW_TRACKING_USERNAME:
        os.environ["MLFLOW_TRACKING_USERNAME"] = settings.MLFLOW_TRACKING_USERNAME
    if settings.MLFLOW_TRACKING_PASSWORD:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = (
            settings.MLFLOW_TRACKING_PASSWORD.get_secret_value()
        )
    if settings.MLFLOW_TRACKING_URI is None:
        (settings.DATA_DIR / "mlflow").mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def configure(settings: Settings) -> MlflowClient:
    """Point MLflow (process-wide, for the fluent API) at the configured store."""
    client = client_for(settings)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return client


def ensure_experiment(client: MlflowClient, settings: Settings) -> str:
    experiment = client.get_experiment_by_name(settings.MLFLOW_EXPERIMENT_NAME)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = None
    if settings.MLFLOW_TRACKING_URI is None:
        settings.local_artifact_root.mkdir(parents=True, exist_ok=True)
        location = settings.local_artifact_root.as_uri()
    return str(client.create_experiment(settings.MLFLOW_EXPERIMENT_NAME, location))


def git_commit() -> str:
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "desconhecido"
    return result.stdout.strip()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def current_user() -> str:
    for variable in ("PROMOTED_BY", "GITHUB_ACTOR", "USER"):
        if os.environ.get(variable):
            return os.environ[variable]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "desconhecido"


NOT_FOUND_CODES: Final = frozenset(
    {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}
)


def version_for_alias(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version behind an alias; None when there is none. An unreachable server raises."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in NOT_FOUND_CODES:
            return None
        raise


def model_uri(name: str, alias: str | None = None, version: str | None = None) -> str:
    return f"models:/{name}/{version}" if version else f"models:/{name}@{alias}"


def register_version(
    client: MlflowClient, name: str, source: str, model_id: str | None, run: Any
) -> str:
    """A new version of `name` from a logged model (creating the registered model once)."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description="Probabilidade de atingir o Ponto de Virada no próximo ciclo."
        )
    version = client.create_model_version(
        name=name, source=source, run_id=run.info.run_id, model_id=model_id
    )
    return str(version.version)


# ---------------------------------------------------------------------------------------------
# Quality gate


@dataclass
class GateCandidate:
    """The new version's figure under its evaluation, and how to re-score a rival on it."""

    metric: str  # e.g. "oot_roc_auc" or "cv_roc_auc"
    value: float
    evaluation_key: str  # same key = same data and protocol
    test_year: int | None
    rescore: Callable[[str], float] | None = None  # model URI → metric on this evaluation
    # Paired verdict against INDE_t alone on the test year ("supera" / "empata" / "perde").
    inde_verdict: str | None = None
    inde_difference: str | None = None  # e.g. "-0.009 (IC 95% -0.033 a +0.017)"
    # Fairness gaps flagged on the test year, code (`genero:feminino:roc_auc`) → plain text;
    # None when the run has no fairness report (no backtest).
    fairness_flags: dict[str, str] | None = None


FAIRNESS_FLAGGED_TAG: Final = "fairness.flagged"  # "true" / "false" (absent: no report)
FAIRNESS_FLAGS_TAG: Final = "fairness.flags"  # JSON list of the flagged gaps' codes


@dataclass
class GateVerdict:
    passed: bool
    metric: str
    value: float
    floor: float
    tolerance: float
    reasons: list[str] = field(default_factory=list)
    production_version: str | None = None
    production_value: float | None = None
    comparison: str = "sem_producao"
    warnings: list[str] = field(default_factory=list)  # shown, but do not fail the gate
    fairness_flags: dict[str, str] | None = None  # as in GateCandidate
    fairness_gate: str = "warn"  # FAIRNESS_GATE when judged

    def summary(self) -> str:
        state = "APROVADO" if self.passed else "REPROVADO"
        text = f"{state}: " + "; ".join(self.reasons)
        return text + "".join(f"; atenção: {warning}" for warning in self.warnings)

    @property
    def fairness_state(self) -> str:
        """sem_relatorio / sem_lacunas / alerta (warn) / bloqueio (block)."""
        if self.fairness_flags is None:
            return "sem_relatorio"
        if not self.fairness_flags:
            return "sem_lacunas"
        return "bloqueio" if self.fairness_gate == "block" else "alerta"

    def tags(self) -> dict[str, str]:
        tags = {
            "gate.passed": str(self.passed).lower(),
            "gate.metric": self.metric,
            "gate.value": f"{self.value:.4f}",
            "gate.floor": f"{self.floor:.4f}",
            "gate.tolerance": f"{self.tolerance:.4f}",
            "gate.comparison": self.comparison,
            "gate.summary": self.summary()[:4900],
            "gate.at": now_iso(),
        }
        if self.production_version is not None:
            tags["gate.production_version"] = self.production_version
        if self.production_value is not None:
            tags["gate.production_value"] = f"{self.production_value:.4f}"
        tags["gate.fairness"] = self.fairness_state
        if self.fairness_flags is not None:
            tags[FAIRNESS_FLAGGED_TAG] = str(bool(self.fairness_flags)).lower()
            tags[FAIRNESS_FLAGS_TAG] = _codes_json(list(self.fairness_flags))
        return tags


def _codes_json(codes: list[str], limit: int = 4900) -> str:
    """As many codes as fit in a tag value."""
    kept: list[str] = []
    while len(kept) < len(codes) and len(json.dumps([*kept, codes[len(kept)]])) <= limit:
        kept.append(codes[len(kept)])
    return json.dumps(kept, ensure_ascii=False)


def fairness_gaps(tags: dict[str, str]) -> list[str] | None:
    """The flagged fairness gaps (codes) recorded on a version; None when it has no report."""
    if FAIRNESS_FLAGGED_TAG not in tags:
        return None
    try:
        codes = json.loads(tags.get(FAIRNESS_FLAGS_TAG, "[]"))
    except ValueError:
        return ["?"] if tags[FAIRNESS_FLAGGED_TAG] == "true" else []
    return [str(code) for code in codes] if isinstance(codes, list) else []


BACKTEST_TAG: Final = "bt.{year}.roc_auc"  # a version's backtest ROC-AUC on one test year


def absolute_checks(settings: Settings, candidate: GateCandidate) -> GateVerdict:
    """The checks that need no other version: the floor, and not losing to INDE_t alone."""
    verdict = GateVerdict(
        passed=True,
        metric=candidate.metric,
        value=candidate.value,
        floor=settings.GATE_MIN_ROC_AUC,
        tolerance=settings.GATE_TOLERANCE,
    )
    where = f" em {candidate.test_year - 1}→{candidate.test_year}" if candidate.test_year else ""
    if candidate.value < settings.GATE_MIN_ROC_AUC:
        verdict.passed = False
        verdict.reasons.append(
            f"{candidate.metric}{where} {candidate.value:.3f} abaixo do piso "
            f"{settings.GATE_MIN_ROC_AUC}"
        )
    else:
        verdict.reasons.append(
            f"{candidate.metric}{where} {candidate.value:.3f} ≥ piso {settings.GATE_MIN_ROC_AUC}"
        )
    if candidate.inde_verdict == "perde":
        verdict.passed = False
        verdict.reasons.append(
            f"perde para o INDE_t sozinho{where} (diferença {candidate.inde_difference})"
        )
    elif candidate.inde_verdict is not None:
        verdict.reasons.append(
            f"{'supera' if candidate.inde_verdict == 'supera' else 'empata com'} o INDE_t "
            f"sozinho{where} (diferença {candidate.inde_difference})"
        )
    _fairness_check(settings, candidate, verdict, where)
    return verdict


def _fairness_check(
    settings: Settings, candidate: GateCandidate, verdict: GateVerdict, where: str
) -> None:
    """A fairness gap flagged on the test year: a warning (FAIRNESS_GATE=warn) or a failure
    (block)."""
    flags = candidate.fairness_flags
    verdict.fairness_gate = settings.FAIRNESS_GATE
    verdict.fairness_flags = None if flags is None else dict(flags)
    if flags is None:
        return
    if not flags:
        verdict.reasons.append(f"nenhuma lacuna de equidade sinalizada{where}")
        return
    text = f"lacunas de equidade sinalizadas{where}: " + "; ".join(flags.values())
    if settings.FAIRNESS_GATE == "block":
        verdict.passed = False
        verdict.reasons.append(f"{text} (FAIRNESS_GATE=block)")
    else:
        verdict.warnings.append(f"{text} (FAIRNESS_GATE=warn: não bloqueia)")


def evaluate_gate(
    client: MlflowClient, settings: Settings, candidate: GateCandidate
) -> GateVerdict:
    """Floor and INDE_t on the newest backtest year, then no worse than @production on the same
    year (± tolerance): production re-scored there when it never saw that year, else its own
    backtest figure for it."""
    verdict = absolute_checks(settings, candidate)

    name = settings.MLFLOW_MODEL_NAME
    production = version_for_alias(client, name, PRODUCTION)
    if production is None:
        verdict.reasons.append("nenhuma versão em produção para comparar")
        return verdict
    tags = client.get_model_version(name, production).tags
    verdict.production_version = production
    trained_until = int(tags.get("train.label_max_year", "0") or 0)
    if (
        candidate.rescore is not None
        and candidate.test_year is not None
        and trained_until < candidate.test_year
    ):
        # Production never saw the candidate's test cycle: score it there, out of time too.
        verdict.production_value = candidate.rescore(model_uri(name, version=production))
        verdict.comparison = "reavaliada_no_mesmo_teste"
    elif candidate.test_year is not None and BACKTEST_TAG.format(year=candidate.test_year) in tags:
        verdict.production_value = float(tags[BACKTEST_TAG.format(year=candidate.test_year)])
        verdict.comparison = (
            "mesma_avaliacao"
            if tags.get("eval.key") == candidate.evaluation_key
            else "backtest_mesmo_ano"
        )
    elif tags.get("eval.key") == candidate.evaluation_key and "eval.value" in tags:
        verdict.production_value = float(tags["eval.value"])
        verdict.comparison = "mesma_avaliacao"
    elif "eval.value" in tags:
        verdict.production_value = float(tags["eval.value"])
        verdict.comparison = "avaliacao_registrada_outros_dados"
    if verdict.production_value is None:
        verdict.reasons.append(f"v{production} em produção não tem métrica comparável")
        return verdict
    limit = verdict.production_value - settings.GATE_TOLERANCE
    comparison = (
        f"{candidate.value:.3f} vs v{production} em produção {verdict.production_value:.3f} "
        f"(tolerância {settings.GATE_TOLERANCE}, {verdict.comparison})"
    )
    if candidate.value < limit:
        verdict.passed = False
        verdict.reasons.append(f"pior que a produção: {comparison}")
    else:
        verdict.reasons.append(f"não é pior que a produção: {comparison}")
    return verdict


# ---------------------------------------------------------------------------------------------
# Promotion history, promote, rollback


def promotion_history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    try:
        tags = client.get_registered_model(name).tags
    except MlflowException as exc:
        raise RegistryError(f"modelo {name!r} não existe no registry") from exc
    events: list[dict[str, Any]] = json.loads(tags.get(HISTORY_TAG, "[]"))
    return events


def production_lineage(events: list[dict[str, Any]]) -> list[str]:
    """Versions that held @production, as a stack: promote pushes, rollback pops back."""
    stack: list[str] = []
    for event in events:
        if event.get("alias") != PRODUCTION:
            continue
        target = str(event["versao"])
        if event["acao"] == "promote":
            stack.append(target)
        else:
            while stack and stack[-1] != target:
                stack.pop()
            if not stack:
                stack.append(target)
    return stack


def _record(
    client: MlflowClient, name: str, event: dict[str, Any], events: list[dict[str, Any]]
) -> None:
    events = [*events, event][-HISTORY_MAX_EVENTS:]
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(events, ensure_ascii=False))
    version = str(event["versao"])
    client.set_model_version_tag(name, version, f"{event['alias']}.set_at", event["em"])
    client.set_model_version_tag(name, version, f"{event['alias']}.set_by", event["por"])


@dataclass(frozen=True)
class AliasChange:
    alias: str
    version: str
    previous: str | None


def _require_version(client: MlflowClient, name: str, version: str) -> Any:
    try:
        return client.get_model_version(name, version)
    except MlflowException as exc:
        raise RegistryError(f"versão {version} do modelo {name!r} não existe") from exc


def promote(
    client: MlflowClient,
    name: str,
    version: str | None = None,
    alias: str = PRODUCTION,
    force: bool = False,
    by: str | None = None,
    before_move: Callable[[str], object] | None = None,
) -> AliasChange:
    """Point `alias` at `version` (default for production: the current @staging).

    `before_move(version)` runs after every check and before the alias moves (the CLI exports
    the version to the local fallback there): if it fails, the alias stays where it was."""
    if alias not in ALIASES:
        raise RegistryError(f"alias inválido {alias!r}; use {' ou '.join(ALIASES)}")
    events = promotion_history(client, name)
    if version is None:
        if alias != PRODUCTION:
            raise RegistryError("informe a versão a colocar em staging (--version)")
        version = version_for_alias(client, name, STAGING)
        if version is None:
            raise RegistryError(
                "não há versão em @staging para promover; treine um modelo que passe no portão "
                "de qualidade ou informe --version"
            )
    model_version = _require_version(client, name, version)
    if model_version.tags.get("gate.passed") != "true" and not force:
        raise RegistryError(
            f"a versão {version} não passou no portão de qualidade "
            f"({model_version.tags.get('gate.summary', 'sem veredito')}); use --force para "
            "promover mesmo assim"
        )
    previous = version_for_alias(client, name, alias)
    if previous == version:
        return AliasChange(alias, version, previous)
    if before_move is not None:
        before_move(version)
    client.set_registered_model_alias(name, alias, version)
    event = {
        "acao": "promote",
        "alias": alias,
        "versao": version,
        "anterior": previous,
        "em": now_iso(),
        "por": by or current_user(),
        "forcado": force,
        # Fairness gaps flagged on the promoted version's newest backtest year (codes such as
        # `genero:feminino:roc_auc`); None: a version without a fairness report.
        "lacunas_equidade": fairness_gaps(model_version.tags),
    }
    _record(client, name, event, events)
    return AliasChange(alias, version, previous)


def rollback(
    client: MlflowClient,
    name: str,
    version: str | None = None,
    by: str | None = None,
    before_move: Callable[[str], object] | None = None,
) -> AliasChange:
    """Put @production back on the version that held it before (or on `version`);
    `before_move` as in `promote`."""
    events = promotion_history(client, name)
    current = version_for_alias(client, name, PRODUCTION)
    if version is None:
        lineage = production_lineage(events)
        if current is not None and lineage and lineage[-1] == current:
            lineage.pop()
        if not lineage:
            raise RegistryError(
                f"não há versão anterior a v{current} no histórico de produção para voltar; "
                "informe --version"
            )
        version = lineage[-1]
    _require_version(client, name, version)
    if version == current:
        raise RegistryError(f"a versão {version} já está em produção")
    if before_move is not None:
        before_move(version)
    client.set_registered_model_alias(name, PRODUCTION, version)
    event = {
        "acao": "rollback",
        "alias": PRODUCTION,
        "versao": version,
        "anterior": current,
        "em": now_iso(),
        "por": by or current_user(),
    }
    _record(client, name, event, events)
    return AliasChange(PRODUCTION, version, current)


# ---------------------------------------------------------------------------------------------
# Listing

SUMMARY_METRICS: Final = ("oot_roc_auc", "cv_roc_auc", "oot_pr_auc", "oot_brier")
BASELINE_METRICS: Final = ("roc_auc", "pr_auc", "brier")
_BASELINE_PATTERN: Final = re.compile(
    r"^(oot|cv)_baseline_[a-z0-9_]+_(" + "|".join(BASELINE_METRICS) + r")$"
)


def is_baseline_metric(name: str) -> bool:
    """A baseline's headline metric, e.g. `oot_baseline_ipv_t_roc_auc`."""
    return _BASELINE_PATTERN.match(name) is not None


def is_summary_metric(name: str) -> bool:
    """Metrics kept as `metric.<name>` tags on a version (what `models` and the API list)."""
    return name in SUMMARY_METRICS or is_baseline_metric(name)


@dataclass
class VersionRow:
    version: str
    aliases: list[str]
    created_at: str
    kind: str
    gate: str
    metrics: dict[str, float]
    promoted_at: str | None
    promoted_by: str | None
    run_id: str | None
    baselines: dict[str, float] = field(default_factory=dict)
    gate_summary: str | None = None


def list_versions(client: MlflowClient, name: str) -> list[VersionRow]:
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        raise RegistryError(f"não foi possível listar {name!r}: {exc.message}") from exc
    # Not every store fills aliases on search results; the registered model has them all.
    aliases_of: dict[str, list[str]] = {}
    if versions:
        for alias, version in client.get_registered_model(name).aliases.items():
            aliases_of.setdefault(str(version), []).append(alias)
    rows = []
    for mv in sorted(versions, key=lambda v: int(v.version), reverse=True):
        tags = mv.tags
        metrics = {m: float(tags[f"metric.{m}"]) for m in SUMMARY_METRICS if f"metric.{m}" in tags}
        baselines = {
            name: float(value)
            for tag, value in sorted(tags.items())
            if tag.startswith("metric.") and is_baseline_metric(name := tag.removeprefix("metric."))
        }
        rows.append(
            VersionRow(
                version=str(mv.version),
                aliases=sorted(aliases_of.get(str(mv.version), [])),
                created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(
                    timespec="seconds"
                ),
                kind=tags.get("model.kind", "?"),
                gate={"true": "aprovado", "false": "reprovado"}.get(
                    tags.get("gate.passed", ""), "—"
                ),
                metrics=metrics,
                promoted_at=tags.get("production.set_at"),
                promoted_by=tags.get("production.set_by"),
                run_id=mv.run_id,
                baselines=baselines,
                gate_summary=tags.get("gate.summary"),
            )
        )
    return rows
