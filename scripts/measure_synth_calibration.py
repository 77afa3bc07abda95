"""Measure the aggregate statistics that calibrate the synthetic PEDE generator.

Usage:
    python scripts/measure_synth_calibration.py [DATA_DIR] [--out PATH]

DATA_DIR (default: $PEDE_DATA_DIR) holds the real `PEDE_PASSOS_DATASET_FIAP.csv` and
`BASE DE DADOS PEDE 2024 - DATATHON.xlsx`. They are read with the project's own loader and never
copied: the output JSON holds only aggregates (counts, rates, means, quantiles, regression
coefficients), no record.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from passos_magicos.data.dataset import Dataset, load_dataset
from passos_magicos.data.readers import parse_file, split_fase_turma
from passos_magicos.data.schema import INDICATORS, MAX_FASE_PV, PEDRAS
from passos_magicos.data.storage import read_source
from passos_magicos.features import build_transitions
from passos_magicos.training.evaluation import evaluate_out_of_time

CSV_NAME = "PEDE_PASSOS_DATASET_FIAP.csv"
XLSX_NAME = "BASE DE DADOS PEDE 2024 - DATATHON.xlsx"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/passos_magicos/data/synth_calibration.json"

YEARS = (2020, 2021, 2022, 2023, 2024)
# Quantile levels: every 5 %, plus the tails, where a 5 % step would smear the few extreme
# values (an IPP of 0 among 7.5s) over a wide range and inflate the standard deviation.
QUANTILE_LEVELS = (
    0.0,
    0.005,
    0.01,
    0.02,
    0.03,
    *np.round(np.arange(0.05, 0.951, 0.05), 2),
    0.97,
    0.98,
    0.99,
    0.995,
    1.0,
)
ATOM_SHARE = 0.02  # a value held by at least this share of students is kept as a point mass
MAX_LEVELS = 15  # an indicator with at most this many distinct values is stored as levels
MIN_LEVEL_COUNT = 5  # rarer levels are left out (noise, and closer to single records)
MIN_CATEGORY_COUNT = 2
NORMAL = NormalDist()


# ---------------------------------------------------------------------------------------------
# Loading


def load(paths: list[Path]) -> Dataset:
    return load_dataset([str(p) for p in paths])


# ---------------------------------------------------------------------------------------------
# Helpers


def r6(value: float) -> float:
    return round(float(value), 6)


def distribution(values: pd.Series, min_count: int = 1) -> dict[str, float]:
    counts = values.dropna().astype(str).value_counts()
    counts = counts[counts >= min_count]
    return {str(k): r6(v / counts.sum()) for k, v in sorted(counts.items())}


def normal_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Per year and indicator: Φ⁻¹ of the mid-rank (ties share their average rank)."""
    out = pd.DataFrame(index=table.index)
    for name in INDICATORS:
        by_year = table.groupby("ano")[name]
        rank = by_year.rank(method="average")
        count = by_year.transform("count")
        u = ((rank - 0.5) / count).astype(float)
        out[name] = [NORMAL.inv_cdf(x) if np.isfinite(x) else np.nan for x in u]
    return out


def marginal(values: pd.Series, atoms: bool = True) -> dict[str, Any]:
    values = values.dropna().astype(float).round(4)
    counts = values.value_counts()
    entry: dict[str, Any] = {
        "n": len(values),
        "mean": r6(values.mean()),
        "sd": r6(values.std()),
        "levels_q": list(QUANTILE_LEVELS),
        "quantiles": [r6(q) for q in values.quantile(list(QUANTILE_LEVELS))],
        # Point masses: (value, share below, share at or below).
        "atoms": [
            [r6(v), r6((values < v).mean()), r6((values <= v).mean())]
            for v in sorted(counts[counts >= ATOM_SHARE * len(values)].index)
            if atoms
        ],
    }
    if len(counts) <= MAX_LEVELS:
        kept = counts[counts >= MIN_LEVEL_COUNT].sort_index()
        entry["levels"] = {
            "values": [r6(v) for v in kept.index],
            "probs": [r6(c / kept.sum()) for c in kept],
        }
    return entry


