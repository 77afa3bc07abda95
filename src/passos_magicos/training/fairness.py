"""Fairness per group and per backtest year: does the model serve every group of students
equally well?

For every test year of the rolling-origin backtest, the students are split by four groupings —
gênero, tipo de escola (pública vs privada/parceira), fase, and anos no programa (primeiro ano
vs segundo ano ou mais) — and, per group: n, positives, real PV rate, predicted PV rate,
recall and false-positive rate of `pv_previsto` (the year's label threshold), recall among the
year's top 15 % / 25 % (ranked over the whole year, as the team ranks the list), ROC-AUC within
the group and calibration (mean probability − real rate), each with a bootstrap 95 % interval;
and each group minus the rest of its grouping.

The bootstrap resamples the year's students (the backtest's own replicates: same seed, same
resamples), so a group's size varies across replicates as it would across cohorts, and the
group and its rest come from the same resample (the difference is paired).

The flag rule (`judge_year`): a difference is *flagged* only when
- the group and the rest of its grouping are known categories (not "não informado" / "outra")
  with at least MIN_N students, MIN_POSITIVES with PV and MIN_NEGATIVES without;
- the difference points to harm for the group by at least MIN_EFFECT: lower recall, top-K
  recall or ROC-AUC; higher false-positive rate; for calibration, a gap (mean probability −
  real rate) that differs from the rest's in either direction and is the larger of the two;
- its Bonferroni-adjusted interval, difference ± z·SE, excludes zero. SE is the larger of the
  bootstrap standard deviation of the paired difference and the SE the difference would have
  if the group were served like the rest (pooled binomial for the recalls and the
  false-positive rate, Hanley-McNeil for ROC-AUC, the binomial spread of the real rate around
  the probabilities for calibration): the bootstrap alone collapses when a small group sits at
  0 or 1 (no PV student of the group selected: every resample says 0). z is the normal
  quantile 1 − ALPHA / (2·m), m = every group × metric comparison made that year.
So the chance of any false flag in a year is at most about ALPHA (5 %), whatever the number of
groups; a 20-student group is shown with its interval and never flagged.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Final

import numpy as np
import pandas as pd

from passos_magicos.features import TransitionSet
from passos_magicos.performance import (
    TOP_SHARES,
    Array,
    Interval,
    bootstrap_masses,
    calibration_metrics,
    interval,
    mass_roc_auc,
    selection_metrics,
)
from passos_magicos.training.backtest import MODEL, Backtest

GROUPINGS: Final = {
    "genero": "Gênero",
    "escola": "Tipo de escola",
    "fase": "Fase",
    "anos_programa": "Anos no programa",
}
NAO_INFORMADO: Final = "não informado"
OUTRA: Final = "outra"
NOT_COMPARED: Final = frozenset({NAO_INFORMADO, OUTRA})
GENEROS: Final = {"Feminino": "feminino", "Masculino": "masculino"}
# `instituicao` as parsed from `Instituição de ensino` / `INSTITUICAO_ENSINO_ALUNO`
# (data/readers.py): "privada" is every "Privada…" answer (Programa de Apadrinhamento,
# Parcerias com Bolsa 100 %, Pagamento por Empresa Parceira) and the partner schools (Rede
# Decisão / União, Escola João Paulo II); universities and "Concluiu o 3º EM" / "Nenhuma das
# opções acima" are "outra".
ESCOLAS: Final = {
    "publica": "pública",
    "privada": "privada/parceira",
    "universidade": OUTRA,
    "outra": OUTRA,
}
PRIMEIRO_ANO: Final = "primeiro ano"
VETERANOS: Final = "segundo ano ou mais"

METRIC_NAMES: Final = {
    "taxa_real": "Taxa real de PV",
    "taxa_prevista": "Taxa de PV prevista",
    "recall_rotulo": "Recall do PV previsto",
    "falsos_positivos_rotulo": "Falsos positivos do PV previsto",
    **{
        f"recall_top{round(s * 100)}": f"Recall nos {round(s * 100)}% mais prováveis"
        for s in TOP_SHARES
    },
    "roc_auc": "ROC-AUC dentro do grupo",
    "prob_media": "Probabilidade média prevista",
    "calibracao": "Calibração (prob. média − taxa real)",
}
LOWER: Final = "menor"
HIGHER: Final = "maior"
EITHER: Final = "qualquer"
# The metrics whose gap can be flagged, and which direction harms the group.
HARMFUL: Final = {
    "recall_rotulo": LOWER,
    "falsos_positivos_rotulo": HIGHER,
    **{f"recall_top{round(s * 100)}": LOWER for s in TOP_SHARES},
    "roc_auc": LOWER,
    "calibracao": EITHER,
}
HARM_PHRASES: Final = {
    "recall_rotulo": "o PV previsto deixa de fora mais alunos com PV deste grupo",
    "falsos_positivos_rotulo": "o PV previsto sinaliza por engano mais alunos deste grupo",
    **{
        f"recall_top{round(s * 100)}": f"a lista dos {round(s * 100)}% mais prováveis encontra "
        "menos alunos com PV deste grupo"
        for s in TOP_SHARES
    },
    "roc_auc": "o modelo ordena pior os alunos deste grupo",
}

ALPHA: Final = 0.05  # family-wise, per backtest year
MIN_N: Final = 30
MIN_POSITIVES: Final = 5
MIN_NEGATIVES: Final = 5
MIN_EFFECT: Final = 0.05
MIN_FINITE_SHARE: Final = 0.95  # replicates where the difference is defined


def _decimal(value: float) -> str:
    return f"{value:.2f}".replace(".", ",")


FLAG_RULE: Final = (
    "uma diferença entre um grupo e o restante do seu agrupamento só é sinalizada quando (1) os "
    f"dois lados são categorias conhecidas com pelo menos {MIN_N} alunos, {MIN_POSITIVES} com PV "
    f"e {MIN_NEGATIVES} sem PV; (2) ela indica que o modelo atende pior o grupo (recall ou "
    "ROC-AUC menores, mais falsos positivos, ou probabilidades mais longe da taxa real do que "
    f"as dos demais) em pelo menos {_decimal(MIN_EFFECT)}; e (3) o intervalo ajustado — "
    "diferença ± z × erro-padrão (o do bootstrap, e nunca menor que o esperado se não houvesse "
    "diferença), com z corrigido por Bonferroni para todas as comparações do ano (α = "
    f"{_decimal(ALPHA)}) — exclui o zero. Assim a chance de um falso alerta num ano fica abaixo "
    "de 5%, e um grupo de 20 alunos aparece com o seu intervalo, mas nunca é sinalizado."
)


# -- groups --------------------------------------------------------------------------------------


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series(pd.NA, index=frame.index, dtype="object")


def _fase_label(value: float) -> str:
    if not math.isfinite(value) or value < 0:
        return NAO_INFORMADO
    return "fase 0 (alfa)" if int(value) == 0 else f"fase {int(value)}"


def _years_label(value: float) -> str:
    if not math.isfinite(value) or value < 0:
        return NAO_INFORMADO
    return PRIMEIRO_ANO if value < 1 else VETERANOS


def group_labels(frame: pd.DataFrame) -> dict[str, np.ndarray[Any, np.dtype[Any]]]:
    """Each student's group in every grouping, from the attributes of cycle t (`genero`,
    `instituicao`, `fase`, `anos_pm`); unknown values are "não informado"."""
    genero = _column(frame, "genero").astype("object").map(GENEROS)
    escola = _column(frame, "instituicao").astype("object").map(ESCOLAS)
    fase = pd.to_numeric(_column(frame, "fase"), errors="coerce").astype("float64")
    anos = pd.to_numeric(_column(frame, "anos_pm"), errors="coerce").astype("float64")
    return {
        "genero": genero.fillna(NAO_INFORMADO).to_numpy(dtype=object),
        "escola": escola.fillna(NAO_INFORMADO).to_numpy(dtype=object),
        "fase": np.array([_fase_label(v) for v in fase.fillna(-1.0)], dtype=object),
        "anos_programa": np.array([_years_label(v) for v in anos.fillna(-1.0)], dtype=object),
    }


_ORDER: Final = {
    label: i
    for i, label in enumerate(
        [*GENEROS.values(), "pública", "privada/parceira", PRIMEIRO_ANO, VETERANOS]
    )
}


def _group_order(label: str) -> tuple[bool, bool, int, str]:
    return (label == NAO_INFORMADO, label == OUTRA, _ORDER.get(label, 0), label)


# -- figures -------------------------------------------------------------------------------------


def _selections(probabilities: Array, threshold: float) -> dict[str, np.ndarray]:
    """`pv_previsto` and the year's top K % (stable descending order, as the list is shown)."""
    n = len(probabilities)
    selections = {"rotulo": probabilities >= threshold}
    order = np.argsort(-probabilities, kind="stable")
    for share in TOP_SHARES:
        chosen = np.zeros(n, dtype=bool)
        chosen[order[: max(math.ceil(share * n - 1e-9), 1)]] = True
        selections[f"top{round(share * 100)}"] = chosen
    return selections


