"""Realised performance: once the files hold cycle t+1, how did the predictions made for the
students of cycle t turn out?

predictions (scored rosters + prediction-log lines with their cycle) → the latest per (model,
version, cycle, student) → joined with the student's PV in t+1 → per (model, version, cycle):
realised figures with bootstrap intervals, beside the estimate that was available before the
outcomes (the same probabilities taken as expected labels) → stored (upsert) → one finding per
(version, cycle) through the alert policy.

Only predictions whose inputs were the student's own PEDE record count: the rosters of
`passos-magicos predict` and the API's feature-store endpoints. POST /predict and
/predict/batch also log the cycle the caller gave (`ano`), but their values come from the caller
(possibly a "what if"), so they are left out.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from sqlalchemy.exc import SQLAlchemyError

from passos_magicos.alerts.findings import FindingState, Severity
from passos_magicos.alerts.history import AlertHistory
from passos_magicos.alerts.policy import AlertPolicy
from passos_magicos.data.dataset import Dataset
from passos_magicos.followups.outcomes import outcome_report, report_lines, unavailable_report
from passos_magicos.followups.store import cycle_followups
from passos_magicos.monitoring.job import Check, br
from passos_magicos.performance import (
    METRICS,
    Interval,
    ScoredSet,
    estimated_metrics,
    intervals_as_dict,
)
from passos_magicos.performance_history import (
    PerformanceHistory,
    RealisedStudent,
    utc_now_iso,
)
from passos_magicos.prediction_records import ReadStats, iter_records
from passos_magicos.progress import Echo, stderr_echo
from passos_magicos.settings import Settings

CHECK_NAME: Final = "desempenho_realizado"
ROSTER: Final = "lista_pontuada"
PREDICTION_LOG: Final = "log_de_previsoes"
# API endpoints whose inputs come from the online feature store (the student's own record).
STORE_ENDPOINTS: Final = frozenset({"/predict/aluno", "/predict/alunos"})
MIN_LABELLED: Final = 30  # fewer labelled students: no conclusion ("indeterminado")
METRIC_LABELS: Final = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "recall_top15": "recall top 15%",
    "recall_top25": "recall top 25%",
    "brier": "Brier",
}


class EvaluationError(RuntimeError):
    """The evaluation itself cannot run (unusable store or log); message in pt-BR."""


@dataclass(frozen=True)
class Prediction:
    """One prediction for one student of one cycle, whatever recorded it."""

    modelo: str
    versao: str
    ciclo: int
    aluno_id: str
    probabilidade: float
    pv_previsto: bool
    limiar: float
    quando: datetime
    fonte: str  # ROSTER | PREDICTION_LOG

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.modelo, self.versao, self.ciclo, self.aluno_id)


def _moment(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _threshold(value: Any) -> float:
    return float(value) if type(value) in (int, float) else math.nan


def log_predictions(path: Path, stats: ReadStats | None = None) -> Iterable[Prediction]:
    """Prediction-log lines that say which cycle and student they scored, from the store."""
    for record in iter_records(path, stats):
        cycle, student = record.get("ciclo"), record.get("aluno_id")
        if (
            type(cycle) is not int
            or not isinstance(student, str)
            or record.get("endpoint") not in STORE_ENDPOINTS
        ):
            continue  # lines written before `ciclo` existed, or not from the feature store
        try:
            when = _moment(str(record["ts"]))
        except (KeyError, ValueError):
            continue
        yield Prediction(
            modelo=str(record.get("modelo")),
            versao=str(record.get("versao")),
            ciclo=cycle,
            aluno_id=student,
            probabilidade=float(record["probabilidade"]),
            pv_previsto=bool(record["pv_previsto"]),
            limiar=_threshold(record.get("limiar")),
            quando=when,
            fonte=PREDICTION_LOG,
        )


def roster_predictions(history: PerformanceHistory) -> Iterable[Prediction]:
    for row in history.roster_predictions():
        yield Prediction(
            modelo=row.modelo,
            versao=row.versao,
            ciclo=row.ciclo,
            aluno_id=row.aluno_id,
            probabilidade=row.probabilidade,
            pv_previsto=row.pv_previsto,
            limiar=row.limiar,
            quando=_moment(row.pontuado_em),
            fonte=ROSTER,
        )


def latest_per_student(predictions: Iterable[Prediction]) -> list[Prediction]:
    """One prediction per (model, version, cycle, student): the most recent one."""
    latest: dict[tuple[str, str, int, str], Prediction] = {}
    for prediction in predictions:
        current = latest.get(prediction.key)
        if current is None or prediction.quando >= current.quando:
            latest[prediction.key] = prediction
    return list(latest.values())


@dataclass
class CycleJoin:
    """The predictions of one (model, version) for the students of one cycle, next to what
    happened to each of them in the next cycle."""

    modelo: str
    versao: str
    ciclo: int
    students: list[RealisedStudent]  # ranked, most likely first
    limiar: float
    sources: Counter[str] = field(default_factory=Counter)
    origins: Counter[str] = field(default_factory=Counter)
    without_record: int = 0  # no row in ciclo + 1 (left the programme, or not in the files)
    without_label: int = 0  # a row in ciclo + 1 but no PV

    @property
    def labelled(self) -> list[RealisedStudent]:
        return [s for s in self.students if s.pv_real is not None]

    def arrays(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """(y, probabilities, pv_previsto) of the labelled students, in rank order."""
        labelled = self.labelled
        return (
            np.asarray([float(bool(s.pv_real)) for s in labelled], dtype=np.float64),
            np.asarray([s.probabilidade for s in labelled], dtype=np.float64),
            np.asarray([s.pv_previsto for s in labelled], dtype=bool),
        )


def join_outcomes(predictions: Sequence[Prediction], dataset: Dataset) -> list[CycleJoin]:
    """Group the predictions by (model, version, cycle) and join each group with the PV of
    its students in ciclo + 1; groups whose ciclo + 1 is not in the dataset are left out."""
    years = set(dataset.years)
    table = dataset.table
    outcomes: dict[int, dict[str, tuple[bool | None, str | None]]] = {}
    links = dataset.report.linked_ids
    groups: dict[tuple[str, str, int], list[Prediction]] = {}
    for prediction in predictions:
        if prediction.ciclo + 1 in years:
            groups.setdefault((prediction.modelo, prediction.versao, prediction.ciclo), []).append(
                prediction
            )
    joins = []
    for (model, version, cycle), members in sorted(groups.items(), key=lambda kv: kv[0]):
        if cycle + 1 not in outcomes:
            rows = table[table["ano"] == cycle + 1]
            outcomes[cycle + 1] = {
                str(student): (None if _missing(pv) else bool(pv), _text(origin))
                for student, pv, origin in zip(
                    rows["aluno_id"], rows["pv"], rows["pv_origem"], strict=True
                )
            }
        next_cycle = outcomes[cycle + 1]
        members.sort(key=lambda p: (-p.probabilidade, p.aluno_id))
        join = CycleJoin(model, version, cycle, [], _common_threshold(members))
        for rank, prediction in enumerate(members, start=1):
            found = next_cycle.get(links.get(prediction.aluno_id, prediction.aluno_id))
            if found is None:
                join.without_record += 1
                pv, origin = None, None
            else:
                pv, origin = found
                if pv is None:
                    join.without_label += 1
                    origin = None
                else:
                    join.origins[origin or "desconhecida"] += 1
            join.sources[prediction.fonte] += 1
            join.students.append(
                RealisedStudent(
                    aluno_id=prediction.aluno_id,
                    posicao=rank,
                    probabilidade=prediction.probabilidade,
                    pv_previsto=prediction.pv_previsto,
                    pv_real=pv,
                    pv_origem=origin,
                    fonte=prediction.fonte,
                )
            )
        joins.append(join)
    return joins


def _missing(value: Any) -> bool:
    return value is None or bool(pd.isna(value))


def _text(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def _common_threshold(members: Sequence[Prediction]) -> float:
    values = Counter(p.limiar for p in members if math.isfinite(p.limiar))
    return values.most_common(1)[0][0] if values else math.nan


# -- figures, verdict, record -----------------------------------------------------------------


@dataclass
class RealisedResult:
    """The evaluation of one (model, version, cycle): the stored record and its check."""

    join: CycleJoin
    record: dict[str, Any]
    check: Check

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.join.modelo, self.join.versao, self.join.ciclo)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _blank_figures() -> dict[str, Interval]:
    return {m: Interval(math.nan, math.nan, math.nan) for m in METRICS}


def evaluate_join(
    join: CycleJoin, floor: float, replicates: int, seed: int, when: str | None = None
) -> RealisedResult:
    y, p, predicted = join.arrays()
    n, positives = len(y), int(y.sum())
    if n:
        realised = ScoredSet(y, {"modelo": p}, replicates, seed).figures("modelo")
        estimated = estimated_metrics(p, replicates, seed)
    else:
        realised, estimated = _blank_figures(), _blank_figures()
    reason: str | None = None
    if n < MIN_LABELLED:
        reason = (
            f"{n} alunos com PV conhecido em {join.ciclo + 1}; são necessários ao menos "
            f"{MIN_LABELLED} para concluir algo"
        )
    elif positives in (0, n):
        reason = f"todos os {n} alunos com o mesmo desfecho em {join.ciclo + 1}: sem ROC-AUC"
    roc = realised["roc_auc"]
    state: FindingState
    if reason is not None or not math.isfinite(roc.value):
        state = "indeterminado"
        reason = reason or "ROC-AUC indefinido"
    else:
        state = "alerta" if roc.value < floor else "ok"
    record: dict[str, Any] = {
        "modelo": join.modelo,
        "versao": join.versao,
        "ciclo": join.ciclo,
        "ciclo_desfecho": join.ciclo + 1,
        "avaliado_em": when or utc_now_iso(),
        "estado": state,
        "motivo": reason,
        "piso_roc_auc": floor,
        "previsoes": len(join.students),
        "n": n,
        "positivos": positives,
        "sem_registro": join.without_record,
        "sem_rotulo": join.without_label,
        "origem_rotulos": dict(sorted(join.origins.items())),
        "fontes": dict(sorted(join.sources.items())),
        "limiar": _finite(join.limiar),
        "realizado": intervals_as_dict(realised),
        "estimado": intervals_as_dict(estimated),
        "erro_estimativa": {m: _finite(estimated[m].value - realised[m].value) for m in METRICS},
        "taxas": {
            "prevista": _finite(float(predicted.mean())) if n else None,
            "esperada": _finite(float(p.mean())) if n else None,
            "real": _finite(float(y.mean())) if n else None,
        },
        "matriz_confusao": {
            "previstos_e_atingiram": int((predicted & (y == 1)).sum()),
            "previstos_e_nao_atingiram": int((predicted & (y == 0)).sum()),
            "nao_previstos_e_atingiram": int((~predicted & (y == 1)).sum()),
            "nao_previstos_e_nao_atingiram": int((~predicted & (y == 0)).sum()),
        },
        "replicas": replicates,
        "alerta": None,
    }
    check = realised_check(record, realised, estimated)
    record["verificacao"] = check.to_dict()
    return RealisedResult(join, record, check)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}".replace(".", ",")


def _interval_br(interval: Interval) -> str:
    if not math.isfinite(interval.value):
        return "—"
    if not (math.isfinite(interval.low) and math.isfinite(interval.high)):
        return br(interval.value, 3)
    return f"{br(interval.value, 3)} [{br(interval.low, 3)}; {br(interval.high, 3)}]"


def realised_check(
    record: dict[str, Any], realised: dict[str, Interval], estimated: dict[str, Interval]
) -> Check:
    """The record as a monitoring check (pt-BR, for /alerts/status and Slack)."""
    label = f"{record['modelo']} v{record['versao']}"
    cycle, outcome = record["ciclo"], record["ciclo_desfecho"]
    state: FindingState = record["estado"]
    floor: float = record["piso_roc_auc"]
    severity: Severity
    roc = realised["roc_auc"]
    rates = record["taxas"]
    facts = [
        ("Modelo", label),
        ("Ciclo", f"alunos de {cycle} → PV em {outcome}"),
        ("Alunos avaliados", f"{record['n']} ({record['positivos']} atingiram o PV)"),
        ("ROC-AUC realizado", _interval_br(roc)),
        ("ROC-AUC estimado antes", _interval_br(estimated["roc_auc"])),
    ]
    details = [
        f"{METRIC_LABELS[m]}: realizado {_interval_br(realised[m])} · estimado antes "
        f"{_interval_br(estimated[m])}"
        for m in METRICS
        if m != "roc_auc"
    ]
    details.append(
        f"taxa de PV: prevista {_pct(rates['prevista'])} · esperada {_pct(rates['esperada'])} · "
        f"real {_pct(rates['real'])}"
    )
    if state == "indeterminado":
        title = f"Desempenho realizado indeterminado — {label}, ciclo {cycle}"
        summary = f"Sem conclusão sobre os alunos de {cycle}: {record['motivo']}."
        severity = "info"
    elif state == "alerta":
        title = f"Desempenho realizado abaixo do piso — {label}, ciclo {cycle}"
        summary = (
            f"Nos alunos de {cycle}, o ROC-AUC realizado em {outcome} foi {_interval_br(roc)}, "
            f"abaixo do piso de {br(floor)} (REALISED_MIN_ROC_AUC); antes dos resultados, o "
            f"esperado era {_interval_br(estimated['roc_auc'])}."
        )
        # Critical only when the whole interval is below the floor: not just sampling noise.
        severity = "critico" if math.isfinite(roc.high) and roc.high < floor else "aviso"
    else:
        title = f"Desempenho realizado — {label}, ciclo {cycle}"
        summary = (
            f"Nos alunos de {cycle}, o ROC-AUC realizado em {outcome} foi {_interval_br(roc)} "
            f"(piso {br(floor)}); o esperado antes dos resultados era "
            f"{_interval_br(estimated['roc_auc'])}."
        )
        severity = "aviso"
    return Check(
        nome=CHECK_NAME,
        chave=f"{CHECK_NAME}:{record['modelo']}:{record['versao']}:{cycle}",
        estado=state,
        severidade=severity,
        titulo=title,
        resumo=summary,
        fatos=facts,
        detalhes=details,
        dados={
            "modelo": record["modelo"],
            "versao": record["versao"],
            "ciclo": cycle,
            "n": record["n"],
            "positivos": record["positivos"],
            "roc_auc": roc.as_dict(),
            "roc_auc_estimado": estimated["roc_auc"].as_dict(),
            "piso_roc_auc": floor,
        },
    )


# -- the whole evaluation -----------------------------------------------------------------------


@dataclass
class Evaluation:
    results: list[RealisedResult]
    pending: dict[tuple[str, str, int], int]  # (model, version, cycle) → predictions waiting
    dataset_years: list[int]
    # Groups whose next cycle is in the files but none of whose students is: ids that do not
    # match (e.g. CSV ids without the CSV given to link them), not a real outcome. Not stored.
    unmatched: dict[tuple[str, str, int], int] = field(default_factory=dict)
    log_invalid_lines: int = 0

    @property
    def message(self) -> str | None:
        """Why there is nothing to evaluate (pt-BR); None when something was evaluated."""
        if self.results:
            return None
        years = f"{self.dataset_years[0]}–{self.dataset_years[-1]}" if self.dataset_years else "—"
        if self.unmatched:
            return "nada a avaliar: " + self.unmatched_text
        if not self.pending:
            return (
                "nada a avaliar: nenhuma previsão com ciclo registrado (listas do `passos-magicos "
                "predict` ou consultas da API ao feature store)"
            )
        waiting = sorted({cycle for _, _, cycle in self.pending})
        return (
            "nada a avaliar: há previsões para os alunos de "
            f"{', '.join(map(str, waiting))}, mas os arquivos têm os ciclos {years} e nenhum é "
            "o ciclo seguinte de uma delas (os desfechos ainda não chegaram)"
        )

    @property
    def unmatched_text(self) -> str:
        parts = [
            f"nenhum dos {n} alunos com previsão de {model} v{version} para {cycle} aparece em "
            f"{cycle + 1} nos arquivos"
            for (model, version, cycle), n in sorted(self.unmatched.items())
        ]
        return (
            "; ".join(parts) + " (previsões com ids do CSV, ALUNO-n, só se ligam aos do XLSX, "
            "RA-n, quando o CSV de 2020–2022 é dado junto: repita --data)"
        )

    def as_dict(self) -> dict[str, Any]:
        def groups(counts: dict[tuple[str, str, int], int]) -> list[dict[str, Any]]:
            return [
                {"modelo": m, "versao": v, "ciclo": c, "previsoes": n}
                for (m, v, c), n in sorted(counts.items())
            ]

        return {
            "avaliacoes": [r.record for r in self.results],
            "pendentes": groups(self.pending),
            "sem_correspondencia": groups(self.unmatched),
            "ciclos_nos_arquivos": self.dataset_years,
            "mensagem": self.message,
        }


def collect_predictions(
    settings: Settings, history: PerformanceHistory
) -> tuple[list[Prediction], ReadStats]:
    stats = ReadStats()
    path = settings.PREDICTION_LOG_PATH
    if path.is_dir():
        raise EvaluationError(f"PREDICTION_LOG_PATH aponta para uma pasta: {path}")
    try:
        found = [*roster_predictions(history), *log_predictions(path, stats)]
    except OSError as exc:
        raise EvaluationError(f"não foi possível ler o log de previsões {path}: {exc}") from exc
    return latest_per_student(found), stats


def _deliver(settings: Settings, results: Sequence[RealisedResult], echo: Echo) -> None:
    history = AlertHistory(settings.monitoring_store_url)
    try:
        policy = AlertPolicy.from_settings(settings, history=history)
        decisions = policy.apply([r.check.finding() for r in results])
    finally:
        history.dispose()
    for result, decision in zip(results, decisions, strict=True):
        result.record["alerta"] = {
            "acao": decision.action,
            "entregue": decision.delivered,
            "motivo": decision.reason,
        }
        reason = f" ({decision.reason})" if decision.reason else ""
        echo(f"{decision.key}: {decision.action}{reason}")


def run_evaluation(
    settings: Settings,
    dataset: Dataset,
    *,
    send_alerts: bool = True,
    echo: Echo = stderr_echo,
    replicates: int | None = None,
) -> Evaluation:
    """Evaluate every (model, version, cycle) whose next cycle is in `dataset`; store the
    records (upsert) and send the findings through the alert policy."""
    try:
        return _evaluate(settings, dataset, send_alerts, echo, replicates)
    except SQLAlchemyError as exc:  # all mean "the store cannot be used"
        raise EvaluationError(
            f"histórico de monitoramento inutilizável ({type(exc).__name__}): {exc}"
        ) from exc


def _evaluate(
    settings: Settings,
    dataset: Dataset,
    send_alerts: bool,
    echo: Echo,
    replicates: int | None,
) -> Evaluation:
    history = PerformanceHistory(settings.monitoring_store_url)
    try:
        predictions, stats = collect_predictions(settings, history)
        groups = Counter((p.modelo, p.versao, p.ciclo) for p in predictions)
        joins = join_outcomes(predictions, dataset)
        matched = [j for j in joins if j.without_record < len(j.students)]
        unmatched = {
            (j.modelo, j.versao, j.ciclo): len(j.students)
            for j in joins
            if j.without_record == len(j.students)
        }
        joined = {(j.modelo, j.versao, j.ciclo) for j in joins}
        pending = {key: n for key, n in groups.items() if key not in joined}
        count = replicates or settings.BACKTEST_REPLICATES
        when = utc_now_iso()
        results = [
            evaluate_join(j, settings.REALISED_MIN_ROC_AUC, count, settings.RANDOM_SEED, when)
            for j in matched
        ]
        for result in results:
            record = result.record
            echo(
                f"{record['modelo']} v{record['versao']}, alunos de {record['ciclo']}: "
                f"{record['n']} com desfecho em {record['ciclo_desfecho']} → {record['estado']}"
            )
        attach_followup_reports(settings, results, echo)
        if send_alerts and results:
            _deliver(settings, results, echo)
        for result in results:
            history.save_realised(result.record, result.join.students)
    finally:
        history.dispose()
    return Evaluation(results, pending, dataset.years, unmatched, stats.invalid)


def attach_followup_reports(
    settings: Settings, results: Sequence[RealisedResult], echo: Echo
) -> None:
    """From action to outcome: each record gets the PV rate in t+1 of its flagged students
    with and without a follow-up of cycle t (FOLLOWUPS_STORE_URL), descriptive and never
    causal. A follow-up store that cannot be read is said in the record, never fatal."""
    found: dict[int, dict[str, list[tuple[str, str]]] | str | None] = {}
    for result in results:
        cycle = result.join.ciclo
        if cycle not in found:
            try:
                found[cycle] = cycle_followups(settings.followups_store_url, cycle)
            except (SQLAlchemyError, OSError) as exc:
                found[cycle] = f"acompanhamentos ilegíveis ({type(exc).__name__})"
        records = found[cycle]
        if isinstance(records, str):
            echo(f"da ação ao desfecho, alunos de {cycle}: {records}")
            result.record["acompanhamentos"] = unavailable_report(cycle, records)
        else:
            result.record["acompanhamentos"] = outcome_report(result.join.students, records, cycle)


def realised_stage(
    settings: Settings, dataset: Dataset, echo: Echo = stderr_echo
) -> list[RealisedResult]:
    """For the training run, right after loading the data: evaluate the predictions whose
    outcomes the new files bring. Never stops training: a store that cannot be used is
    reported and skipped."""
    try:
        evaluation = run_evaluation(settings, dataset, echo=echo)
    except EvaluationError as exc:
        echo(f"desempenho realizado não avaliado: {exc}")
        return []
    if evaluation.message:
        echo(f"desempenho realizado: {evaluation.message}")
    for result in evaluation.results:
        echo(result.check.resumo)
    return evaluation.results


# -- terminal ---------------------------------------------------------------------------------


def _interval_text(interval: dict[str, float | None]) -> str:
    value, low, high = interval.get("valor"), interval.get("ic_inf"), interval.get("ic_sup")
    if value is None:
        return "—"
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}; {high:.3f}]"


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _counts(counts: dict[str, int], names: dict[str, str]) -> str:
    return ", ".join(f"{names.get(k, k)} {v}" for k, v in counts.items()) or "—"


SOURCE_LABELS: Final = {ROSTER: "lista pontuada", PREDICTION_LOG: "log de previsões"}


def record_text(record: dict[str, Any]) -> str:
    """One evaluated (model, version, cycle) as a block of lines for the terminal (pt-BR)."""
    cycle, outcome = record["ciclo"], record["ciclo_desfecho"]
    rates = record["taxas"]
    lines = [
        f"Desempenho realizado — {record['modelo']} v{record['versao']}: alunos de {cycle} → "
        f"PV em {outcome}",
        f"  {record['previsoes']} alunos pontuados ({_counts(record['fontes'], SOURCE_LABELS)}); "
        f"{record['n']} com PV conhecido em {outcome} (rótulos: "
        f"{_counts(record['origem_rotulos'], {})}), {record['positivos']} atingiram o PV; "
        f"{record['sem_registro']} sem registro em {outcome}, {record['sem_rotulo']} sem rótulo",
        f"  {'métrica':<16} {'realizado [IC 95%]':<24} {'estimado antes [IC 95%]':<24} "
        "estimado − realizado",
    ]
    for metric in METRICS:
        error = record["erro_estimativa"].get(metric)
        lines.append(
            f"  {METRIC_LABELS[metric]:<16} {_interval_text(record['realizado'][metric]):<24} "
            f"{_interval_text(record['estimado'][metric]):<24} "
            f"{'—' if error is None else f'{error:+.3f}'}"
        )
    lines.append(
        f"  taxa de PV: prevista {_share(rates['prevista'])} (pv_previsto) · esperada "
        f"{_share(rates['esperada'])} (média das probabilidades) · real {_share(rates['real'])}"
    )
    state = record["estado"]
    verdict = {
        "ok": f"ok (ROC-AUC realizado ≥ piso {record['piso_roc_auc']:.2f})",
        "alerta": f"ALERTA: ROC-AUC realizado abaixo do piso {record['piso_roc_auc']:.2f}",
        "indeterminado": f"indeterminado: {record['motivo']}",
    }[state]
    lines.append(f"  estado: {verdict}")
    alert = record.get("alerta")
    if isinstance(alert, dict):
        reason = f" ({alert['motivo']})" if alert.get("motivo") else ""
        if alert["entregue"]:
            lines.append(f"  Slack: {alert['acao']} entregue")
        elif alert["acao"] in ("nenhuma", "suprimido", "encerrado", "em_andamento"):
            lines.append(f"  Slack: nada enviado{reason}")
        else:
            lines.append(f"  Slack: {alert['acao']} NÃO entregue{reason}")
    followups = record.get("acompanhamentos")
    if isinstance(followups, dict):
        lines.extend(report_lines(followups))
    return "\n".join(lines)


def evaluation_text(evaluation: Evaluation) -> str:
    if evaluation.message:
        return evaluation.message
    blocks = [record_text(result.record) for result in evaluation.results]
    if evaluation.unmatched:
        blocks.append("sem correspondência: " + evaluation.unmatched_text)
    waiting = sorted({cycle for _, _, cycle in evaluation.pending})
    if waiting:
        blocks.append(
            "aguardando os desfechos (ciclo seguinte ausente dos arquivos): previsões para os "
            f"alunos de {', '.join(map(str, waiting))}"
        )
    return "\n\n".join(blocks)