def presence(table: pd.DataFrame) -> pd.DataFrame:
    keys = set(zip(table["aluno_id"], table["ano"], strict=True))
    flags = pd.DataFrame(index=table.index)
    flags["next"] = [
        (a, y + 1) in keys for a, y in zip(table["aluno_id"], table["ano"], strict=True)
    ]
    flags["prev"] = [
        (a, y - 1) in keys for a, y in zip(table["aluno_id"], table["ano"], strict=True)
    ]
    return flags


# ---------------------------------------------------------------------------------------------
# Measurements


def measure_counts(csv_path: Path, xlsx_path: Path, both: Dataset) -> dict[str, Any]:
    """Rows per year as written in each file, and the rows the loader drops on purpose."""
    csv_rows = parse_file(read_source(str(csv_path)))[0].rows
    sheets = parse_file(read_source(str(xlsx_path)))
    file_rows: dict[str, int] = {}
    phase8: dict[str, int] = {}
    placeholder: dict[str, int] = {}
    junk: dict[str, int] = {}
    unevaluated: dict[str, int] = {}
    for csv_year in (2020, 2021, 2022):
        rows = csv_rows[csv_rows["ano"] == csv_year]
        year = str(csv_year)
        file_rows[f"csv-{year}"] = len(rows)
        phase8[f"csv-{year}"] = int((rows["fase"] == 8).sum())
        junk[f"csv-{year}"] = int(rows["_junk"].sum())
    for sheet in sheets:
        rows = sheet.rows
        year = str(int(rows["ano"].iloc[0]))
        file_rows[f"xlsx-{year}"] = len(rows)
        phase8[f"xlsx-{year}"] = int((rows["fase"] == 8).sum())
        placeholder[f"xlsx-{year}"] = int((rows["fase"] > 8).sum())
        regular = rows["fase"] <= MAX_FASE_PV
        no_evaluation = rows["inde"].isna() & rows["ipv"].isna()
        unevaluated[f"xlsx-{year}"] = int((regular & no_evaluation).sum())
    csv_students = int(csv_rows.loc[~csv_rows["_junk"], "aluno_id"].nunique()) + int(
        csv_rows["_junk"].sum()
    )
    csv_2022 = int(((both.table["ano"] == 2022) & both.table["origem"].ne("xlsx-2022")).sum())
    return {
        "csv_students": csv_students,
        "file_rows": file_rows,
        "regular_rows": {str(k): int(v) for k, v in both.report.rows_by_year.items()},
        "phase8_rows": phase8,
        "placeholder_rows": placeholder,
        "junk_rows": junk,
        "unevaluated_rows": unevaluated,
        "csv_2022_not_in_xlsx": csv_2022 - both.report.linked_students,
    }


def measure_indicators(table: pd.DataFrame, z: pd.DataFrame) -> dict[str, Any]:
    marginals: dict[str, Any] = {}
    correlation: dict[str, Any] = {}
    for year in YEARS:
        rows = table["ano"] == year
        # No point masses for IPV: the PV threshold pins its quantile function instead.
        marginals[str(year)] = {
            name: marginal(table.loc[rows, name], atoms=name != "ipv") for name in INDICATORS
        }
        complete = z.loc[rows, list(INDICATORS)].dropna()
        correlation[str(year)] = np.round(np.corrcoef(complete.to_numpy().T), 6).tolist()
    return {"marginals": marginals, "correlation": correlation}