def _subset_figures(
    probabilities: Array,
    positive: Array,
    negative: Array,
    selections: Mapping[str, np.ndarray],
    mask: np.ndarray,
) -> dict[str, Array]:
    """Every metric of the students in `mask`, per row of the masses (row 0: observed)."""
    pos, neg, p = positive[:, mask], negative[:, mask], probabilities[mask]
    label = selection_metrics(selections["rotulo"][mask], pos, neg)
    out: dict[str, Array] = {
        "taxa_prevista": label["selecionados"],
        "recall_rotulo": label["recall"],
        "falsos_positivos_rotulo": label["falsos_positivos"],
    }
    for share in TOP_SHARES:
        key = f"top{round(share * 100)}"
        out[f"recall_{key}"] = selection_metrics(selections[key][mask], pos, neg)["recall"]
    out["roc_auc"] = mass_roc_auc(p, pos, neg)
    out |= calibration_metrics(p, pos, neg)
    return out


@dataclass(frozen=True)
class Gap:
    """Group minus the rest of its grouping on one metric (paired bootstrap)."""

    metric: str
    difference: Interval  # the point difference and its 95 % percentile interval
    rest: float  # the rest's point value
    se: float  # standard error of the difference (bootstrap, floored by the no-gap SE)
    tested: bool  # counted among the year's comparisons (both sides large enough)
    low_adjusted: float = math.nan  # difference ± z·SE (z Bonferroni-corrected for the year)
    high_adjusted: float = math.nan
    flagged: bool = False

    @property
    def harm(self) -> str:
        """Plain words for what a flagged gap means for the group."""
        if self.metric == "calibracao":
            return (
                "o modelo subestima a chance de PV deste grupo"
                if self.difference.value < 0
                else "o modelo superestima a chance de PV deste grupo"
            )
        return HARM_PHRASES[self.metric]

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.difference.as_dict(),
            "demais": _finite_or_none(self.rest),
            "ep": _finite_or_none(self.se),
            "ic_ajustado_inf": _finite_or_none(self.low_adjusted),
            "ic_ajustado_sup": _finite_or_none(self.high_adjusted),
            "testada": self.tested,
            "sinalizada": self.flagged,
        }


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass
class GroupFairness:
    grouping: str
    group: str
    n: int
    positives: int
    compared: bool
    reason: str | None  # why the group is not compared with the rest (None when it is)
    figures: dict[str, Interval]
    gaps: dict[str, Gap] = field(default_factory=dict)

    @property
    def flagged(self) -> list[Gap]:
        return [gap for gap in self.gaps.values() if gap.flagged]

    def as_dict(self) -> dict[str, Any]:
        return {
            "agrupamento": self.grouping,
            "grupo": self.group,
            "n": self.n,
            "positivos": self.positives,
            "comparado": self.compared,
            "motivo": self.reason,
            "metricas": {k: v.as_dict() for k, v in self.figures.items()},
            "diferencas": {k: v.as_dict() for k, v in self.gaps.items()},
        }


