"""Where a trained model goes: the MLflow registry behind the quality gate, or (with
MLFLOW_ENABLED=false) the local model folder behind the same floor."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow.data.pandas_dataset import from_pandas

from passos_magicos import registry
from passos_magicos.data.dataset import Dataset
from passos_magicos.progress import Echo
from passos_magicos.reference_profile import REFERENCE_ARTIFACT, REFERENCE_FILE
from passos_magicos.settings import Settings
from passos_magicos.training.backtest import Backtest
from passos_magicos.training.fairness import gate_flags
from passos_magicos.training.models import model_params
from passos_magicos.training.outcome import TrainOutcome, evaluation_key, flat_metrics, rescorer
from passos_magicos.training.packaging import (
    BACKTEST_ARTIFACT,
    BACKTEST_FILE,
    FAIRNESS_ARTIFACT,
    FAIRNESS_FILE,
    METADATA_FILE,
    log_model,
    save_local,
)
from passos_magicos.training.report import (
    LABEL_RULE,
    SELECTION_RULE,
    newest_year_statement,
    write_card,
)


def _selection_params(outcome: TrainOutcome) -> dict[str, float]:
    if outcome.selection is None:
        return {}
    return {f"auto.{kind}_roc_auc": round(v, 4) for kind, v in outcome.selection.means.items()}


def _label_params(outcome: TrainOutcome) -> dict[str, str | bool]:
    return {
        "labels.derived_enabled": outcome.dataset.report.derived_labels,
        "labels.origins": _origins_text(outcome),
    }


def _origins_text(outcome: TrainOutcome) -> str:
    """Label origin per label year, e.g. `2021:455 oficial; 2024:681 derivado`."""
    parts = []
    for year in outcome.transitions.years:
        origins = outcome.transitions.in_year(year).label_origins()
        parts.append(f"{year}:" + "+".join(f"{n} {o}" for o, n in sorted(origins.items())))
    return "; ".join(parts)[:500]


def _backtest_tags(outcome: TrainOutcome) -> dict[str, str]:
    if outcome.backtest is None:
        return {}
    tags = {
        registry.BACKTEST_TAG.format(year=year.test_year): f"{year.figures()['roc_auc'].value:.6f}"
        for year in outcome.backtest.years
    }
    newest = outcome.backtest.newest
    tags["bt.newest.inde_t_verdict"] = newest.comparison("inde_t").verdict
    tags["bt.newest.statement"] = newest_year_statement(outcome.backtest)[:4900]
    return tags


def backtest_document(outcome: TrainOutcome) -> dict[str, Any]:
    """`backtest/backtest.json`: the per-year table (what the API and dashboard show)."""
    if outcome.backtest is None:
        return {}
    return outcome.backtest.as_dict() | {
        "resumo": newest_year_statement(outcome.backtest),
        "modelo_final": outcome.kind,
        "regra_rotulo": LABEL_RULE,
        "regra_escolha": SELECTION_RULE,
    }


def gate_candidate(
    outcome: TrainOutcome, key: str, rescore: Callable[[str], float] | None
) -> registry.GateCandidate:
    headline = outcome.headline
    inde_verdict = inde_difference = None
    if outcome.backtest is not None:
        comparison = outcome.backtest.newest.comparison("inde_t")
        inde_verdict = comparison.verdict
        diff = comparison.difference
        inde_difference = f"{diff.value:+.3f} (IC 95% {diff.low:+.3f} a {diff.high:+.3f})"
    return registry.GateCandidate(
        metric=_headline_metric(outcome),
        value=headline.model["roc_auc"],
        evaluation_key=key,
        test_year=headline.test_year,
        rescore=rescore,
        inde_verdict=inde_verdict,
        inde_difference=inde_difference,
        fairness_flags=gate_flags(outcome.fairness),
    )


def _headline_metric(outcome: TrainOutcome) -> str:
    return "oot_roc_auc" if outcome.headline.protocol == "out_of_time" else "cv_roc_auc"


def _data_metrics(dataset: Dataset) -> dict[str, float]:
    report = dataset.report
    metrics: dict[str, float] = {f"rows_{y}": n for y, n in report.rows_by_year.items()}
    metrics |= {f"drop_{k}": v for k, v in report.dropped_by_reason().items()}
    metrics["drop_total"] = report.total_dropped
    return metrics


def publish_to_mlflow(
    settings: Settings, outcome: TrainOutcome, plots: list[Path], tick: Echo
) -> None:
    client = registry.configure(settings)
    experiment_id = registry.ensure_experiment(client, settings)
    name = settings.MLFLOW_MODEL_NAME
    headline = outcome.headline
    metric = _headline_metric(outcome)
    key = evaluation_key(outcome.dataset, headline, int(outcome.classifier.metadata["horizon"]))
    classifier = outcome.classifier
    started = datetime.now(UTC)
    run_name = f"{outcome.kind}-{started:%Y%m%d-%H%M%S}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags(
            {
                "dataset_sha256": outcome.dataset.digest,
                "git_commit": registry.git_commit(),
                "model.kind": outcome.kind,
                "data_files": ", ".join(f.name for f in outcome.dataset.report.files),
            }
        )
        mlflow.log_params(
            {
                "model": outcome.kind,
                "threshold": round(classifier.threshold, 6),
                "n_features": len(classifier.features),
                "cv_folds": settings.CV_FOLDS,
                "seed": settings.RANDOM_SEED,
                "horizon": classifier.metadata["horizon"],
                "n_transitions": len(outcome.transitions),
                "label_years": ",".join(map(str, outcome.transitions.years)),
                **model_params(outcome.kind, classifier.pipeline),
                **_selection_params(outcome),
                **_label_params(outcome),
            }
        )
        mlflow.log_metrics(
            flat_metrics(outcome)
            | _data_metrics(outcome.dataset)
            | {f"time_{k}_s": v for k, v in outcome.timings.items()}
        )
        mlflow.log_input(
            from_pandas(
                outcome.transitions.frame[list(classifier.features)],
                name=f"transicoes-{outcome.dataset.digest[:12]}",
            ),
            context="training",
        )
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        mlflow.log_dict(outcome.dataset.validation_report(), "data/validacao.json")
        mlflow.log_dict(
            {
                "features": list(classifier.features),
                "single_feature_roc_auc": outcome.leakage_aucs,
                "coverage_by_label_year": outcome.transitions.coverage(),
            },
            "data/features.json",
        )
        mlflow.log_dict(outcome.reference, REFERENCE_ARTIFACT)
        if outcome.backtest is not None:
            mlflow.log_dict(backtest_document(outcome), BACKTEST_ARTIFACT)
        if outcome.fairness is not None:
            mlflow.log_dict(outcome.fairness.as_dict(), FAIRNESS_ARTIFACT)
        tick("registrando o modelo…")
        info = log_model(classifier, outcome.transitions.X)
        version = registry.register_version(client, name, info.model_uri, info.model_id, run)

        candidate = gate_candidate(outcome, key, rescorer(outcome))
        verdict = registry.evaluate_gate(client, settings, candidate)
        version_tags = {
            "model.kind": outcome.kind,
            "model.threshold": f"{classifier.threshold:.6f}",
            "dataset.sha256": outcome.dataset.digest,
            "eval.key": key,
            "eval.metric": metric,
            "eval.value": f"{headline.model['roc_auc']:.6f}",
            "eval.test_year": str(headline.test_year or ""),
            "train.label_max_year": str(classifier.metadata["label_max_year"]),
            "trained_at": started.isoformat(timespec="seconds"),
            "git_commit": registry.git_commit(),
            "monitoring.reference": REFERENCE_ARTIFACT,
            "labels.origins": _origins_text(outcome),
            **_backtest_tags(outcome),
            **{
                f"metric.{k}": f"{v:.6f}"
                for k, v in flat_metrics(outcome).items()
                if registry.is_summary_metric(k)
            },
            **verdict.tags(),
        }
        for tag, value in version_tags.items():
            client.set_model_version_tag(name, version, tag, value)
        mlflow.set_tag("gate.passed", str(verdict.passed).lower())
        if verdict.passed:
            client.set_registered_model_alias(name, registry.STAGING, version)
        outcome.run_id, outcome.version, outcome.gate = run.info.run_id, version, verdict
        card = write_card(name, outcome, verdict.summary())
        mlflow.log_text(card, "model_card.md")
        client.update_model_version(name, version, description=card[:5000])

    tick(f"run {outcome.run_id}, versão {version} de {name}")
    if settings.tracking_uri.startswith(("http://", "https://")):
        base = settings.tracking_uri.rstrip("/")
        tick(f"no MLflow: {base}/#/experiments/{experiment_id}/runs/{outcome.run_id}")
    tick(f"portão de qualidade: {verdict.summary()}")
    if verdict.passed:
        tick(f"alias @{registry.STAGING} → versão {version}")
    else:
        tick("aliases inalterados (versão registrada, mas reprovada)")


def log_backtest_run(
    settings: Settings, dataset: Dataset, backtest: Backtest, timings: dict[str, float]
) -> str:
    """A standalone backtest as an MLflow run (no model, no registry change)."""
    client = registry.configure(settings)
    experiment_id = registry.ensure_experiment(client, settings)
    started = datetime.now(UTC)
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"backtest-{started:%Y%m%d-%H%M%S}"
    ) as run:
        mlflow.set_tags(
            {
                "kind": "backtest",
                "dataset_sha256": dataset.digest,
                "git_commit": registry.git_commit(),
                "data_files": ", ".join(f.name for f in dataset.report.files),
            }
        )
        mlflow.log_params({"model": backtest.requested_kind, "replicates": backtest.replicates})
        mlflow.log_metrics(backtest.flat_metrics() | {f"time_{k}_s": v for k, v in timings.items()})
        mlflow.log_dict(
            backtest.as_dict() | {"resumo": newest_year_statement(backtest)}, BACKTEST_ARTIFACT
        )
        return str(run.info.run_id)


def publish_locally(settings: Settings, outcome: TrainOutcome, tick: Echo) -> None:
    """MLFLOW_ENABLED=false: the same floor and comparison, against the local model's figures;
    the local model is replaced only when the new one passes."""
    headline = outcome.headline
    key = evaluation_key(outcome.dataset, headline, int(outcome.classifier.metadata["horizon"]))
    verdict = registry.absolute_checks(settings, gate_candidate(outcome, key, None))
    verdict.comparison = "modelo_local"
    metadata_path = settings.local_model_dir / METADATA_FILE
    if metadata_path.exists():
        current = json.loads(metadata_path.read_text())
        if current.get("eval_key") == key:
            verdict.production_version = str(current.get("version"))
            verdict.production_value = float(current["eval_value"])
            if verdict.value < verdict.production_value - settings.GATE_TOLERANCE:
                verdict.passed = False
                verdict.reasons.append(
                    f"pior que o modelo local atual ({verdict.production_value:.3f})"
                )
    outcome.gate = verdict
    write_card(settings.MLFLOW_MODEL_NAME, outcome, verdict.summary())
    tick(f"portão de qualidade: {verdict.summary()}")
    if not verdict.passed:
        tick(f"modelo local em {settings.local_model_dir} mantido")
        return
    save_local(
        outcome.classifier,
        settings.local_model_dir,
        {
            "model_name": settings.MLFLOW_MODEL_NAME,
            "version": "local",
            "kind": outcome.kind,
            "threshold": outcome.classifier.threshold,
            "eval_key": key,
            "eval_value": verdict.value,
            "metrics": {
                k: v for k, v in flat_metrics(outcome).items() if k.startswith(("oot_", "cv_"))
            },
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "dataset_sha256": outcome.dataset.digest,
        },
        outcome.transitions.X,
        extra_files={
            REFERENCE_FILE: json.dumps(outcome.reference | {"versao": "local"}),
            "model_card.md": outcome.model_card,
            **(
                {BACKTEST_FILE: json.dumps(backtest_document(outcome), ensure_ascii=False)}
                if outcome.backtest is not None
                else {}
            ),
            **(
                {FAIRNESS_FILE: json.dumps(outcome.fairness.as_dict(), ensure_ascii=False)}
                if outcome.fairness is not None
                else {}
            ),
        },
    )
    tick(f"modelo salvo em {settings.local_model_dir}")