def measure_dynamics(table: pd.DataFrame, z: pd.DataFrame) -> dict[str, Any]:
    """VAR(1) on normal scores, retention model, entrants' shift, phase steps."""
    flags = presence(table)
    names = list(INDICATORS)
    scores = pd.concat([table[["aluno_id", "ano", "fase"]], z], axis=1)
    var: dict[str, Any] = {}
    pv_model: dict[str, Any] = {}
    retention: dict[str, Any] = {}
    phase_step: dict[str, Any] = {}
    for year in YEARS[:-1]:
        key = f"{year}-{year + 1}"
        now = scores[scores["ano"] == year]
        nxt = scores[scores["ano"] == year + 1]
        pairs = now.merge(nxt, on="aluno_id", suffixes=("", "_next")).dropna()
        x = pairs[names].to_numpy()
        y = pairs[[f"{n}_next" for n in names]].to_numpy()
        design = np.column_stack([np.ones(len(x)), x])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        resid = y - design @ coef
        var[key] = {
            "n": len(pairs),
            "intercept": np.round(coef[0], 6).tolist(),
            "A": np.round(coef[1:].T, 6).tolist(),  # z_next = intercept + A @ z + e
            "sigma": np.round(np.cov(resid.T, ddof=design.shape[1]), 6).tolist(),
        }
        # Which side of the PV threshold next year's IPV falls on, given this year's scores: the
        # real top of IPV is more predictable than a Gaussian VAR alone implies (2021 → 2022).
        labelled = now.merge(table.loc[table["ano"] == year + 1, ["aluno_id", "pv"]], on="aluno_id")
        labelled = labelled.dropna(subset=[*names, "pv"])
        if len(labelled):
            model = LogisticRegression(C=1.0, max_iter=5000)
            model.fit(labelled[names].to_numpy(), labelled["pv"].astype(bool).to_numpy())
            pv_model[key] = {
                "n": len(labelled),
                "intercept": r6(model.intercept_[0]),
                "coef": [r6(b) for b in model.coef_[0]],
            }
        step = (pairs["fase_next"] - pairs["fase"]).astype(int)
        phase_step[key] = distribution(step)

        current = now.join(flags["next"]).dropna(subset=names)
        onehot = np.eye(MAX_FASE_PV + 1)[current["fase"].astype(int).to_numpy()]
        design = np.column_stack([onehot, current[names].to_numpy()])
        model = LogisticRegression(C=10.0, fit_intercept=False, max_iter=5000)
        model.fit(design, current["next"].to_numpy())
        retention[key] = {
            "rate": r6(current["next"].mean()),
            "by_fase": [r6(b) for b in model.coef_[0][: MAX_FASE_PV + 1]],
            "coef": [r6(b) for b in model.coef_[0][MAX_FASE_PV + 1 :]],
        }

    entrant_shift: dict[str, list[float]] = {}
    entrant_fase: dict[str, dict[str, float]] = {}
    entrant_lag: dict[str, dict[str, float]] = {}
    entrant_pv: dict[str, float] = {}
    for year in YEARS:
        rows = (table["ano"] == year) & ~flags["prev"]
        entrant_fase[str(year)] = distribution(table.loc[rows, "fase"])
        if year > YEARS[0]:
            entrant_shift[str(year)] = [r6(z.loc[rows, n].mean()) for n in names]
            labels = table.loc[rows, "pv"].dropna()
            if len(labels):
                entrant_pv[str(year)] = r6(labels.astype(bool).mean())
            # 2024 floors `Ano ingresso` at 2021, so its lags are partly an artefact.
            lag = (year - table.loc[rows, "ano_ingresso"]).clip(0, 8)
            entrant_lag[str(year)] = distribution(lag, MIN_CATEGORY_COUNT)
    return {
        "var": var,
        "pv_model": pv_model,
        "retention": retention,
        "phase_step": phase_step,
        "entrant_z_shift": entrant_shift,
        "entrant_pv_rate": entrant_pv,
        "entrant_fase": entrant_fase,
        "entrant_entry_lag": entrant_lag,
    }


def measure_attributes(table: pd.DataFrame, csv_path: Path, xlsx_path: Path) -> dict[str, Any]:
    first_2020 = table[table["ano"] == 2020]
    ian_level = table["ian"].astype(float)
    age_gap = (table["idade"] - table["fase"]).astype("Int64").clip(6, 14)
    attributes: dict[str, Any] = {
        "anos_pm_2020": distribution(first_2020["anos_pm"]),
        "feminino": r6((table.drop_duplicates("aluno_id")["genero"] == "Feminino").mean()),
        "idade_menos_fase_by_ian": {
            str(level): distribution(age_gap[ian_level == level], MIN_CATEGORY_COUNT)
            for level in (2.5, 5.0, 10.0)
        },
        "defasagem_by_ian": {
            str(level): distribution(table.loc[ian_level == level, "defasagem"], MIN_CATEGORY_COUNT)
            for level in (2.5, 5.0, 10.0)
        },
        "turma": {
            str(y): distribution(table.loc[table["ano"] == y, "turma"], MIN_CATEGORY_COUNT)
            for y in YEARS
        },
    }
    # Raw institution labels (what each file writes), regular students only.
    wide = pd.read_csv(csv_path, sep=";", dtype=str)
    phase_2020 = wide["FASE_TURMA_2020"].str.extract(r"^(\d)")[0]
    labels: dict[str, Any] = {
        "2020": distribution(
            wide.loc[phase_2020.notna() & (phase_2020 != "8"), "INSTITUICAO_ENSINO_ALUNO_2020"],
            MIN_CATEGORY_COUNT,
        ),
        "2020-fase8": distribution(
            wide.loc[phase_2020 == "8", "INSTITUICAO_ENSINO_ALUNO_2020"], MIN_CATEGORY_COUNT
        ),
        "2021": distribution(wide["INSTITUICAO_ENSINO_ALUNO_2021"], MIN_CATEGORY_COUNT),
    }
    sheets = pd.read_excel(xlsx_path, sheet_name=None, dtype=str)
    for name, frame in sheets.items():
        fase, _, _ = split_fase_turma(frame["Fase"].astype("string"))
        regular = (fase <= MAX_FASE_PV).fillna(False).astype(bool)
        labels[str(name)[-4:]] = distribution(
            frame.loc[regular, "Instituição de ensino"], MIN_CATEGORY_COUNT
        )
    attributes["instituicao"] = labels
    return attributes