@dataclass(frozen=True)
class Flag:
    """A flagged gap, with the sentence that explains it."""

    label: str  # the year's transition, e.g. 2023→2024
    grouping: str
    group: str
    gap: Gap

    @property
    def code(self) -> str:
        """`grouping:group:metric`, e.g. `genero:feminino:roc_auc` (tags, promotion history)."""
        return f"{self.grouping}:{self.group}:{self.gap.metric}"

    @property
    def text(self) -> str:
        gap, name = self.gap, METRIC_NAMES[self.gap.metric]
        diff = gap.difference.value
        return _comma(
            f"{self.label}, {who(self.grouping, self.group)}: {name} "
            f"{diff + gap.rest:.2f} contra {gap.rest:.2f} nos demais (diferença {diff:+.2f}; "
            f"intervalo ajustado {gap.low_adjusted:+.2f} a {gap.high_adjusted:+.2f}) — "
            f"{gap.harm}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "codigo": self.code,
            "transicao": self.label,
            "agrupamento": self.grouping,
            "grupo": self.group,
            "metrica": self.gap.metric,
            "texto": self.text,
        }


def who(grouping: str, group: str) -> str:
    """`gênero “feminino”`, `tipo de escola “pública”`, `fase 3`."""
    return group if grouping == "fase" else f"{GROUPINGS[grouping].lower()} “{group}”"


