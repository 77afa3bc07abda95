"""Synthetic PEDE files in the real formats, calibrated on aggregates of the real data.

`render_synthetic` writes either the wide 2020-2022 CSV or the 2022-2024 workbook of one
simulated population: the same students, with the same 2022 overall ranking (CG) and INDE in
both, so the loader links them like the real files. The simulation follows
`synth_calibration.json` (aggregates measured on the real files by
`scripts/measure_synth_calibration.py`):

- students enter, stay (logistic retention on phase and indicators) or leave, year by year;
  most of those who stay advance one phase or repeat it;
- indicators: a VAR(1) on year-standardised normal scores, z_{t+1} = c + A z_t + e, carries the
  within-year correlation and the year-to-year persistence; each year's scores are mapped by
  rank to the real per-year quantiles and point masses (value levels for IAN and IPS);
- which side of the PV threshold next year's IPV falls on follows a logistic model of the real
  labels on this year's scores (the real top of IPV is more predictable than a Gaussian VAR
  implies); the VAR still draws the values on each side;
- INDE is the phase 0-7 formula, Pedra bins INDE at the real cut-offs, PV = IPV ≥ the year's
  threshold.

`students` counts the distinct students of 2020-2022 (the real CSV has 1,349); every yearly
count, and the 2023-2024 newcomers, scale with it.

The real files' quirks (junk codes, `#NULO!`, Excel errors, float artefacts, phase 8 rows,
`INCLUIR` placeholders, ages stored as dates, duplicated headers...) are written on purpose so
that the readers are exercised. Names are anonymous ids only (`ALUNO-n`, `RA-n`, `Aluno-n`).
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import io
import json
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from openpyxl import Workbook

from passos_magicos.data.schema import INDE_WEIGHTS, INDICATORS, MAX_FASE_PV, PEDRAS

__all__ = ["render_synthetic"]

CALIBRATION_PATH: Final = Path(__file__).with_name("synth_calibration.json")

CSV_YEARS: Final = (2020, 2021, 2022)
XLSX_YEARS: Final = (2022, 2023, 2024)
SIM_YEARS: Final = (2020, 2021, 2022, 2023, 2024)
MIN_STUDENTS: Final = 50

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]

# Decimals each year's file writes per indicator (absent: full float precision).
DECIMALS: Final[dict[int, dict[str, int]]] = {
    2020: {"ieg": 1},
    2021: dict.fromkeys(INDICATORS, 1),
    2022: {},
    2023: {"iaa": 1, "ieg": 1, "ida": 1, "ips": 2, "ipp": 4, "ipv": 4},
    2024: {"iaa": 1, "ips": 3, "ipp": 4, "ipv": 4, "ida": 2},
}
INDE_BEFORE_ROUNDING: Final = (2021, 2023)  # years whose INDE predates the rounding
# Phase 8 (universitários) has other INDE weights; these rows are dropped by the loader.
INDE_WEIGHTS_FASE8: Final = {"ian": 0.1, "ida": 0.4, "ieg": 0.2, "iaa": 0.1, "ips": 0.2}
# Quirk rows of the real files that are not worth calibrating: fixed small counts.
NULO_ROWS_2021: Final = 2
IPS_NA_ROWS_2023: Final = 6
DIV0_ROWS_2023: Final = 1
IAA_ARTEFACT: Final = 0.00002  # 8.5 is written 8.500020000000001 in the CSV
IAA_ARTEFACT_2024: Final = 0.002  # and 9.502 in the 2024 sheet
LINK_ROUNDING: Final = 3  # the workbook writes INDE and IPV of 2022 with three decimals
FIXED_ZIP_TIME: Final = (2024, 1, 1, 0, 0, 0)
FIXED_DOC_TIME: Final = "2024-01-01T00:00:00Z"
NORMAL: Final = NormalDist()


# ---------------------------------------------------------------------------------------------
# Calibration (typed view of the JSON)


@dataclass(frozen=True)
class Categorical:
    values: tuple[str, ...]
    probs: FloatArray
    cumulative: tuple[float, ...]

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray[Any, np.dtype[Any]]:
        return np.asarray(self.values, dtype=object)[
            rng.choice(len(self.values), size, p=self.probs)
        ]

    def draw_int(self, rng: np.random.Generator, size: int) -> IntArray:
        picks = rng.choice(len(self.values), size, p=self.probs)
        return np.array([int(float(v)) for v in self.values], dtype=np.int64)[picks]

    def at(self, u: float) -> str:
        """Inverse CDF at u (used with a per-student u so that choices stay stable)."""
        return self.values[min(bisect.bisect_right(self.cumulative, u), len(self.values) - 1)]


@dataclass(frozen=True)
class Marginal:
    """One indicator in one year: quantile function with point masses, or value levels."""

    probs: FloatArray
    quantiles: FloatArray
    atoms: FloatArray  # rows of (value, share below, share at or below)
    levels: FloatArray | None
    level_probs: FloatArray | None

    def inverse(self, u: FloatArray, knot: tuple[float, float] | None = None) -> FloatArray:
        if self.levels is not None and self.level_probs is not None:
            index = np.searchsorted(np.cumsum(self.level_probs), u, side="right")
            return self.levels[np.clip(index, 0, len(self.levels) - 1)]
        grid, values = self.probs, self.quantiles
        if knot is not None:
            # Pin one point of the quantile function (the PV threshold at 1 − PV rate).
            at_u, at_value = knot
            lower = (grid < at_u) & (values <= at_value)
            upper = (grid > at_u) & (values >= at_value)
            grid = np.concatenate([grid[lower], [at_u], grid[upper]])
            values = np.concatenate([values[lower], [at_value], values[upper]])
        out = np.asarray(np.interp(u, grid, values), dtype=np.float64)
        for value, below, at_or_below in self.atoms:
            out[(u >= below) & (u < at_or_below)] = value
        return out


@dataclass(frozen=True)
class Transition:
    """Year t → t+1: VAR(1) of the scores, retention, phase steps and (2020-2022) the PV side."""

    intercept: FloatArray
    a: FloatArray
    sigma: FloatArray  # residual covariance
    noise: FloatArray  # its Cholesky factor
    retention_by_fase: FloatArray
    retention_coef: FloatArray
    phase_step: Categorical
    pv_intercept: float | None
    pv_coef: FloatArray | None


@dataclass(frozen=True)
class Calibration:
    csv_students: int
    regular_rows: dict[int, int]
    special_rows: dict[str, int]
    marginals: dict[int, dict[str, Marginal]]
    correlation: dict[int, FloatArray]
    pv_threshold: dict[int, float]
    pv_rate: dict[int, float]
    pedra_cutoffs: dict[int, FloatArray]
    transitions: dict[int, Transition]
    entrant_shift: dict[int, FloatArray]
    entrant_pv_rate: dict[int, float]
    entrant_fase: dict[int, Categorical]
    entrant_lag: dict[int, Categorical]
    anos_pm_2020: Categorical
    feminino: float
    age_gap_by_ian: dict[float, Categorical]
    defasagem_by_ian: dict[float, Categorical]
    turma: dict[int, Categorical]
    instituicao: dict[str, Categorical]


def _categorical(raw: dict[str, Any]) -> Categorical:
    probs = np.array([float(p) for p in raw.values()])
    probs /= probs.sum()
    return Categorical(tuple(str(k) for k in raw), probs, tuple(np.cumsum(probs).tolist()))


def _ordered(raw: dict[str, Any]) -> Categorical:
    """Most frequent first, so that a stable per-student u keeps the usual category."""
    items = sorted(raw.items(), key=lambda kv: -float(kv[1]))
    return _categorical(dict(items))


def _chol(matrix: FloatArray) -> FloatArray:
    eigen = np.linalg.eigvalsh(matrix).min()
    jitter = max(0.0, 1e-9 - float(eigen))
    return np.asarray(np.linalg.cholesky(matrix + jitter * np.eye(len(matrix))), dtype=np.float64)


def _marginal(raw: dict[str, Any]) -> Marginal:
    levels = raw.get("levels")
    probs = np.array(levels["probs"], dtype=np.float64) if levels else None
    return Marginal(
        probs=np.array(raw["levels_q"], dtype=np.float64),
        quantiles=np.array(raw["quantiles"], dtype=np.float64),
        atoms=np.array(raw["atoms"], dtype=np.float64).reshape(-1, 3),
        levels=np.array(levels["values"], dtype=np.float64) if levels else None,
        level_probs=None if probs is None else probs / probs.sum(),
    )


@lru_cache(maxsize=1)
def _calibration(path: Path = CALIBRATION_PATH) -> Calibration:
    raw = json.loads(path.read_text(encoding="utf-8"))
    if tuple(raw["indicators_order"]) != INDICATORS:
        raise ValueError("synth_calibration.json: ordem dos indicadores diferente do esquema")
    counts = raw["counts"]
    regular = {int(y): int(n) for y, n in counts["regular_rows"].items()}
    for key, n in counts["unevaluated_rows"].items():
        regular[int(key[-4:])] += int(n)  # written, then left without evaluation
    special = {
        "fase8-2020": counts["phase8_rows"]["csv-2020"],
        "fase8-2023": counts["phase8_rows"]["xlsx-2023"],
        "fase8-2024": counts["phase8_rows"]["xlsx-2024"],
        "placeholder-2024": counts["placeholder_rows"]["xlsx-2024"],
        "unevaluated-2023": counts["unevaluated_rows"]["xlsx-2023"],
        "csv-only-2022": counts["csv_2022_not_in_xlsx"],
    }
    transitions = {}
    for key, var in raw["var"].items():
        start = int(key[:4])
        retention = raw["retention"][key]
        pv_model = raw["pv_model"].get(key)
        sigma = np.array(var["sigma"], dtype=np.float64)
        transitions[start] = Transition(
            intercept=np.array(var["intercept"], dtype=np.float64),
            a=np.array(var["A"], dtype=np.float64),
            sigma=sigma,
            noise=_chol(sigma),
            retention_by_fase=np.array(retention["by_fase"], dtype=np.float64),
            retention_coef=np.array(retention["coef"], dtype=np.float64),
            phase_step=_categorical(raw["phase_step"][key]),
            pv_intercept=None if pv_model is None else float(pv_model["intercept"]),
            pv_coef=None if pv_model is None else np.array(pv_model["coef"], dtype=np.float64),
        )
    attributes = raw["attributes"]
    return Calibration(
        csv_students=int(counts["csv_students"]),
        regular_rows=regular,
        special_rows={k: int(v) for k, v in special.items()},
        marginals={
            int(y): {name: _marginal(m[name]) for name in INDICATORS}
            for y, m in raw["marginals"].items()
        },
        correlation={int(y): np.array(c, dtype=np.float64) for y, c in raw["correlation"].items()},
        pv_threshold={int(y): float(v) for y, v in raw["pv_threshold"].items()},
        pv_rate={int(y): float(v) for y, v in raw["pv_rate"].items()},
        pedra_cutoffs={
            int(y): np.array(c, dtype=np.float64) for y, c in raw["pedra_cutoffs"].items()
        },
        transitions=transitions,
        entrant_shift={
            int(y): np.array(s, dtype=np.float64) for y, s in raw["entrant_z_shift"].items()
        },
        entrant_pv_rate={int(y): float(r) for y, r in raw["entrant_pv_rate"].items()},
        entrant_fase={int(y): _categorical(d) for y, d in raw["entrant_fase"].items()},
        entrant_lag={int(y): _categorical(d) for y, d in raw["entrant_entry_lag"].items()},
        anos_pm_2020=_categorical(attributes["anos_pm_2020"]),
        feminino=float(attributes["feminino"]),
        age_gap_by_ian={
            float(k): _categorical(d) for k, d in attributes["idade_menos_fase_by_ian"].items()
        },
        defasagem_by_ian={
            float(k): _categorical(d) for k, d in attributes["defasagem_by_ian"].items()
        },
        turma={int(y): _categorical(d) for y, d in attributes["turma"].items()},
        instituicao={k: _ordered(d) for k, d in attributes["instituicao"].items()},
    )


# ---------------------------------------------------------------------------------------------
# Simulation: one long table, one row per student and year (all kinds of rows)


def _ranks(z: FloatArray) -> FloatArray:
    order = np.argsort(np.argsort(z, kind="stable"), kind="stable")
    return np.asarray((order + 0.5) / len(z), dtype=np.float64)


def _sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def _normal_cdf(x: FloatArray) -> FloatArray:
    return np.array([NORMAL.cdf(float(v)) for v in x], dtype=np.float64)


def _normal_quantile(u: FloatArray) -> FloatArray:
    return np.array([NORMAL.inv_cdf(float(v)) for v in np.clip(u, 1e-12, 1 - 1e-12)])


def _pv_side(
    rng: np.random.Generator,
    probability: FloatArray,
    mean: FloatArray,
    noise: FloatArray,
    covariance: FloatArray,
    pv_rate: float,
) -> FloatArray:
    """Redraw the IPV part of `noise` so that `mean + noise` lands above the year's PV
    threshold with the given probability, keeping the Gaussian distribution on each side.

    The other components follow their conditional distribution given the new IPV component.
    """
    j = INDICATORS.index("ipv")
    sd = float(np.sqrt(covariance[j, j]))
    beta = covariance[:, j] / covariance[j, j]
    cut = NORMAL.inv_cdf(1.0 - pv_rate)  # the threshold among a year's normal scores
    above = rng.random(len(mean)) < probability
    below_share = _normal_cdf((cut - mean[:, j]) / sd)
    u = rng.random(len(mean))
    u = np.where(above, below_share + u * (1.0 - below_share), u * below_share)
    residual = sd * _normal_quantile(u)
    return np.asarray(noise + np.outer(residual - noise[:, j], beta), dtype=np.float64)


def _indicator_values(
    cal: Calibration, year: int, z: FloatArray
) -> tuple[dict[str, FloatArray], FloatArray]:
    """Map each column of z (n × 7) by rank onto the year's real marginal and round it as the
    year's file does. Returns the written values and INDE, which the real 2021 and 2023 files
    compute before rounding the indicators (there the formula holds only to the rounding)."""
    values: dict[str, FloatArray] = {}
    unrounded: dict[str, FloatArray] = {}
    decimals = DECIMALS[year]
    for j, name in enumerate(INDICATORS):
        knot = None
        if name == "ipv" and year in cal.pv_threshold:
            threshold = cal.pv_threshold[year]
            if "ipv" in decimals:
                threshold -= 0.49 * 10.0 ** -decimals["ipv"]  # rounding up reaches the threshold
            knot = (1.0 - cal.pv_rate[year], threshold)
        mapped = cal.marginals[year][name].inverse(_ranks(z[:, j]), knot) if len(z) else z[:, j]
        unrounded[name] = mapped
        if name in decimals:
            mapped = np.round(mapped, decimals[name])
        elif knot is not None:
            # Keep the workbook's 3-decimal IPV on the same side of the threshold as the CSV's.
            below = (mapped < knot[1]) & (mapped >= knot[1] - 0.5 * 10.0**-LINK_ROUNDING)
            mapped = np.where(below, knot[1] - 10.0**-LINK_ROUNDING, mapped)
            unrounded[name] = mapped
        values[name] = mapped
    inde = _inde(unrounded if year in INDE_BEFORE_ROUNDING else values, INDE_WEIGHTS)
    return values, np.round(inde, 3) if year == 2021 else inde


def _inde(values: dict[str, FloatArray], weights: dict[str, float]) -> FloatArray:
    total = sum(w * values[k] for k, w in weights.items())
    return np.asarray(total, dtype=np.float64)


def _pedra(cal: Calibration, year: int, inde: FloatArray) -> np.ndarray[Any, np.dtype[Any]]:
    band = np.searchsorted(cal.pedra_cutoffs[year], inde, side="right")
    return np.asarray(PEDRAS, dtype=object)[band]


def _simulate_regular(cal: Calibration, rng: np.random.Generator, scale: float) -> pd.DataFrame:
    """Phase 0-7 students: entries, retention, phase steps and indicator scores."""
    k = len(INDICATORS)
    frames = []
    sid = np.empty(0, dtype=np.int64)
    fase = np.empty(0, dtype=np.int64)
    z = np.empty((0, k))
    next_sid = 0
    for year in SIM_YEARS:
        if year > SIM_YEARS[0]:
            move = cal.transitions[year - 1]
            logit = move.retention_by_fase[fase] + z @ move.retention_coef
            keep = rng.random(len(sid)) < _sigmoid(logit)
            sid, fase, z = sid[keep], fase[keep], z[keep]
            mean = move.intercept + z @ move.a.T
            noise = rng.standard_normal((len(sid), k)) @ move.noise.T
            if move.pv_coef is not None and move.pv_intercept is not None:
                # The real top of IPV is more predictable than the Gaussian VAR alone implies.
                above = _sigmoid(move.pv_intercept + z @ move.pv_coef)
                noise = _pv_side(rng, above, mean, noise, move.sigma, cal.pv_rate[year])
            z = mean + noise
            fase = np.clip(fase + move.phase_step.draw_int(rng, len(sid)), 0, MAX_FASE_PV)
        target = round(scale * cal.regular_rows[year])
        n_new = max(target - len(sid), 0)
        shift = np.broadcast_to(cal.entrant_shift.get(year, np.zeros(k)), (n_new, k))
        noise = rng.standard_normal((n_new, k)) @ _chol(cal.correlation[year]).T
        if year in cal.entrant_pv_rate:
            above = np.full(n_new, cal.entrant_pv_rate[year])
            noise = _pv_side(rng, above, shift, noise, cal.correlation[year], cal.pv_rate[year])
        z_new = shift + noise
        fase_new = cal.entrant_fase[year].draw_int(rng, n_new)
        sid = np.concatenate([sid, np.arange(next_sid, next_sid + n_new)])
        fase = np.concatenate([fase, fase_new])
        z = np.vstack([z, z_new])
        next_sid += n_new
        values, inde = _indicator_values(cal, year, z)
        frames.append(pd.DataFrame({"sid": sid, "ano": year, "fase": fase, **values, "inde": inde}))
    return pd.concat(frames, ignore_index=True)


def _simulate_special(
    cal: Calibration, rng: np.random.Generator, scale: float, first_sid: int
) -> pd.DataFrame:
    """Phase 8 students (2020, 2023, 2024), the 2024 `INCLUIR` placeholders and the junk row."""
    frames = []
    next_sid = first_sid
    for kind, year, fase in (
        ("fase8", 2020, 8),
        ("fase8", 2023, 8),
        ("fase8", 2024, 8),
        ("placeholder", 2024, 9),
    ):
        n = round(scale * cal.special_rows[f"{kind}-{year}"])
        z = rng.standard_normal((n, len(INDICATORS)))
        values, _ = _indicator_values(cal, year, z)
        frame = pd.DataFrame({"sid": np.arange(next_sid, next_sid + n), "ano": year, "fase": fase})
        frame = frame.assign(**values, tipo=kind)
        frame["ipp"] = 0.0
        frame["ipv"] = 0.0
        frame["ian"] = 10.0
        frame["idade"] = rng.integers(18, 25, n)
        frames.append(frame)
        next_sid += n
    junk = pd.DataFrame({"sid": [next_sid], "ano": [2020], "fase": [0], "tipo": ["junk"]})
    return pd.concat([*frames, junk], ignore_index=True)


def _student_attributes(
    cal: Calibration, rng: np.random.Generator, panel: pd.DataFrame
) -> pd.DataFrame:
    """Attributes fixed per student: entry year, birth year, gender, institution draw."""
    first = panel.sort_values(["sid", "ano"]).drop_duplicates("sid").set_index("sid")
    n = len(first)
    entry = np.empty(n, dtype=np.int64)
    age_first = first["idade"].to_numpy(dtype=float, na_value=np.nan)
    regular = (first["tipo"] == "regular").to_numpy()
    ian = first["ian"].to_numpy(dtype=float, na_value=10.0)
    for level, gaps in cal.age_gap_by_ian.items():
        rows = regular & np.isclose(ian, level)
        age_first[rows] = first["fase"].to_numpy()[rows] + gaps.draw_int(rng, int(rows.sum()))
    in_2020 = (first["ano"] == 2020).to_numpy()
    entry[in_2020] = 2020 - cal.anos_pm_2020.draw_int(rng, int(in_2020.sum()))
    for year in SIM_YEARS[1:]:
        rows = (first["ano"] == year).to_numpy()
        lag = cal.entrant_lag[year].draw_int(rng, int(rows.sum()))
        entry[rows] = year - lag
    special = ~regular
    entry[special] = np.minimum(first["ano"].to_numpy()[special], 2021) - rng.integers(
        0, 4, int(special.sum())
    )
    birth_year = first["ano"].to_numpy() - age_first
    return pd.DataFrame(
        {
            "sid": first.index.to_numpy(),
            "ingresso": entry,
            "nascimento": np.nan_to_num(birth_year, nan=2010).astype(int),
            "nascimento_dia": rng.integers(1, 366, n),
            "feminino": rng.random(n) < cal.feminino,
            "u_instituicao": rng.random(n),
        }
    )


def _decorate(cal: Calibration, rng: np.random.Generator, panel: pd.DataFrame) -> pd.DataFrame:
    """Per student-year fields derived from the indicators, and the descriptive columns."""
    n = len(panel)
    regular = (panel["tipo"] == "regular").to_numpy()
    panel["pedra"] = None
    panel["pv"] = None
    for year in SIM_YEARS:
        rows = regular & (panel["ano"] == year).to_numpy()
        panel.loc[rows, "pedra"] = _pedra(cal, year, panel.loc[rows, "inde"].to_numpy(float))
        if year in cal.pv_threshold:
            ipv = panel.loc[rows, "ipv"].to_numpy(dtype=float)
            panel.loc[rows, "pv"] = ipv >= cal.pv_threshold[year]
        fase8 = (panel["tipo"] == "fase8").to_numpy() & (panel["ano"] == year).to_numpy()
        if fase8.any():
            values8 = {k: panel.loc[fase8, k].to_numpy(dtype=float) for k in INDICATORS}
            inde8 = _inde(values8, INDE_WEIGHTS_FASE8)
            panel.loc[fase8, "inde"] = inde8
            panel.loc[fase8, "pedra"] = _pedra(cal, year, inde8)

    ian = panel["ian"].to_numpy(dtype=float, na_value=10.0)
    defasagem = np.zeros(n, dtype=np.int64)
    for level, dist in cal.defasagem_by_ian.items():
        rows = regular & np.isclose(ian, level)
        defasagem[rows] = dist.draw_int(rng, int(rows.sum()))
    fase = panel["fase"].to_numpy(dtype=np.int64)
    ideal = np.clip(fase - defasagem, 0, 8)
    ideal[~regular] = 8
    panel["fase_ideal"] = ideal
    panel["defasagem"] = np.where(regular, fase - ideal, np.where(fase >= 9, 1, 0))
    turma = np.empty(n, dtype=object)
    for year in SIM_YEARS:
        rows = (panel["ano"] == year).to_numpy()
        turma[rows] = cal.turma[year].draw(rng, int(rows.sum()))
    panel["turma"] = turma
    panel["n_aval"] = rng.choice([2, 3, 4], n, p=[0.27, 0.40, 0.33])
    panel["rec"] = list(rng.choice(len(RECOMENDACOES), (n, 4), p=RECOMENDACOES_P))
    panel["avaliador"] = list(rng.integers(1, 35, (n, 6)))
    panel["rec_psico"] = rng.choice(len(REC_PSICOLOGIA), n, p=REC_PSICOLOGIA_P)
    panel["bolsista"] = rng.random(n) < 0.125
    panel["indicado"] = ~panel["bolsista"] & (rng.random(n) < 0.17)
    notas = _notas(rng, panel["ida"].to_numpy(dtype=float, na_value=np.nan))
    panel["nota_port"], panel["nota_mat"], panel["nota_ing"] = notas
    panel["data_como_texto"] = rng.random(n) < 0.6
    panel["idade_como_data"] = rng.random(n) < 0.4
    panel["escola"] = rng.integers(1, 57, n)
    return panel


def _notas(rng: np.random.Generator, ida: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Portuguese, maths and (for a third) English grades whose mean is IDA, as in 2022."""
    n = len(ida)
    has_ing = rng.random(n) < 0.33
    spread = rng.normal(0.0, 1.3, (n, 3))
    spread[~has_ing, 2] = 0.0
    count = np.where(has_ing, 3, 2)
    spread -= (spread.sum(axis=1) / count)[:, None]
    spread[~has_ing, 2] = 0.0
    base = np.nan_to_num(ida, nan=5.0)[:, None]
    room = np.where(
        spread > 0, (10.0 - base) / np.maximum(spread, 1e-12), base / np.maximum(-spread, 1e-12)
    )
    shrink = np.clip(room.min(axis=1), 0.0, 1.0)[:, None]
    grades = np.clip(base + spread * shrink, 0.0, 10.0)
    ing = np.where(has_ing, grades[:, 2], np.nan)
    return grades[:, 0], grades[:, 1], np.asarray(ing, dtype=np.float64)


