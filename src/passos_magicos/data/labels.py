"""The PV rule: Ponto de Virada of cycle t is IPV_t ≥ mean + 1 SD (ddof=1) of IPV over the
students assessed in t (phases 0-7 with an IPV).

Measured against the official labels it reproduces PV exactly in 2020 and 2022, and in 2021
all but the students whose IPV was published rounded to 9.0. The 2023 and 2024 sheets have
no official PV, so their labels are derived by the rule; every label carries its origin
(`oficial` / `derivado`) and the official one always wins.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from passos_magicos.data.schema import MAX_FASE_PV, MIN_FASE, PV_DERIVADO, PV_OFICIAL

if TYPE_CHECKING:
    import pandas as pd

MIN_ASSESSED = 30  # below this a cycle's mean and SD say too little to set a threshold


@dataclass(frozen=True)
class RuleYear:
    """The rule applied to one cycle, and how it compares with the official labels."""

    ano: int
    avaliados: int
    limiar: float | None
    taxa_regra: float | None  # share of assessed students at or above the threshold
    oficiais: int  # official labels in the cycle
    derivados: int  # labels this rule filled in
    concordam: int  # official labels the rule reproduces
    discordam: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def assessed_mask(table: pd.DataFrame) -> pd.Series:
    """Students with an IPV assessment: phases 0-7 and an IPV above 0 (an IPV of 0 marks a
    student the survey did not assess: none of them has an official PV)."""
    ipv = table["ipv"].astype("Float64")
    fase = table["fase"].astype("Float64")
    mask = fase.between(MIN_FASE, MAX_FASE_PV) & (ipv > 0)
    return mask.fillna(False).astype(bool)


def rule_threshold(ipv: pd.Series) -> float | None:
    """mean + 1 SD (ddof=1) of the assessed students' IPV; None with too few of them."""
    values = ipv.dropna().astype(float)
    if len(values) < MIN_ASSESSED:
        return None
    return float(values.mean() + values.std(ddof=1))


def apply_pv_rule(table: pd.DataFrame, derive: bool = True) -> tuple[pd.DataFrame, list[RuleYear]]:
    """Mark official labels, and (when `derive`) fill missing ones of assessed students by the
    rule. Returns the table with `pv` and `pv_origem` set, and the rule per cycle."""
    out = table.copy()
    official = out["pv"].notna()
    out["pv_origem"] = out["pv_origem"].astype("string")
    out.loc[official, "pv_origem"] = PV_OFICIAL
    out.loc[~official, "pv_origem"] = None
    assessed = assessed_mask(out)
    years: list[RuleYear] = []
    for year in sorted(int(y) for y in out["ano"].unique()):
        in_year = (out["ano"] == year).to_numpy()
        pool = in_year & assessed.to_numpy()
        threshold = rule_threshold(out.loc[pool, "ipv"])
        ipv = out.loc[pool, "ipv"].astype(float)
        by_rule = ipv >= threshold if threshold is not None else None
        labelled = official.to_numpy() & pool
        agree = disagree = derived = 0
        if by_rule is not None:
            compared = out.loc[labelled, "pv"].astype(bool)
            matches = by_rule.loc[compared.index] == compared
            agree, disagree = int(matches.sum()), int((~matches).sum())
            if derive:
                fill = pool & ~official.to_numpy()
                out.loc[fill, "pv"] = by_rule.loc[out.index[fill]].to_numpy()
                out.loc[fill, "pv_origem"] = PV_DERIVADO
                derived = int(fill.sum())
        years.append(
            RuleYear(
                ano=year,
                avaliados=int(pool.sum()),
                limiar=None if threshold is None else round(threshold, 4),
                taxa_regra=None if by_rule is None else round(float(by_rule.mean()), 4),
                oficiais=int((official.to_numpy() & in_year).sum()),
                derivados=derived,
                concordam=agree,
                discordam=disagree,
            )
        )
    out["pv"] = out["pv"].astype("boolean")
    return out, years