def _comma(text: str) -> str:
    """Decimal comma in sentences (0,62), as the card and the dashboard write."""
    return re.sub(r"(?<=\d)\.(?=\d)", ",", text)


@dataclass
class YearFairness:
    test_year: int
    label: str
    n: int
    positives: int
    threshold: float
    tests: int  # m: group × metric comparisons made this year
    critical: float  # z of the Bonferroni-adjusted intervals
    groups: list[GroupFairness]

    @property
    def flags(self) -> list[Flag]:
        return [
            Flag(self.label, group.grouping, group.group, gap)
            for group in self.groups
            for gap in group.flagged
        ]

    def grouping(self, key: str) -> list[GroupFairness]:
        return [group for group in self.groups if group.grouping == key]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ano_teste": self.test_year,
            "transicao": self.label,
            "n": self.n,
            "positivos": self.positives,
            "limiar": self.threshold,
            "comparacoes": self.tests,
            "z_critico": _finite_or_none(self.critical),
            "grupos": [group.as_dict() for group in self.groups],
            "sinalizadas": [flag.as_dict() for flag in self.flags],
        }


def _reason(n: int, positives: int) -> str | None:
    if n < MIN_N:
        return f"grupo pequeno ({n} alunos; mínimo {MIN_N})"
    if positives < MIN_POSITIVES:
        return f"poucos alunos com PV ({positives}; mínimo {MIN_POSITIVES})"
    if n - positives < MIN_NEGATIVES:
        return f"poucos alunos sem PV ({n - positives}; mínimo {MIN_NEGATIVES})"
    return None