RECOMENDACOES: Final = (
    "Mantido na Fase atual",
    "Promovido de Fase",
    "Promovido de Fase + Bolsa",
    "Mantido na Fase + Bolsa",
    "Não avaliado",
    "Alocado em Fase anterior",
)
RECOMENDACOES_P: Final = (0.47, 0.33, 0.15, 0.02, 0.02, 0.01)
REC_PSICOLOGIA: Final = (
    "Não atendido",
    "Sem limitações",
    "Requer avaliação",
    "Não indicado",
    "Não avaliado",
)
REC_PSICOLOGIA_P: Final = (0.47, 0.30, 0.18, 0.04, 0.01)


def _mark_quirks(
    cal: Calibration, rng: np.random.Generator, panel: pd.DataFrame, scale: float
) -> None:
    """Rows the real files leave without evaluation or with error cells."""
    panel["quirk"] = ""

    def pick(year: int, fases: Sequence[int], count: int) -> pd.Index | None:
        pool = panel.index[
            (panel["tipo"] == "regular")
            & (panel["ano"] == year)
            & panel["fase"].isin(fases)
            & (panel["quirk"] == "")
        ]
        if count <= 0 or len(pool) == 0:
            return None
        chosen: IntArray = rng.choice(pool.to_numpy(), min(count, len(pool)), replace=False)
        return pd.Index(chosen)

    if (rows := pick(2021, [0, 1], NULO_ROWS_2021)) is not None:
        panel.loc[rows, ["ieg", "ipp", "ipv"]] = 0.0
        panel.loc[rows, ["inde", "pedra", "pv"]] = [np.nan, None, None]
        panel.loc[rows, "quirk"] = "nulo"
    unevaluated = round(scale * cal.special_rows["unevaluated-2023"])
    if (rows := pick(2023, [7, 6], unevaluated)) is not None:
        panel.loc[rows, "quirk"] = "sem_avaliacao"
    if (rows := pick(2023, [4, 3], round(scale * IPS_NA_ROWS_2023))) is not None:
        panel.loc[rows, "quirk"] = "ips_na"
    if (rows := pick(2023, [2, 1], DIV0_ROWS_2023)) is not None:
        panel.loc[rows, "quirk"] = "div0"
    if (rows := pick(2022, range(8), round(scale * cal.special_rows["csv-only-2022"]))) is not None:
        panel.loc[rows, "quirk"] = "so_csv"