def measure_labels(table: pd.DataFrame) -> dict[str, Any]:
    thresholds: dict[str, float] = {}
    rates: dict[str, float] = {}
    cutoffs: dict[str, list[float]] = {}
    for year in YEARS:
        rows = table[table["ano"] == year]
        pv = rows["pv"]
        if pv.notna().any():
            thresholds[str(year)] = round(float(rows.loc[pv == True, "ipv"].min()), 3)  # noqa: E712
            rates[str(year)] = r6(pv.dropna().astype(bool).mean())
        bands = []
        for lower, upper in itertools.pairwise(PEDRAS):
            top = rows.loc[rows["pedra"] == lower, "inde"].max()
            bottom = rows.loc[rows["pedra"] == upper, "inde"].min()
            bands.append(round(float(top + bottom) / 2, 4))
        cutoffs[str(year)] = bands
    return {"pv_threshold": thresholds, "pv_rate": rates, "pedra_cutoffs": cutoffs}


def measure_reference(csv_only: Dataset, both: Dataset) -> dict[str, Any]:
    """Figures the synthetic data is compared against (reports and the real-data test)."""
    transitions = build_transitions(csv_only.table)
    frame = transitions.frame
    ipv_auc = {
        str(year): r6(roc_auc_score(group["pv_proximo"], group["ipv"]))
        for year, group in frame.groupby("ano_alvo")
    }
    oot = {
        kind: r6(evaluate_out_of_time(kind, transitions, 5, 42).model["roc_auc"])
        for kind in ("logistic_regression", "random_forest")
    }
    return {
        "csv_rows_by_year": {str(k): v for k, v in csv_only.report.rows_by_year.items()},
        "rows_by_year": {str(k): v for k, v in both.report.rows_by_year.items()},
        "linked_students": both.report.linked_students,
        "transitions_by_label_year": {
            str(k): int(v) for k, v in frame["ano_alvo"].value_counts().sort_index().items()
        },
        "ipv_t_pv_next_auc": ipv_auc,
        "oot_roc_auc": oot,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", default=os.environ.get("PEDE_DATA_DIR"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not args.data_dir:
        parser.error("informe a pasta dos arquivos reais (argumento ou PEDE_DATA_DIR)")
    data_dir = Path(args.data_dir)
    csv_path, xlsx_path = data_dir / CSV_NAME, data_dir / XLSX_NAME
    csv_only = load([csv_path])
    both = load([csv_path, xlsx_path])
    table = both.table.copy()
    for name in ("inde", *INDICATORS):
        table[name] = table[name].astype(float)
    z = normal_scores(table)

    calibration: dict[str, Any] = {
        "about": (
            "Aggregate statistics of the real PEDE files (2020-2024) measured by "
            "scripts/measure_synth_calibration.py; no record is stored here."
        ),
        "indicators_order": list(INDICATORS),
        "counts": measure_counts(csv_path, xlsx_path, both),
        **measure_indicators(table, z),
        **measure_labels(table),
        **measure_dynamics(table, z),
        "attributes": measure_attributes(table, csv_path, xlsx_path),
        "reference": measure_reference(csv_only, both),
    }
    args.out.write_text(json.dumps(calibration, indent=1, ensure_ascii=False) + "\n")
    sys.stdout.write(f"calibration written to {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