def year_fairness(
    y: Array,
    probabilities: Array,
    threshold: float,
    groupings: Mapping[str, np.ndarray],
    *,
    test_year: int,
    replicates: int,
    seed: int,
    alpha: float = ALPHA,
) -> YearFairness:
    """The fairness table of one scored year (see the module docstring for the flag rule)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    pos_boot, neg_boot = bootstrap_masses(y, replicates, seed)
    positive = np.vstack([y[None, :], pos_boot])
    negative = np.vstack([1.0 - y[None, :], neg_boot])
    selections = _selections(p, threshold)
    groups: list[GroupFairness] = []
    for grouping, raw in groupings.items():
        labels = np.asarray(raw, dtype=object)
        known = np.array([label not in NOT_COMPARED for label in labels], dtype=bool)
        for group in sorted({str(v) for v in labels}, key=_group_order):
            mask = labels == group
            n, positives = int(mask.sum()), int(y[mask].sum())
            values = _subset_figures(p, positive, negative, selections, mask)
            figures = {m: interval(float(values[m][0]), values[m][1:]) for m in METRIC_NAMES}
            if group in NOT_COMPARED:
                reason: str | None = "categoria não informada ou fora das comparadas"
            else:
                rest_mask = known & ~mask
                reason = _reason(n, positives)
                rest_reason = _reason(int(rest_mask.sum()), int(y[rest_mask].sum()))
                if reason is None and rest_reason is not None:
                    reason = f"o restante do agrupamento não dá para comparar: {rest_reason}"
            entry = GroupFairness(grouping, group, n, positives, reason is None, reason, figures)
            rest_mask = known & ~mask
            if group not in NOT_COMPARED and rest_mask.any():
                rest = _subset_figures(p, positive, negative, selections, rest_mask)
                entry.gaps = {
                    m: _gap(
                        m,
                        values[m],
                        rest[m],
                        tested=entry.compared,
                        null_se=_null_se(m, y, p, selections, mask, rest_mask),
                    )
                    for m in HARMFUL
                }
            groups.append(entry)
    return judge_year(
        YearFairness(
            test_year=test_year,
            label=f"{test_year - 1}→{test_year}",
            n=len(y),
            positives=int(y.sum()),
            threshold=float(threshold),
            tests=0,
            critical=math.nan,
            groups=groups,
        ),
        alpha,
    )


def _gap(metric: str, group: Array, rest: Array, tested: bool, null_se: float) -> Gap:
    """The paired difference; its SE is the larger of the bootstrap's and `null_se`."""
    point = float(group[0] - rest[0])
    replicates = group[1:] - rest[1:]
    finite = replicates[np.isfinite(replicates)]
    se = float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan
    if math.isfinite(se) and math.isfinite(null_se):
        se = max(se, null_se)
    defined = (
        math.isfinite(point)
        and len(finite) >= MIN_FINITE_SHARE * len(replicates)
        and math.isfinite(se)
        and se > 0
    )
    return Gap(
        metric=metric,
        difference=interval(point, replicates),
        rest=float(rest[0]),
        se=se,
        tested=tested and defined,
    )


def _hanley_mcneil(auc: float, y: Array) -> float:
    """Variance of a ROC-AUC `auc` measured on these labels (Hanley & McNeil, 1982)."""
    n1, n0 = float(y.sum()), float(len(y) - y.sum())
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    return (auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2)) / (n1 * n0)


def _null_se(
    metric: str,
    y: Array,
    p: Array,
    selections: Mapping[str, np.ndarray],
    group: np.ndarray,
    rest: np.ndarray,
) -> float:
    """The SE the difference would have if the group were served like the rest: the pooled
    binomial SE of two proportions (recalls, false-positive rate), Hanley-McNeil at the
    pooled ROC-AUC, and the spread of the observed rates around calibrated probabilities.
    It floors the bootstrap SE, which collapses when a small group sits at 0 or 1 (no PV
    student of the group selected: every resample says 0)."""
    both = group | rest
    both_classes = all(0 < y[side].sum() < side.sum() for side in (group, rest))
    if not both_classes:  # the bootstrap alone (such a comparison is never tested anyway)
        return math.nan
    if metric == "roc_auc":
        labels = y[both]
        auc = float(mass_roc_auc(p[both], labels[None, :], 1.0 - labels[None, :])[0])
        return math.sqrt(_hanley_mcneil(auc, y[group]) + _hanley_mcneil(auc, y[rest]))
    if metric == "calibracao":
        spread = p * (1 - p)
        return math.sqrt(
            spread[group].sum() / group.sum() ** 2 + spread[rest].sum() / rest.sum() ** 2
        )
    chosen = selections["rotulo" if metric.endswith("_rotulo") else metric.removeprefix("recall_")]
    target = y == (0 if metric == "falsos_positivos_rotulo" else 1)
    in_group, in_rest = int((target & group).sum()), int((target & rest).sum())
    pooled = float((chosen & target & both).sum()) / (in_group + in_rest)
    return math.sqrt(pooled * (1 - pooled) * (1 / in_group + 1 / in_rest))


