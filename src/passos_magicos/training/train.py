"""The training run: read → validate → transitions → leakage guard → evaluate → fit → gate →
register → export. Each stage prints progress and its time."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from passos_magicos.data.dataset import Dataset, load_dataset
from passos_magicos.feature_store.materialize import materialize_online, store_offline
from passos_magicos.features import MODEL_INPUTS, TransitionSet, build_transitions, check_leakage
from passos_magicos.monitoring.reference import build_reference
from passos_magicos.progress import Echo, StageTimer, stderr_echo
from passos_magicos.settings import Settings
from passos_magicos.training.evaluation import (
    BASELINES,
    SELECTION_MARGIN,
    Evaluation,
    choose_kind,
    evaluate_grouped_cv,
    evaluate_out_of_time,
    fit_recipe,
    quick_cv_auc,
)
from passos_magicos.training.models import MODEL_KINDS
from passos_magicos.training.outcome import TrainOutcome
from passos_magicos.training.publish import publish_locally, publish_to_mlflow
from passos_magicos.training.report import verdict_sentence, write_card, write_plots

MIN_TRANSITIONS = 60
MIN_POSITIVES = 10


class TrainingError(RuntimeError):
    """Training cannot go on with these data; the message (pt-BR) says why and what to do."""


def run_training(
    settings: Settings,
    data_uris: Sequence[str],
    kind: str | None = None,
    features: Sequence[str] = MODEL_INPUTS,
    horizon: int = 1,
    echo: Echo = stderr_echo,
) -> TrainOutcome:
    kind = kind or settings.TRAIN_MODEL
    folds, seed = settings.CV_FOLDS, settings.RANDOM_SEED
    timer = StageTimer(total=8 + (kind == "auto"), echo=echo)

    with timer.stage("load", "Lendo e validando os dados") as tick:
        dataset = load_dataset(data_uris)
        for line in dataset.report.describe():
            tick(line)

    with timer.stage("features", "Feature store offline, transições t→t+1, vazamento") as tick:
        table = store_offline(settings, dataset)
        tick(f"feature store offline: {settings.offline_store_dir} ({len(table)} registros)")
        transitions = build_transitions(table, features, horizon)
        _require_enough(transitions, dataset)
        for year, group in transitions.frame.groupby("ano_alvo"):
            tick(
                f"{int(str(year)) - horizon}→{year}: {len(group)} transições, "
                f"{group['pv_proximo'].mean():.1%} com PV"
            )
        leakage_aucs = check_leakage(transitions, settings.LEAKAGE_AUC_LIMIT)
        strongest = max(leakage_aucs.items(), key=lambda kv: kv[1], default=("—", 0.0))
        tick(f"feature isolada mais forte: {strongest[0]} (ROC-AUC {strongest[1]:.3f})")

    selection: dict[str, float] = {}
    if kind == "auto":
        with timer.stage("select", "Escolhendo o modelo (CV agrupada por aluno)") as tick:
            for candidate in MODEL_KINDS:
                selection[candidate] = quick_cv_auc(candidate, transitions, folds, seed)
                tick(f"{candidate}: ROC-AUC {selection[candidate]:.3f}")
            kind = choose_kind(selection)
            tick(f"escolhido: {kind} (o mais simples a até {SELECTION_MARGIN} do melhor)")

    evaluations: dict[str, Evaluation] = {}
    with timer.stage("oot", "Avaliação fora do tempo") as tick:
        if len(transitions.years) >= 2:
            evaluations["out_of_time"] = evaluate_out_of_time(kind, transitions, folds, seed)
            _print_evaluation(evaluations["out_of_time"], tick)
        else:
            tick("só uma transição rotulada: sem avaliação fora do tempo; vale a CV agrupada")

    with timer.stage("cv", "Validação cruzada agrupada por aluno") as tick:
        evaluations["grouped_cv"] = evaluate_grouped_cv(kind, transitions, folds, seed, tick)
        _print_evaluation(evaluations["grouped_cv"], tick)

    with timer.stage("fit", "Ajustando o modelo final em todas as transições") as tick:
        classifier, _ = fit_recipe(
            kind, transitions.X, transitions.y, transitions.groups, folds, seed
        )
        classifier.metadata = {"label_max_year": max(transitions.years), "horizon": horizon}
        tick(f"limiar de decisão: {classifier.threshold:.3f} (máximo F1 fora da amostra)")

    outcome = TrainOutcome(
        kind=kind,
        classifier=classifier,
        dataset=dataset,
        transitions=transitions,
        evaluations=evaluations,
        selection=selection,
        timings=timer.timings,
        model_card="",
        leakage_aucs=leakage_aucs,
        # Out-of-fold scores: what the model gives students it has not seen, as in production.
        reference=build_reference(
            transitions.X,
            evaluations["grouped_cv"].y_score,
            classifier.threshold,
            settings.MLFLOW_MODEL_NAME,
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with timer.stage("report", "Gráficos e cartão do modelo"):
            plots = [p for e in evaluations.values() for p in write_plots(e, folder / "plots")]
            outcome.model_card = write_card(settings.MLFLOW_MODEL_NAME, outcome)
        with timer.stage("mlflow", "Registrando no MLflow e portão de qualidade") as tick:
            if settings.MLFLOW_ENABLED:
                publish_to_mlflow(settings, outcome, plots, tick)
            else:
                publish_locally(settings, outcome, tick)
    with timer.stage("materialize", "Materializando as features no feature store online") as tick:
        meta = materialize_online(settings, table, dataset.digest)
        tick(f"versão {meta.version}: {meta.rows} alunos (ciclo mais recente {meta.latest_cycle})")
    return outcome


def _require_enough(transitions: TransitionSet, dataset: Dataset) -> None:
    if len(transitions) == 0:
        years = ", ".join(str(y) for y in dataset.years)
        labelled = [y for y, pv in dataset.report.pv_by_year.items() if pv["sim"] + pv["nao"]]
        raise TrainingError(
            f"nenhuma transição rotulada nos dados (anos: {years}; anos com PV: "
            f"{', '.join(map(str, labelled)) or 'nenhum'}). O treino precisa do PV do ano "
            "seguinte do mesmo aluno — o arquivo 2022-2024 só tem PV em 2022. Treine com o "
            "arquivo 2020-2022 (ou junte os dois com --data repetido); `predict` pontua este "
            "arquivo mesmo sem rótulos."
        )
    positives = int(transitions.y.sum())
    if len(transitions) < MIN_TRANSITIONS or positives < MIN_POSITIVES:
        raise TrainingError(
            f"poucos exemplos para treinar: {len(transitions)} transições, {positives} com PV "
            f"(mínimo {MIN_TRANSITIONS} e {MIN_POSITIVES})"
        )


def _print_evaluation(evaluation: Evaluation, tick: Echo) -> None:
    m = evaluation.model
    tick(
        f"{evaluation.description}: ROC-AUC {m['roc_auc']:.3f}, PR-AUC {m['pr_auc']:.3f}, "
        f"Brier {m['brier']:.3f}, recall top 15% {m['recall_top15']:.2f}"
    )
    for name, metrics in evaluation.baselines.items():
        tick(
            f"  referência {BASELINES[name]}: ROC-AUC {metrics['roc_auc']:.3f}, "
            f"PR-AUC {metrics['pr_auc']:.3f}"
        )
    tick(verdict_sentence(evaluation))
