"""What was tried to beat INDE_t alone, measured only on the design years (2021→22 and 2022→23;
2023→24 is the held-out year the README reports, never tuned on). Every variant is fitted on the
transitions before the test year, as the backtest does; ROC-AUC with its bootstrap 95 % interval
and the paired difference against INDE_t alone. Usage: `make bench` (needs PEDE_DATA_DIR)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from passos_magicos.data.dataset import load_dataset
from passos_magicos.data.schema import INDICATORS
from passos_magicos.features import LABEL, build_transitions
from passos_magicos.performance import ScoredSet
from passos_magicos.training.models import COMPACT_C, COMPACT_FEATURES, build_estimator

FILES = ("PEDE_PASSOS_DATASET_FIAP.csv", "BASE DE DADOS PEDE 2024 - DATATHON.xlsx")
DESIGN_YEARS = (2022, 2023)
REPLICATES = 1000
COMPACT = list(COMPACT_FEATURES)


def _enrich(table: pd.DataFrame) -> pd.DataFrame:
    """Candidate inputs the product does not ship: grades, within-year and within-phase
    standardisation, the cycle before last, and the standardised IPV of t+1 (aux. target)."""
    frame = table.copy()
    numeric = ["inde", *INDICATORS, "nota_mat", "nota_por", "defasagem", "fase"]
    frame[numeric] = frame[numeric].astype("float64")
    for column in ("inde", "ipv", "ida", "ieg"):
        by_year = frame.groupby("ano")[column]
        frame[f"{column}_z"] = (frame[column] - by_year.transform("mean")) / by_year.transform(
            "std"
        )
        by_phase = frame.groupby(["ano", "fase"])[column]
        frame[f"{column}_zf"] = (frame[column] - by_phase.transform("mean")) / by_phase.transform(
            "std"
        )
    keys = ["aluno_id", "ano"]
    earlier = frame[[*keys, "inde", "ipv"]].copy()
    earlier["ano"] += 2
    frame = frame.merge(
        earlier.rename(columns={"inde": "inde_t2", "ipv": "ipv_t2"}), on=keys, how="left"
    )
    later = frame[[*keys, "ipv_z"]].copy()
    later["ano"] -= 1
    return frame.merge(later.rename(columns={"ipv_z": "ipv_z_proximo"}), on=keys, how="left")


def _logistic(columns: list[str]) -> Callable[[], Pipeline]:
    def make() -> Pipeline:
        return make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(C=COMPACT_C, max_iter=3000),
        )

    make.columns = columns  # type: ignore[attr-defined]
    return make


VARIANTS: dict[str, list[str]] = {
    "compact_logistic (o produto)": COMPACT,
    "+ notas (matemática, português) e defasagem": [*COMPACT, "nota_mat", "nota_por", "defasagem"],
    "+ trajetória de três ciclos (t−1 e t−2)": [
        *COMPACT,
        "inde_anterior",
        "ipv_anterior",
        "inde_t2",
        "ipv_t2",
    ],
    "padronizado dentro do ano": ["inde_z", "ipv_z", "ida_z", "ieg_z", "pv"],
    "padronizado dentro da fase e do ano": ["inde_zf", "ipv_zf", "ida_z", "ieg_z", "pv"],
}
PRODUCT_KINDS = ("logistic_regression", "random_forest", "hist_gradient_boosting")


def _scores(frame: pd.DataFrame, test_year: int) -> dict[str, np.ndarray]:
    past, test = frame[frame["ano_alvo"] < test_year], frame[frame["ano_alvo"] == test_year]
    y = past[LABEL].to_numpy()
    out: dict[str, np.ndarray] = {}
    inde = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression())
    out["INDE_t sozinho"] = inde.fit(past[["inde"]], y).predict_proba(test[["inde"]])[:, 1]
    for name, columns in VARIANTS.items():
        usable = [c for c in columns if past[c].notna().any()]
        model = _logistic(usable)().fit(past[usable], y)
        out[name] = model.predict_proba(test[usable])[:, 1]
    for kind in PRODUCT_KINDS:
        model = build_estimator(kind, 42).fit(past, y)
        out[f"{kind} (candidato do auto)"] = model.predict_proba(test)[:, 1]
    # Auxiliary regression: predict the standardised IPV of t+1, then P(z > 1) (the PV rule).
    known = past["ipv_z_proximo"].notna()
    ridge = make_pipeline(SimpleImputer(), StandardScaler(), Ridge(alpha=10.0))
    ridge.fit(past.loc[known, COMPACT], past.loc[known, "ipv_z_proximo"])
    residual = float(
        np.std(past.loc[known, "ipv_z_proximo"] - ridge.predict(past.loc[known, COMPACT]))
    )
    out["regressão auxiliar no IPV_{t+1} padronizado"] = norm.sf(
        (1.0 - ridge.predict(test[COMPACT])) / residual
    )
    return out


def main() -> None:
    data_dir = os.environ.get("PEDE_DATA_DIR")
    files = [Path(data_dir or "") / name for name in FILES]
    if not data_dir or not all(f.exists() for f in files):
        sys.exit("PEDE_DATA_DIR não aponta para os arquivos reais; benchmark não executado")
    table = load_dataset([str(f) for f in files]).table
    enriched = _enrich(table)
    transitions = build_transitions(table)
    extra = [c for c in enriched.columns if c not in transitions.frame.columns or c == "aluno_id"]
    frame = transitions.frame.merge(enriched[[*extra, "ano"]], on=["aluno_id", "ano"], how="left")
    results = {}
    for year in DESIGN_YEARS:
        scores = _scores(frame, year)
        y = frame.loc[frame["ano_alvo"] == year, LABEL].to_numpy()
        results[year] = (ScoredSet(y, scores, REPLICATES, seed=year), list(scores))
    names = results[DESIGN_YEARS[0]][1]
    print("Anos de projeto (o 2023→2024 fica de fora): ROC-AUC [IC 95%] e diferença pareada")
    print("contra o INDE_t sozinho\n")
    years = " | ".join(f"{y - 1}→{y}" for y in DESIGN_YEARS)
    print(f"| variante | {years} |\n|---|" + "---|" * len(DESIGN_YEARS))
    for name in names:
        cells = []
        for year in DESIGN_YEARS:
            scored = results[year][0]
            auc = scored.figures(name)["roc_auc"]
            if name == "INDE_t sozinho":
                cells.append(auc.text())
                continue
            diff = scored.compare(name, "INDE_t sozinho").difference
            cells.append(f"{auc.text()}; {diff.value:+.3f} [{diff.low:+.3f}; {diff.high:+.3f}]")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