def _rank_2022(panel: pd.DataFrame) -> None:
    """CG (overall), CF (within phase) and CT (within class) rankings of INDE 2022."""
    rows = (panel["ano"] == 2022) & (panel["tipo"] == "regular")
    year = panel.loc[rows, ["inde", "fase", "turma"]].copy()
    year["order"] = np.arange(len(year))
    ranked = year.sort_values(["inde", "order"], ascending=[False, True])
    panel["cg"] = pd.NA
    panel["cf"] = pd.NA
    panel["ct"] = pd.NA
    panel.loc[ranked.index, "cg"] = np.arange(1, len(ranked) + 1)
    panel.loc[ranked.index, "cf"] = ranked.groupby("fase").cumcount().to_numpy() + 1
    panel.loc[ranked.index, "ct"] = ranked.groupby(["fase", "turma"]).cumcount().to_numpy() + 1


def _assign_ids(rng: np.random.Generator, panel: pd.DataFrame) -> pd.DataFrame:
    """`ALUNO-n` for the students of the 2020-2022 CSV, `RA-n` in order of first appearance in
    the workbook (2022 sheet shuffled, then each year's newcomers)."""
    csv_sids = np.unique(panel.loc[panel["ano"] <= 2022, "sid"].to_numpy())
    aluno = dict(zip(rng.permutation(csv_sids), range(1, len(csv_sids) + 1), strict=True))
    in_xlsx = (panel["ano"] >= 2022) & (panel["quirk"] != "so_csv") & (panel["tipo"] != "junk")
    ra: dict[int, int] = {}
    for year in XLSX_YEARS:
        sids = panel.loc[in_xlsx & (panel["ano"] == year), "sid"].to_numpy()
        newcomers = [int(s) for s in rng.permutation(sids) if int(s) not in ra]
        for s in newcomers:
            ra[s] = len(ra) + 1
    panel["aluno"] = panel["sid"].map(aluno).astype("Int64")
    panel["ra"] = panel["sid"].map(ra).astype("Int64")
    panel["in_xlsx"] = in_xlsx
    return panel