def judge_year(year: YearFairness, alpha: float = ALPHA) -> YearFairness:
    """Count the year's comparisons, set the Bonferroni-adjusted intervals and the flags."""
    tests = sum(gap.tested for group in year.groups for gap in group.gaps.values())
    critical = NormalDist().inv_cdf(1 - alpha / (2 * tests)) if tests else math.nan
    for group in year.groups:
        group.gaps = {m: _judge(gap, critical) for m, gap in group.gaps.items()}
    year.tests, year.critical = tests, critical
    return year


def _judge(gap: Gap, critical: float) -> Gap:
    if not gap.tested:
        return dataclasses.replace(
            gap, low_adjusted=math.nan, high_adjusted=math.nan, flagged=False
        )
    value = gap.difference.value
    # Every metric lies in [0, 1]: so does the distance between two of them.
    low = max(value - critical * gap.se, -1.0)
    high = min(value + critical * gap.se, 1.0)
    direction = HARMFUL[gap.metric]
    lower = high < 0 and value <= -MIN_EFFECT
    higher = low > 0 and value >= MIN_EFFECT
    if direction == LOWER:
        flagged = lower
    elif direction == HIGHER:
        flagged = higher
    else:  # calibration: the group is the worse calibrated side, in either direction
        own = value + gap.rest  # the group's own gap (mean probability − real rate)
        flagged = (lower or higher) and abs(own) > abs(gap.rest)
    return dataclasses.replace(gap, low_adjusted=low, high_adjusted=high, flagged=flagged)


# -- the report ----------------------------------------------------------------------------------


@dataclass
class FairnessReport:
    years: list[YearFairness]
    replicates: int
    alpha: float = ALPHA

    @property
    def newest(self) -> YearFairness:
        return self.years[-1]

    @property
    def newest_flags(self) -> list[Flag]:
        return self.newest.flags if self.years else []

    def summary(self) -> str:
        """One plain-Portuguese sentence about the newest year (card, terminal, API)."""
        if not self.years:
            return "Sem backtest: não há relatório de equidade."
        year = self.newest
        flags = year.flags
        if not flags:
            head = (
                f"No ano mais recente ({year.label}), nenhuma diferença entre grupos foi "
                f"sinalizada nas {year.tests} comparações feitas"
            )
        else:
            head = (
                f"No ano mais recente ({year.label}), {len(flags)} "
                f"{'diferença sinalizada' if len(flags) == 1 else 'diferenças sinalizadas'} "
                "entre grupos: " + "; ".join(_short(flag) for flag in flags)
            )
        older = sum(len(y.flags) for y in self.years[:-1])
        tail = (
            f"; nos anos anteriores do backtest, {older} "
            f"{'sinalizada' if older == 1 else 'sinalizadas'}."
            if len(self.years) > 1
            else "."
        )
        return _comma(head + tail)

    def as_dict(self) -> dict[str, Any]:
        return {
            "resumo": self.summary(),
            "regra": FLAG_RULE,
            "alfa": self.alpha,
            "n_minimo": MIN_N,
            "positivos_minimos": MIN_POSITIVES,
            "negativos_minimos": MIN_NEGATIVES,
            "diferenca_minima": MIN_EFFECT,
            "replicas_bootstrap": self.replicates,
            "agrupamentos": dict(GROUPINGS),
            "metricas": dict(METRIC_NAMES),
            "sentido_ruim": dict(HARMFUL),
            "anos": [year.as_dict() for year in self.years],
        }

    def flat_metrics(self) -> dict[str, float]:
        """MLflow metrics: `eq_<year>_sinalizadas`, `eq_<year>_comparacoes` and
        `eq_sinalizadas_ano_recente`."""
        out: dict[str, float] = {}
        for year in self.years:
            out[f"eq_{year.test_year}_sinalizadas"] = float(len(year.flags))
            out[f"eq_{year.test_year}_comparacoes"] = float(year.tests)
        if self.years:
            out["eq_sinalizadas_ano_recente"] = float(len(self.newest.flags))
        return out


