"""The training run: read → validate → transitions → leakage guard → backtest (rolling origin)
→ choose and fit on every transition → report → gate → register → materialise. Each stage
prints progress and its time."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from passos_magicos.data.dataset import Dataset, load_dataset
from passos_magicos.feature_store.materialize import materialize_online, store_offline
from passos_magicos.features import (
    MODEL_INPUTS,
    TransitionSet,
    build_transitions,
    check_leakage,
    cohorts,
)
from passos_magicos.progress import Echo, StageTimer, stderr_echo
from passos_magicos.reference_profile import build_reference
from passos_magicos.settings import Settings
from passos_magicos.training.backtest import Backtest, run_backtest
from passos_magicos.training.evaluation import (
    BASELINES,
    Evaluation,
    cohort_threshold,
    evaluate_grouped_cv,
    fit_recipe,
)
from passos_magicos.training.fairness import (
    FairnessReport,
    fairness_report,
    write_fairness_plot,
)
from passos_magicos.training.models import PontoViradaClassifier
from passos_magicos.training.outcome import TrainOutcome
from passos_magicos.training.publish import log_backtest_run, publish_locally, publish_to_mlflow
from passos_magicos.training.report import (
    newest_year_statement,
    verdict_sentence,
    write_backtest_plots,
    write_card,
    write_plots,
)
from passos_magicos.training.selection import FitCache, Selection, select_kind

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
    on_loaded: Callable[[Dataset, Echo], object] | None = None,
) -> TrainOutcome:
    """`on_loaded`: called with the loaded data before anything is fitted (the CLI passes the
    realised-performance evaluation of the monitoring stage, which training must not import)."""
    kind = kind or settings.TRAIN_MODEL
    folds, seed = settings.CV_FOLDS, settings.RANDOM_SEED
    timer = StageTimer(total=8 + (on_loaded is not None), echo=echo)

    with timer.stage("load", "Lendo e validando os dados") as tick:
        dataset = load_dataset(data_uris, settings.PV_DERIVED_LABELS)
        for line in dataset.report.describe():
            tick(line)

    if on_loaded is not None:
        # The new files may bring the outcomes of rosters scored before: judge those first.
        with timer.stage("realised", "Desempenho realizado das previsões anteriores") as tick:
            on_loaded(dataset, tick)

    with timer.stage("features", "Feature store offline, transições t→t+1, vazamento") as tick:
        table = store_offline(settings, dataset)
        tick(f"feature store offline: {settings.offline_store_dir} ({len(table)} registros)")
        transitions = build_transitions(table, features, horizon)
        _require_enough(transitions, dataset)
        leakage_aucs = _describe_transitions(transitions, settings, horizon, tick)

    # The same (kind, training years, validation year) fit serves the backtest's choices and the
    # final one.
    cache: FitCache = {}
    with timer.stage("backtest", "Backtest por ano (origem móvel: ajusta só no passado)") as tick:
        rosters = cohorts(table)
        backtest = run_backtest(
            transitions, kind, folds, seed, settings.BACKTEST_REPLICATES, cache, tick, rosters
        )
        fairness: FairnessReport | None = None
        if backtest is not None:
            tick(newest_year_statement(backtest))
            tick(verdict_sentence(backtest.newest.as_evaluation()))
            fairness = fairness_report(backtest, transitions)
            tick(f"equidade: {fairness.summary()}")
        else:
            tick("só uma transição rotulada: sem backtest; vale a CV agrupada por aluno")

    selection: Selection | None = None
    with timer.stage("fit", "Ajustando o modelo final em todas as transições") as tick:
        if kind == "auto":
            selection = select_kind(transitions, folds, seed, cache, tick)
            kind = selection.chosen
        classifier, oof = fit_recipe(
            kind, transitions.X, transitions.y, transitions.groups, folds, seed
        )
        roster_rate = _set_label_threshold(classifier, rosters, transitions, horizon, tick)
        evaluations: dict[str, Evaluation] = {}
        if backtest is not None:
            evaluations["out_of_time"] = backtest.newest.as_evaluation()
        else:
            evaluations["grouped_cv"] = evaluate_grouped_cv(kind, transitions, folds, seed, tick)
            _print_evaluation(evaluations["grouped_cv"], tick)

    outcome = TrainOutcome(
        kind=kind,
        classifier=classifier,
        dataset=dataset,
        transitions=transitions,
        evaluations=evaluations,
        selection=selection,
        backtest=backtest,
        fairness=fairness,
        timings=timer.timings,
        model_card="",
        leakage_aucs=leakage_aucs,
        # Out-of-fold scores of the final recipe: what the model gives students it has not
        # seen, as in production.
        reference=build_reference(
            transitions.X,
            oof,
            classifier.threshold,
            settings.MLFLOW_MODEL_NAME,
            positive_rate=roster_rate,
        ),
    )
    _report_and_publish(settings, outcome, timer)
    with timer.stage("materialize", "Materializando as features no feature store online") as tick:
        meta = materialize_online(settings, table, dataset.digest)
        tick(f"versão {meta.version}: {meta.rows} alunos (ciclo mais recente {meta.latest_cycle})")
    return outcome


def _report_and_publish(settings: Settings, outcome: TrainOutcome, timer: StageTimer) -> None:
    """Plots and model card, then MLflow behind the gate (or the local folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "plots"
        with timer.stage("report", "Gráficos e cartão do modelo"):
            plots = [p for e in outcome.evaluations.values() for p in write_plots(e, folder)]
            if outcome.backtest is not None:
                plots += write_backtest_plots(outcome.backtest, folder)
            if outcome.fairness is not None:
                plots.append(write_fairness_plot(outcome.fairness, folder))
            outcome.model_card = write_card(settings.MLFLOW_MODEL_NAME, outcome)
        with timer.stage("mlflow", "Registrando no MLflow e portão de qualidade") as tick:
            if settings.MLFLOW_ENABLED:
                publish_to_mlflow(settings, outcome, plots, tick)
            else:
                publish_locally(settings, outcome, tick)


def _set_label_threshold(
    classifier: PontoViradaClassifier,
    rosters: dict[int, pd.DataFrame],
    transitions: TransitionSet,
    horizon: int,
    tick: Echo,
) -> float:
    """The label cut on the cycle this model will score (the newest); returns the flagged
    share there."""
    scored_cycle = max(rosters)
    roster_scores = classifier.predict_proba(rosters[scored_cycle][list(classifier.features)])
    classifier.threshold = cohort_threshold(roster_scores)
    classifier.metadata = {
        "label_max_year": max(transitions.years),
        "horizon": horizon,
        "threshold_cycle": scored_cycle,
    }
    flagged = int((roster_scores >= classifier.threshold).sum())
    tick(
        f"limiar de decisão: {classifier.threshold:.3f} — sinaliza os {flagged} alunos mais "
        f"prováveis dos {len(roster_scores)} do ciclo {scored_cycle}: o número esperado de PV "
        f"em {scored_cycle + horizon} (soma das probabilidades: {roster_scores.sum():.0f})"
    )
    return flagged / len(roster_scores) if len(roster_scores) else float("nan")


def backtest_only(
    settings: Settings,
    data_uris: Sequence[str],
    kind: str | None = None,
    replicates: int | None = None,
    echo: Echo = stderr_echo,
) -> tuple[Backtest, Dataset]:
    """`passos-magicos backtest`: read → transitions → rolling-origin backtest (nothing is
    registered; with MLflow on, the table is logged as a run of its own)."""
    kind = kind or settings.TRAIN_MODEL
    timer = StageTimer(total=3 + settings.MLFLOW_ENABLED, echo=echo)
    with timer.stage("load", "Lendo e validando os dados") as tick:
        dataset = load_dataset(data_uris, settings.PV_DERIVED_LABELS)
        for line in dataset.report.describe():
            tick(line)
    with timer.stage("features", "Transições t→t+1 e vazamento") as tick:
        transitions = build_transitions(dataset.table)
        _require_enough(transitions, dataset)
        _describe_transitions(transitions, settings, 1, tick)
    with timer.stage("backtest", "Backtest por ano (origem móvel: ajusta só no passado)") as tick:
        backtest = run_backtest(
            transitions,
            kind,
            settings.CV_FOLDS,
            settings.RANDOM_SEED,
            replicates or settings.BACKTEST_REPLICATES,
            progress=tick,
            cohorts=cohorts(dataset.table),
        )
        if backtest is None:
            raise TrainingError(
                "o backtest precisa de pelo menos duas transições rotuladas (três ciclos); "
                f"os dados têm {len(transitions.years)}: dê mais ciclos com --data"
            )
    if settings.MLFLOW_ENABLED:
        with timer.stage("mlflow", "Registrando o backtest no MLflow") as tick:
            run_id = log_backtest_run(settings, dataset, backtest, timer.timings)
            tick(f"run {run_id}")
    return backtest, dataset


def _describe_transitions(
    transitions: TransitionSet, settings: Settings, horizon: int, tick: Echo
) -> dict[str, float]:
    """Print the transitions per year with their label origin; run the leakage guard."""
    for year in transitions.years:
        part = transitions.in_year(year)
        origins = ", ".join(f"{n} {o}" for o, n in sorted(part.label_origins().items()))
        tick(
            f"{year - horizon}→{year}: {len(part)} transições, {part.y.mean():.1%} com PV "
            f"(rótulos: {origins})"
        )
    for year, names in transitions.absent_inputs().items():
        tick(
            f"atenção: no ciclo {year - horizon} não há nenhum valor de {', '.join(names)}; o "
            "modelo imputa a mediana e um indicador de ausência, e o backtest mostra o efeito"
        )
    leakage_aucs = check_leakage(transitions, settings.LEAKAGE_AUC_LIMIT)
    strongest = max(leakage_aucs.items(), key=lambda kv: kv[1], default=("—", 0.0))
    tick(f"feature isolada mais forte: {strongest[0]} (ROC-AUC {strongest[1]:.3f})")
    return leakage_aucs


def _require_enough(transitions: TransitionSet, dataset: Dataset) -> None:
    if len(transitions) == 0:
        years = ", ".join(str(y) for y in dataset.years)
        labelled = [y for y, pv in dataset.report.pv_by_year.items() if pv["sim"] + pv["nao"]]
        raise TrainingError(
            f"nenhuma transição rotulada nos dados (anos: {years}; anos com PV: "
            f"{', '.join(map(str, labelled)) or 'nenhum'}). O treino precisa do PV do ano "
            "seguinte do mesmo aluno: dê dois ciclos ou mais (junte os arquivos com --data "
            "repetido; sem PV oficial, o PV é derivado pela regra do IPV, a menos que "
            "PV_DERIVED_LABELS=false); `predict` pontua um arquivo mesmo sem rótulos."
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