@lru_cache(maxsize=4)  # rendering both formats of one population simulates it once
def _population(students: int, seed: int) -> pd.DataFrame:
    """The population behind both formats: one row per student and year, 2020-2024, of every
    kind (regular, phase 8, placeholder, junk). The renderers must not modify it."""
    cal = _calibration()
    rng = np.random.default_rng(seed)
    scale = students / cal.csv_students
    regular = _simulate_regular(cal, rng, scale)
    regular["tipo"] = "regular"
    special = _simulate_special(cal, rng, scale, int(regular["sid"].max()) + 1)
    panel = pd.concat([regular, special], ignore_index=True)
    panel["idade"] = panel["idade"].astype(float) if "idade" in panel else np.nan
    static = _student_attributes(cal, rng, panel)
    panel = panel.merge(static, on="sid", how="left")
    panel["idade"] = panel["ano"] - panel["nascimento"]
    panel = _decorate(cal, rng, panel)
    _mark_quirks(cal, rng, panel, scale)
    _rank_2022(panel)
    panel = _assign_ids(rng, panel)
    return panel.sort_values(["sid", "ano"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Public entry point


Format = Literal["csv", "xlsx"]
LaterPv = Literal["vazio", "regra"]
"""`Atingiu PV` of the 2023-2024 sheets: empty like the real workbook, or written by the IPV
rule (as a future workbook that publishes them would be)."""


def render_synthetic(
    *,
    students: int = 1400,
    seed: int = 42,
    fmt: Format = "csv",
    years: Sequence[int] | None = None,
    later_pv: LaterPv = "vazio",
) -> bytes:
    """A synthetic PEDE file: the wide 2020-2022 CSV or the 2022-2024 workbook.

    `students` is the number of distinct students of 2020-2022 (the real CSV has 1,349); the
    2023-2024 newcomers scale with it. `years` limits the CSV year blocks (subset of
    2020-2022; the other years' columns are left out) or the workbook sheets (subset of
    2022-2024). Both formats of one (students, seed) describe the same population. Same
    arguments, same bytes. `later_pv` fills (or not) the workbook's 2023-2024 PV.
    """
    if students < MIN_STUDENTS:
        raise ValueError(f"students deve ser pelo menos {MIN_STUDENTS}")
    panel = _population(students, seed)
    if fmt == "csv":
        return _render_csv(panel, _check_years(years, CSV_YEARS))
    if fmt == "xlsx":
        return _render_xlsx(panel, _check_years(years, XLSX_YEARS), later_pv)
    raise ValueError(f"formato desconhecido: {fmt!r} (use 'csv' ou 'xlsx')")


def _check_years(years: Sequence[int] | None, allowed: tuple[int, ...]) -> tuple[int, ...]:
    if years is None:
        return allowed
    chosen = tuple(sorted({int(y) for y in years}))
    if not chosen or any(y not in allowed for y in chosen):
        raise ValueError(f"anos {list(years)} fora de {allowed[0]}-{allowed[-1]}")
    return chosen


# ---------------------------------------------------------------------------------------------
# Wide CSV 2020-2022

CSV_HEADER: Final = (
    "INSTITUICAO_ENSINO_ALUNO_2020",
    "NOME",
    "IDADE_ALUNO_2020",
    "ANOS_PM_2020",
    "FASE_TURMA_2020",
    "PONTO_VIRADA_2020",
    "INDE_2020",
    "INDE_CONCEITO_2020",
    "PEDRA_2020",
    "DESTAQUE_IEG_2020",
    "DESTAQUE_IDA_2020",
    "DESTAQUE_IPV_2020",
    "IAA_2020",
    "IEG_2020",
    "IPS_2020",
    "IDA_2020",
    "IPP_2020",
    "IPV_2020",
    "IAN_2020",
    "FASE_2021",
    "TURMA_2021",
    "INSTITUICAO_ENSINO_ALUNO_2021",
    "SINALIZADOR_INGRESSANTE_2021",
    "PEDRA_2021",
    "INDE_2021",
    "IAA_2021",
    "IEG_2021",
    "IPS_2021",
    "IDA_2021",
    "IPP_2021",
    "REC_EQUIPE_1_2021",
    "REC_EQUIPE_2_2021",
    "REC_EQUIPE_3_2021",
    "REC_EQUIPE_4_2021",
    "PONTO_VIRADA_2021",
    "IPV_2021",
    "IAN_2021",
    "NIVEL_IDEAL_2021",
    "DEFASAGEM_2021",
    "FASE_2022",
    "TURMA_2022",
    "ANO_INGRESSO_2022",
    "BOLSISTA_2022",
    "INDE_2022",
    "CG_2022",
    "CF_2022",
    "CT_2022",
    "PEDRA_2022",
    "DESTAQUE_IEG_2022",
    "DESTAQUE_IDA_2022",
    "DESTAQUE_IPV_2022",
    "IAA_2022",
    "IEG_2022",
    "IPS_2022",
    "IDA_2022",
    "NOTA_PORT_2022",
    "NOTA_MAT_2022",
    "NOTA_ING_2022",
    "QTD_AVAL_2022",
    "IPP_2022",
    "REC_AVA_1_2022",
    "REC_AVA_2_2022",
    "REC_AVA_3_2022",
    "REC_AVA_4_2022",
    "INDICADO_BOLSA_2022",
    "PONTO_VIRADA_2022",
    "IPV_2022",
    "IAN_2022",
    "NIVEL_IDEAL_2022",
)

JUNK_2020: Final = {
    "INSTITUICAO_ENSINO_ALUNO_2020": "V202",
    "IDADE_ALUNO_2020": "D108",
    "ANOS_PM_2020": "D971",
    "FASE_TURMA_2020": "D207",
    "PONTO_VIRADA_2020": "D9600",
    "INDE_2020": "D980",
    "INDE_CONCEITO_2020": "D9891/2",
    "PEDRA_2020": "D9891/2A",
    "DESTAQUE_IEG_2020": "D301",
    "DESTAQUE_IDA_2020": "D302",
    "IAA_2020": "D910",
    "IEG_2020": "V920",
    "IPS_2020": "D930",
    "IDA_2020": "D940",
    "IPP_2020": "D950",
    "IPV_2020": "D960",
    "IAN_2020": "D970",
}

DESTAQUE_2020: Final = {
    "ieg": (
        "Seu destaque em 2020: A sua boa entrega das lições de casa.",
        "Ponto a melhorar em 2021: Melhorar a sua entrega de lições de casa.",
    ),
    "ida": (
        "Seu destaque em 2020: As suas boas notas na Passos Mágicos.",
        "Ponto a melhorar em 2021: Empenhar-se mais nas aulas e avaliações.",
    ),
    "ipv": (
        "Seu destaque em 2020: A sua boa integração aos Princípios Passos Mágicos.",
        "Ponto a melhorar em 2021: Integrar-se mais aos Princípios Passos Mágicos.",
    ),
}
DESTAQUE_2020_FASE8: Final = {
    "ieg": (
        "Seu destaque em 2020: O seu bom engajamento nas ações de voluntariado.",
        "Ponto a melhorar em 2021: Melhorar o seu engajamento nas ações de voluntariado.",
    ),
    "ida": (
        "Seu destaque em 2020: As suas boas notas na Faculdade.",
        "Ponto a melhorar em 2021: As suas notas na Faculdade.",
    ),
}
DESTAQUE_2022: Final = {
    "ieg": (
        "Destaque: A sua boa entrega das lições de casa.",
        "Melhorar: Melhorar a sua entrega de lições de casa.",
    ),
    "ida": (
        "Destaque: As suas boas notas na Passos Mágicos.",
        "Melhorar: Empenhar-se mais nas aulas e avaliações.",
    ),
    "ipv": (
        "Destaque: A sua boa integração aos Princípios Passos Mágicos.",
        "Melhorar: Integrar-se mais aos Princípios Passos Mágicos.",
    ),
}
DESTAQUE_CUT: Final = 7.5
CONCEITO: Final = {"Topázio": "A", "Ametista": "B", "Ágata": "C", "Quartzo": "D"}

NIVEL_IDEAL: Final = {
    2021: (
        "ALFA  (2o e 3o ano)",
        "Nível 1 (4o ano)",
        "Nível 2 (5o e 6o ano)",
        "Nível 3 (7o e 8o ano)",
        "Nível 4 (9o ano)",
        "Nível 5 (1o EM)",
        "Nível 6 (2o EM)",
        "Nível 7 (3o EM)",
        "Nível 8 (Universitários)",
    ),
    2022: (
        "ALFA  (2º e 3º ano)",
        "Fase 1 (4º ano)",
        "Fase 2 (5º e 6º ano)",
        "Fase 3 (7º e 8º ano)",
        "Fase 4 (9º ano)",
        "Fase 5 (1º EM)",
        "Fase 6 (2º EM)",
        "Fase 7 (3º EM)",
        "Fase 8 (Universitários)",
    ),
    2023: (
        "ALFA (1° e 2° ano)",
        "Fase 1 (3° e 4° ano)",
        "Fase 2 (5° e 6° ano)",
        "Fase 3 (7° e 8° ano)",
        "Fase 4 (9° ano)",
        "Fase 5 (1° EM)",
        "Fase 6 (2° EM)",
        "Fase 7 (3° EM)",
        "Fase 8 (Universitários)",
    ),
}


def _full(value: float) -> str:
    """Full float precision, whole numbers with `.0` (2022 style)."""
    return repr(float(value))


def _plain(value: float) -> str:
    """Full precision, whole numbers without decimals (2020 style: `10`, `7.5`)."""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _one(value: float) -> str:
    return f"{float(value):.1f}"


def _with_artefact(value: float, ulp: bool) -> str:
    """IAA as the CSV writes it: 8.5 becomes 8.500020000000001 (or 8.50002)."""
    shifted = float(value) + IAA_ARTEFACT
    return repr(float(np.nextafter(shifted, np.inf)) if ulp else shifted)


def _destaque(texts: tuple[str, str], value: float) -> str:
    return texts[0] if value >= DESTAQUE_CUT else texts[1]


def _institution(cal: Calibration, key: str, u: float) -> str:
    return cal.instituicao[key].at(u)


def _csv_2020(cal: Calibration, r: Any) -> dict[str, str]:
    if r.tipo == "junk":
        return dict(JUNK_2020)
    fase8 = r.tipo == "fase8"
    destaque = DESTAQUE_2020_FASE8 if fase8 else DESTAQUE_2020
    return {
        "INSTITUICAO_ENSINO_ALUNO_2020": _institution(
            cal, "2020-fase8" if fase8 else "2020", r.u_instituicao
        ),
        "IDADE_ALUNO_2020": str(int(r.idade)),
        "ANOS_PM_2020": str(2020 - int(r.ingresso)),
        "FASE_TURMA_2020": f"{int(r.fase)}{r.turma}",
        "PONTO_VIRADA_2020": "" if fase8 else ("Sim" if r.pv else "Não"),
        "INDE_2020": _plain(r.inde),
        "INDE_CONCEITO_2020": CONCEITO[r.pedra],
        "PEDRA_2020": r.pedra,
        "DESTAQUE_IEG_2020": _destaque(destaque["ieg"], r.ieg),
        "DESTAQUE_IDA_2020": _destaque(destaque["ida"], r.ida),
        "DESTAQUE_IPV_2020": "" if fase8 else _destaque(DESTAQUE_2020["ipv"], r.ipv),
        "IAA_2020": _with_artefact(r.iaa, ulp=True),
        "IEG_2020": _plain(r.ieg),
        "IPS_2020": _plain(r.ips),
        "IDA_2020": _plain(r.ida),
        "IPP_2020": _plain(r.ipp),
        "IPV_2020": _plain(r.ipv),
        "IAN_2020": _plain(r.ian),
    }


def _csv_2021(cal: Calibration, r: Any) -> dict[str, str]:
    nulo = r.quirk == "nulo"
    return {
        "FASE_2021": f"{int(r.fase)}.0",
        "TURMA_2021": r.turma,
        "INSTITUICAO_ENSINO_ALUNO_2021": _institution(cal, "2021", r.u_instituicao),
        "SINALIZADOR_INGRESSANTE_2021": "Ingressante" if r.ingresso == 2021 else "Veterano",
        "PEDRA_2021": "#NULO!" if nulo else r.pedra,
        "INDE_2021": "#NULO!" if nulo else f"{r.inde:.3f}",
        **{f"{k.upper()}_2021": _one(getattr(r, k)) for k in ("iaa", "ieg", "ips", "ida", "ipp")},
        **{
            f"REC_EQUIPE_{i + 1}_2021": "Não avaliado" if nulo else RECOMENDACOES[r.rec[i]]
            for i in range(4)
        },
        "PONTO_VIRADA_2021": "#NULO!" if nulo else ("Sim" if r.pv else "Não"),
        "IPV_2021": _one(r.ipv),
        "IAN_2021": _one(r.ian),
        "NIVEL_IDEAL_2021": NIVEL_IDEAL[2021][r.fase_ideal],
        "DEFASAGEM_2021": f"{int(r.defasagem)}.0",
    }


def _csv_2022(r: Any) -> dict[str, str]:
    def optional(value: float) -> str:
        return "" if np.isnan(value) else _full(value)

    return {
        "FASE_2022": f"{int(r.fase)}.0",
        "TURMA_2022": r.turma,
        "ANO_INGRESSO_2022": f"{int(r.ingresso)}.0",
        "BOLSISTA_2022": "Sim" if r.bolsista else "Não",
        "INDE_2022": _full(r.inde),
        "CG_2022": f"{int(r.cg)}.0",
        "CF_2022": f"{int(r.cf)}.0",
        "CT_2022": f"{int(r.ct)}.0",
        "PEDRA_2022": r.pedra,
        **{
            f"DESTAQUE_{k.upper()}_2022": _destaque(DESTAQUE_2022[k], getattr(r, k))
            for k in ("ieg", "ida", "ipv")
        },
        "IAA_2022": _with_artefact(r.iaa, ulp=r.sid % 2 == 0),
        "IEG_2022": _full(r.ieg),
        "IPS_2022": _full(r.ips),
        "IDA_2022": _full(r.ida),
        "NOTA_PORT_2022": optional(r.nota_port),
        "NOTA_MAT_2022": optional(r.nota_mat),
        "NOTA_ING_2022": optional(r.nota_ing),
        "QTD_AVAL_2022": f"{int(r.n_aval)}.0",
        "IPP_2022": _full(r.ipp),
        **{
            f"REC_AVA_{i + 1}_2022": RECOMENDACOES[r.rec[i]] if i < r.n_aval else ""
            for i in range(4)
        },
        "INDICADO_BOLSA_2022": "Sim" if r.indicado else "Não",
        "PONTO_VIRADA_2022": "Sim" if r.pv else "Não",
        "IPV_2022": _full(r.ipv),
        "IAN_2022": _full(r.ian),
        "NIVEL_IDEAL_2022": NIVEL_IDEAL[2022][r.fase_ideal],
    }


def _records(frame: pd.DataFrame) -> Iterator[Any]:
    """Rows as named tuples (attribute access by column name)."""
    yield from frame.itertuples(index=False)


def _render_csv(panel: pd.DataFrame, years: tuple[int, ...]) -> bytes:
    cal = _calibration()
    header = [c for c in CSV_HEADER if c == "NOME" or int(c[-4:]) in years]
    rows = panel[panel["ano"].isin(years) & panel["aluno"].notna()]
    records: dict[int, dict[str, str]] = {}
    for r in _records(rows):
        record = records.setdefault(int(r.aluno), {"NOME": f"ALUNO-{int(r.aluno)}"})
        if r.ano == 2020:
            record.update(_csv_2020(cal, r))
        elif r.ano == 2021:
            record.update(_csv_2021(cal, r))
        else:
            record.update(_csv_2022(r))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(header)
    for number in sorted(records):
        record = records[number]
        writer.writerow([record.get(c, "") for c in header])
    return out.getvalue().encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Workbook 2022-2024

SHEET_2022: Final = (
    "RA|Fase|Turma|Nome|Ano nasc|Idade 22|Gênero|Ano ingresso|Instituição de ensino|Pedra 20|"
    "Pedra 21|Pedra 22|INDE 22|Cg|Cf|Ct|Nº Av|Avaliador1|Rec Av1|Avaliador2|Rec Av2|Avaliador3|"
    "Rec Av3|Avaliador4|Rec Av4|IAA|IEG|IPS|Rec Psicologia|IDA|Matem|Portug|Inglês|Indicado|"
    "Atingiu PV|IPV|IAN|Fase ideal|Defas|Destaque IEG|Destaque IDA|Destaque IPV"
)
SHEET_2023: Final = (
    "RA|Fase|INDE 2023|Pedra 2023|Turma|Nome Anonimizado|Data de Nasc|Idade|Gênero|Ano ingresso|"
    "Instituição de ensino|Pedra 20|Pedra 21|Pedra 22|Pedra 23|INDE 22|INDE 23|Cg|Cf|Ct|Nº Av|"
    "Avaliador1|Rec Av1|Avaliador2|Rec Av2|Avaliador3|Rec Av3|Avaliador4|Rec Av4|IAA|IEG|IPS|IPP|"
    "Rec Psicologia|IDA|Mat|Por|Ing|Indicado|Atingiu PV|IPV|IAN|Fase Ideal|Defasagem|"
    "Destaque IEG|Destaque IDA|Destaque IPV|Destaque IPV"
)
SHEET_2024: Final = (
    "RA|Fase|INDE 2024|Pedra 2024|Turma|Nome Anonimizado|Data de Nasc|Idade|Gênero|Ano ingresso|"
    "Instituição de ensino|Pedra 20|Pedra 21|Pedra 22|Pedra 23|INDE 22|INDE 23|Cg|Cf|Ct|Nº Av|"
    "Avaliador1|Rec Av1|Avaliador2|Rec Av2|Avaliador3|Avaliador4|Avaliador5|Avaliador6|IAA|IEG|"
    "IPS|IPP|Rec Psicologia|IDA|Mat|Por|Ing|Indicado|Atingiu PV|IPV|IAN|Fase Ideal|Defasagem|"
    "Destaque IEG|Destaque IDA|Destaque IPV|Escola|Ativo/ Inativo|Ativo/ Inativo"
)
SHEET_HEADERS: Final = {
    2022: tuple(SHEET_2022.split("|")),
    2023: tuple(SHEET_2023.split("|")),
    2024: tuple(SHEET_2024.split("|")),
}
INSTITUICAO_FASE8: Final = (
    "Concluiu o 3º EM",
    "Bolsista Universitário *Formado (a)",
    "Privada *Parcerias com Bolsa 100%",
)

Cell = str | float | int | dt.datetime | None


def _num(value: Any, decimals: int | None = None) -> float | None:
    if value is None or pd.isna(value):
        return None
    number = float(value)
    return round(number, decimals) if decimals is not None else number


def _pedra_sheet(pedra: Any, year: int) -> str | None:
    if pedra is None or (isinstance(pedra, float) and np.isnan(pedra)):
        return None
    text = str(pedra)
    return "Agata" if year >= 2023 and text == "Ágata" else text  # 2023-2024 drop the accent


def _history(panel: pd.DataFrame) -> dict[tuple[int, int], Any]:
    """(sid, year) → the row, for the Pedra/INDE history columns of later sheets."""
    return {(int(r.sid), int(r.ano)): r for r in _records(panel)}


def _past_pedra(history: dict[tuple[int, int], Any], sid: int, year: int, sheet: int) -> Cell:
    past = history.get((sid, year))
    if past is None or past.tipo != "regular":
        return "" if sheet == 2024 and year >= 2022 else None
    if past.quirk in ("sem_avaliacao", "ips_na"):
        return "#N/A"
    if past.quirk == "div0":
        return "#DIV/0!"
    return _pedra_sheet(past.pedra, year)


def _past_inde(history: dict[tuple[int, int], Any], sid: int, year: int, sheet: int) -> Cell:
    past = history.get((sid, year))
    if past is None or past.tipo != "regular":
        return "" if sheet == 2024 else None
    if past.quirk in ("sem_avaliacao", "ips_na", "div0"):
        return "#N/A"
    return _inde_cell(past.inde, year, sheet)


def _inde_cell(inde: float, year: int, sheet: int) -> float | None:
    """INDE as each sheet writes it: 2022 with three decimals in its own and the 2023 sheet,
    2023 with nine, 2024 at full precision."""
    if year == 2022 and sheet <= 2023:
        return _num(inde, LINK_ROUNDING)
    return _num(inde, 9 if year == 2023 else None)


def _sheet_2022(cal: Calibration, r: Any, history: dict[tuple[int, int], Any]) -> list[Cell]:
    sid = int(r.sid)
    avaliadores: list[Cell] = []
    for i in range(4):
        present = i < r.n_aval
        avaliadores += [
            f"Avaliador-{int(r.avaliador[i])}" if present else None,
            RECOMENDACOES[r.rec[i]] if present else None,
        ]
    return [
        f"RA-{int(r.ra)}",
        str(int(r.fase)),
        r.turma,
        f"Aluno-{int(r.ra)}",
        int(r.nascimento),
        int(r.idade),
        "Menina" if r.feminino else "Menino",
        int(r.ingresso),
        _institution(cal, "2022", r.u_instituicao),
        _past_pedra(history, sid, 2020, 2022),
        _past_pedra(history, sid, 2021, 2022),
        r.pedra,
        _num(r.inde, LINK_ROUNDING),
        int(r.cg),
        int(r.cf),
        int(r.ct),
        int(r.n_aval),
        *avaliadores,
        _num(r.iaa, 1),
        _num(r.ieg, 1),
        _num(r.ips, 1),
        REC_PSICOLOGIA[r.rec_psico],
        _num(r.ida, 1),
        _num(r.nota_mat, 1),
        _num(r.nota_port, 1),
        _num(r.nota_ing, 1),
        "Sim" if r.indicado else "Não",
        "Sim" if r.pv else "Não",
        _num(r.ipv, LINK_ROUNDING),
        _num(r.ian),
        NIVEL_IDEAL[2022][r.fase_ideal],
        int(r.defasagem),
        *(_destaque(DESTAQUE_2022[k], getattr(r, k)) for k in ("ieg", "ida", "ipv")),
    ]


def _fase_label(r: Any, year: int) -> tuple[Cell, Cell]:
    """(Fase, Turma) cells: `ALFA`/`FASE n` + `3B` in 2023, `ALFA`/`3B` + `3B` in 2024."""
    if r.tipo == "placeholder":
        return 9, 9
    if r.fase == 0:
        group = "G0/G1" if r.idade <= 8 else "G2/G3"
        return "ALFA", f"ALFA {r.turma} - {group}"
    combined = f"{int(r.fase)}{r.turma}"
    return (f"FASE {int(r.fase)}" if year == 2023 else combined), combined


def _missing_inde(r: Any, year: int) -> str | None:
    """The error cell the real sheets hold in INDE/Pedra for rows without an evaluation."""
    if r.tipo == "placeholder":
        return "INCLUIR"
    if r.tipo != "regular":
        return "#N/A" if year == 2023 else "#DIV/0!"
    return {"sem_avaliacao": "#N/A", "ips_na": "#N/A", "div0": "#DIV/0!"}.get(r.quirk)


def _later_indicators(r: Any, year: int) -> dict[str, Cell]:
    """IAA..IPV and the grades of the 2023/2024 sheets, with their error cells."""
    empty = "" if year == 2024 else None
    iaa = _num(r.iaa)
    ing = _num(r.nota_ing, 1)
    cells: dict[str, Cell] = {
        "iaa": round(iaa + IAA_ARTEFACT_2024, 3) if year == 2024 and iaa is not None else iaa,
        "ieg": _num(r.ieg),
        "ips": _num(r.ips),
        "ipp": _num(r.ipp),
        "ida": _num(r.ida, 2),
        "ipv": _num(r.ipv),
        "mat": _num(r.nota_mat, 1),
        "por": _num(r.nota_port, 1),
        "ing": empty if ing is None else ing,
    }
    if r.tipo != "regular":  # phase 8 and placeholders: not evaluated
        cells.update(iaa=empty, ips="#N/A", ipp="#N/A", ipv="#N/A", mat=empty, por=empty, ing=empty)
        if year == 2023:
            cells.update(ieg=None, ida=None)
        else:
            cells.update(ida="#DIV/0!", ieg=0.0 if r.tipo == "placeholder" else cells["ieg"])
    elif r.quirk == "sem_avaliacao":
        cells.update(ieg=None, ida=None, ipp="#N/A", ipv="#N/A", mat=None, por=None, ing=None)
    elif r.quirk == "ips_na":
        cells["ips"] = "#N/A"
    elif r.quirk == "div0":
        cells["ida"] = "#DIV/0!"
    return cells


def _later_evaluators(r: Any, year: int) -> list[Cell]:
    """Nº Av, then the Avaliador/Rec Av columns (recommendations are empty after 2022)."""
    regular = r.tipo == "regular"
    n_aval = int(r.n_aval) if regular else 0
    cells: list[Cell] = [n_aval if regular or year == 2024 else None]
    for i in range(4 if year == 2023 else 6):
        cells.append(f"Avaliador-{int(r.avaliador[i])}" if i < n_aval else None)
        if i < 4 and (year == 2023 or i < 2):
            cells.append(None)
    return cells


def _later_birth(r: Any, year: int) -> tuple[Cell, Cell]:
    """Data de Nasc and Idade; 2023 mixes date cells with `m/d/yyyy` text and stores some
    ages as dates (1900-01-11 means 11)."""
    born = dt.datetime(int(r.nascimento), 1, 1) + dt.timedelta(days=int(r.nascimento_dia) - 1)
    idade = int(r.idade)
    if year != 2023:
        return born, idade
    data: Cell = f"{born.month}/{born.day}/{born.year}" if r.data_como_texto else born
    age: Cell = dt.datetime(1900, 1, idade) if r.idade_como_data and 0 < idade <= 31 else idade
    return data, age


def _rule_thresholds(panel: pd.DataFrame) -> dict[int, float]:
    """The PV rule per later year: mean + 1 SD (ddof=1) of the assessed students' IPV."""
    thresholds = {}
    for year in XLSX_YEARS[1:]:
        rows = panel[(panel["ano"] == year) & (panel["tipo"] == "regular") & panel["in_xlsx"]]
        rows = rows[rows["quirk"] != "sem_avaliacao"]
        ipv = pd.to_numeric(rows["ipv"], errors="coerce")
        ipv = ipv[ipv > 0]
        thresholds[year] = float(ipv.mean() + ipv.std(ddof=1))
    return thresholds


def _later_pv_cell(r: Any, year: int, thresholds: dict[int, float] | None) -> str | None:
    if thresholds is None or r.tipo != "regular" or not (float(r.ipv) > 0):
        return None
    return "Sim" if float(r.ipv) >= thresholds[year] else "Não"


def _sheet_later(
    cal: Calibration,
    r: Any,
    year: int,
    history: dict[tuple[int, int], Any],
    thresholds: dict[int, float] | None = None,
) -> list[Cell]:
    sid = int(r.sid)
    fase, turma = _fase_label(r, year)
    data_nasc, idade = _later_birth(r, year)
    missing = _missing_inde(r, year)
    values = _later_indicators(r, year)
    if r.tipo == "regular":
        institution = _institution(cal, str(year), r.u_instituicao)
    else:
        institution = INSTITUICAO_FASE8[int(r.nascimento_dia) % len(INSTITUICAO_FASE8)]
    row: list[Cell] = [
        f"RA-{int(r.ra)}",
        fase,
        missing or _inde_cell(r.inde, year, year),
        missing or _pedra_sheet(r.pedra, year),
        turma,
        f"Aluno-{int(r.ra)}",
        data_nasc,
        idade,
        "Feminino" if r.feminino else "Masculino",
        int(r.ingresso) if year == 2023 else max(int(r.ingresso), 2021),  # 2024 floors at 2021
        institution,
        *(_past_pedra(history, sid, y, year) for y in range(2020, year)),
        *([None] if year == 2023 else []),  # "Pedra 23" is empty in the 2023 sheet
        _past_inde(history, sid, 2022, year),
        _past_inde(history, sid, 2023, year) if year == 2024 else None,
        None,  # Cg, Cf, Ct: only 2022 has rankings
        None,
        None,
        *_later_evaluators(r, year),
        *(values[k] for k in ("iaa", "ieg", "ips", "ipp")),
        None,  # Rec Psicologia
        values["ida"],
        *(values[k] for k in ("mat", "por", "ing")),
        None,  # Indicado
        _later_pv_cell(r, year, thresholds) if values["ipv"] != "#N/A" else None,
        values["ipv"],
        _num(r.ian),
        NIVEL_IDEAL[2023][int(r.fase_ideal)],
        int(r.defasagem),
        None,  # Destaque IEG, IDA, IPV
        None,
        None,
    ]
    if year == 2023:
        row.append(None)  # the duplicated "Destaque IPV"
    else:
        row += [f"Escola-{int(r.escola)}", "Cursando", "Cursando"]
    return row


def _render_xlsx(panel: pd.DataFrame, years: tuple[int, ...], later_pv: LaterPv) -> bytes:
    cal = _calibration()
    history = _history(panel)
    thresholds = _rule_thresholds(panel) if later_pv == "regra" else None
    workbook = Workbook(write_only=True)
    fixed = dt.datetime(2024, 1, 1)
    workbook.properties.created = fixed
    workbook.properties.modified = fixed
    workbook.properties.creator = "passos_magicos.data.synth"
    for year in years:
        sheet = workbook.create_sheet(f"PEDE{year}")
        header = SHEET_HEADERS[year]
        sheet.append(list(header))
        rows = panel[(panel["ano"] == year) & panel["in_xlsx"]]
        order = ["ra"] if year == 2022 else ["fase", "ra"]  # later sheets are sorted by phase
        for r in _records(rows.sort_values(order, kind="stable")):
            if year == 2022:
                cells = _sheet_2022(cal, r, history)
            else:
                cells = _sheet_later(cal, r, year, history, thresholds)
            if len(cells) != len(header):
                raise AssertionError(f"PEDE{year}: {len(cells)} células, {len(header)} colunas")
            sheet.append(cells)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return _normalise_zip(buffer.getvalue())


_DOC_TIME_RE: Final = re.compile(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)")


def _normalise_zip(content: bytes) -> bytes:
    """Same bytes for the same workbook: fixed entry times and document timestamps."""
    source = zipfile.ZipFile(io.BytesIO(content))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = _DOC_TIME_RE.sub(rb"\g<1>" + FIXED_DOC_TIME.encode() + rb"\g<2>", data)
            entry = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(entry, data)
    return out.getvalue()