def _short(flag: Flag) -> str:
    gap = flag.gap
    return (
        f"{who(flag.grouping, flag.group)}, {METRIC_NAMES[gap.metric]} "
        f"{gap.difference.value:+.2f} (intervalo ajustado {gap.low_adjusted:+.2f} a "
        f"{gap.high_adjusted:+.2f}): {gap.harm}"
    )


def fairness_report(backtest: Backtest, transitions: TransitionSet) -> FairnessReport:
    """Fairness of every backtest year, from its scored students and their groups of cycle t."""
    years = []
    for year in backtest.years:
        frame = transitions.in_year(year.test_year).frame
        if len(frame) != year.n or not np.array_equal(frame["pv_proximo"].to_numpy(), year.y):
            raise ValueError(f"{year.label}: transições e backtest não correspondem")
        years.append(
            year_fairness(
                year.y,
                year.probabilities,
                year.thresholds[MODEL],
                group_labels(frame),
                test_year=year.test_year,
                replicates=year.scored.replicates,
                seed=year.scored.seed,
            )
        )
    return FairnessReport(years=years, replicates=backtest.replicates)


# -- text, card and plot -------------------------------------------------------------------------

TABLE_METRICS: Final = (
    "taxa_real",
    "taxa_prevista",
    "recall_rotulo",
    "falsos_positivos_rotulo",
    "recall_top15",
    "roc_auc",
    "prob_media",
)


def _cell(figure: Interval) -> str:
    return figure.text(2) if math.isfinite(figure.value) else "—"


def _flag_cell(group: GroupFairness) -> str:
    if group.flagged:
        return "**sim**: " + "; ".join(
            f"{METRIC_NAMES[g.metric]} {g.difference.value:+.2f}" for g in group.flagged
        )
    return "não" if group.compared else f"não comparado ({group.reason})"


def card_table(year: YearFairness) -> list[str]:
    header = ["Agrupamento", "Grupo", "n (com PV)", *(METRIC_NAMES[m] for m in TABLE_METRICS)]
    rows = [
        "| " + " | ".join([*header, "Diferença sinalizada"]) + " |",
        "|" + "---|" * (len(header) + 1),
    ]
    for group in year.groups:
        cells = [
            GROUPINGS[group.grouping],
            group.group,
            f"{group.n} ({group.positives})",
            *(_cell(group.figures[m]) for m in TABLE_METRICS),
            _flag_cell(group),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def card_lines(report: FairnessReport) -> list[str]:
    """The model card's "Equidade" section (plain Portuguese)."""
    lines = [
        "## Equidade",
        "O modelo atende igualmente bem cada grupo de alunos? Em cada ano do backtest, os "
        "alunos testados são divididos por gênero, tipo de escola (pública × privada/parceira: "
        "apadrinhamento, bolsa de parceiro, Rede Decisão, Escola João Paulo II), fase e anos no "
        "programa (primeiro ano × segundo ano ou mais). Para cada grupo: a taxa real de PV, a "
        "taxa prevista, o recall e os falsos positivos do PV previsto (o limiar do ano), o "
        "recall nos 15% e 25% mais prováveis do ano, o ROC-AUC dentro do grupo e a "
        "probabilidade média ao lado da taxa real (calibração). Entre colchetes, o intervalo de "
        f"95% por bootstrap ({report.replicates} réplicas).",
        "",
        f"**Regra:** {FLAG_RULE}",
        "",
        "**Grupos pequenos têm intervalos largos**: uma fase com 30 alunos e 5 com PV tem um "
        "recall que pode ir de 0,2 a 0,8 só pelo acaso. Leia os intervalos, não só os pontos; "
        "'não informado' e 'outra' aparecem, mas não são comparados.",
        "",
        report.summary(),
        "",
    ]
    for year in report.years:
        flags = year.flags
        lines += [
            f"### {year.label} — {year.n} alunos ({year.positives} com PV), {year.tests} "
            "comparações",
            "",
            *card_table(year),
            "",
        ]
        if flags:
            lines += ["Diferenças sinalizadas:", *(f"- {flag.text}" for flag in flags), ""]
        else:
            lines += [f"Nenhuma diferença sinalizada em {year.label}.", ""]
    lines += [
        "Uma diferença de recall pode vir de uma taxa de PV diferente no grupo (o mesmo limiar "
        "pega menos alunos de um grupo cujas probabilidades são mais baixas); a calibração diz "
        "se as probabilidades do grupo estão certas. Gênero e escola nunca são entradas do "
        "modelo.",
        "",
    ]
    return lines


def report_text(report: FairnessReport) -> str:
    """The tables for the terminal (`passos-magicos backtest --equidade`)."""
    width = 20
    names = {m: METRIC_NAMES[m][:width] for m in TABLE_METRICS}
    lines = []
    for year in report.years:
        lines += [
            "",
            f"Equidade {year.label}: {year.n} alunos ({year.positives} com PV), {year.tests} "
            f"comparações, z ajustado {year.critical:.2f}",
            f"{'agrupamento':<17} {'grupo':<20} {'n (PV)':>9}  "
            + " ".join(f"{names[m]:<{width}}" for m in TABLE_METRICS),
        ]
        for group in year.groups:
            cells = " ".join(f"{_cell(group.figures[m]):<{width}}" for m in TABLE_METRICS)
            count = f"{group.n} ({group.positives})"
            mark = " ← sinalizado" if group.flagged else ""
            lines.append(
                f"{GROUPINGS[group.grouping]:<17} {group.group:<20} {count:>9}  {cells}{mark}"
            )
        lines += [f"  sinalizada: {flag.text}" for flag in year.flags]
    lines += ["", report.summary()]
    return "\n".join(lines)


def write_fairness_plot(report: FairnessReport, folder: Path) -> Path:
    """ROC-AUC within the group and recall of `pv_previsto` per group and year, with the 95 %
    intervals; flagged groups in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    metrics = ("roc_auc", "recall_rotulo")
    fig, axes = plt.subplots(
        len(metrics), len(GROUPINGS), figsize=(4 * len(GROUPINGS), 3.4 * len(metrics))
    )
    offsets = np.linspace(-0.25, 0.25, max(len(report.years), 1))
    for col, grouping in enumerate(GROUPINGS):
        labels = sorted(
            {g.group for y in report.years for g in y.grouping(grouping)}, key=_group_order
        )
        x = {label: i for i, label in enumerate(labels)}
        for row, metric in enumerate(metrics):
            ax = axes[row][col]
            for offset, year in zip(offsets, report.years, strict=False):
                for group in year.grouping(grouping):
                    figure = group.figures[metric]
                    if not math.isfinite(figure.value):
                        continue
                    flagged = any(g.metric == metric for g in group.flagged)
                    low = figure.value - figure.low if math.isfinite(figure.low) else 0.0
                    high = figure.high - figure.value if math.isfinite(figure.high) else 0.0
                    ax.errorbar(
                        x[group.group] + offset,
                        figure.value,
                        yerr=[[low], [high]],
                        fmt="o",
                        color="red" if flagged else f"C{report.years.index(year)}",
                        capsize=2,
                        label=year.label,
                    )
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
            ax.set_ylim(0, 1)
            ax.set_title(f"{GROUPINGS[grouping]}: {METRIC_NAMES[metric]}", fontsize=8)
            handles, names = ax.get_legend_handles_labels()
            unique = dict(zip(names, handles, strict=True))
            if row == 0 and col == 0 and unique:
                ax.legend(unique.values(), unique.keys(), fontsize=6)
    fig.suptitle("Equidade por grupo e ano do backtest (IC 95%; vermelho = sinalizado)")
    fig.tight_layout()
    path = folder / "equidade.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def gate_flags(report: FairnessReport | None) -> dict[str, str] | None:
    """The newest year's flagged gaps for the quality gate: code → plain text."""
    if report is None or not report.years:
        return None
    return {flag.code: flag.text for flag in report.newest_flags}
