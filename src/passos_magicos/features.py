"""Model inputs from the canonical table, the t → t+1 transitions, and the leakage guard.

A row of model input describes one student at cycle t using only what is known at t: the
indicators and PV of t, phase, age, years in the programme, and the values of t−1 (from which
the pipeline derives changes). The label is PV of t+1. Nothing of t+1 is a feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np

if TYPE_CHECKING:  # pandas loads lazily: the monitoring job only needs the names below
    import pandas as pd

from passos_magicos.data.schema import INDICATORS

CURRENT_NUMERIC: Final = ("fase", "idade", "anos_pm", "inde", *INDICATORS, "pv")
HISTORY_FIELDS: Final = ("inde", *INDICATORS, "pv")
PREVIOUS_NUMERIC: Final = tuple(f"{name}_anterior" for name in HISTORY_FIELDS)
CATEGORICAL: Final = ("pedra",)

MODEL_INPUTS: Final = (*CURRENT_NUMERIC, *PREVIOUS_NUMERIC, *CATEGORICAL)
"""Raw canonical fields the registered model takes (preprocessing lives inside the model)."""

NUMERIC_INPUTS: Final = (*CURRENT_NUMERIC, *PREVIOUS_NUMERIC)

GROUP_ATTRIBUTES: Final = ("genero", "instituicao")
"""Attributes of cycle t that travel with the transitions for the fairness report (with `fase`
and `anos_pm`, which are inputs) and are never model inputs: `check_leakage` refuses them."""

LABEL: Final = "pv_proximo"
LABEL_ORIGIN: Final = "pv_proximo_origem"  # `oficial` or `derivado` (the IPV rule)
KEY_COLUMNS: Final = ("aluno_id", "ano")
# Columns that describe cycle t+1: never allowed among the features.
FUTURE_SUFFIXES: Final = ("_proximo", "_alvo", "_seguinte", "_t1")


class LeakageError(ValueError):
    """Training stopped because a feature carries the answer (message in pt-BR)."""


def model_frame(table: pd.DataFrame) -> pd.DataFrame:
    """One row per student-year with the model inputs (t) and the previous cycle's values."""
    current = table[[*KEY_COLUMNS, *CURRENT_NUMERIC, *CATEGORICAL]].copy()
    current["pv"] = current["pv"].astype("Float64")
    previous = table[["aluno_id", "ano", *HISTORY_FIELDS]].copy()
    previous["pv"] = previous["pv"].astype("Float64")
    previous["ano"] = previous["ano"] + 1
    previous = previous.rename(columns={name: f"{name}_anterior" for name in HISTORY_FIELDS})
    frame = current.merge(previous, on=list(KEY_COLUMNS), how="left", validate="one_to_one")
    numeric = list(NUMERIC_INPUTS)
    frame[numeric] = frame[numeric].astype("float64")
    frame["pedra"] = frame["pedra"].astype(object).where(frame["pedra"].notna(), None)
    return frame[[*KEY_COLUMNS, *MODEL_INPUTS]]


@dataclass(frozen=True)
class TransitionSet:
    """Labelled transitions t → t+horizon; `frame` holds keys, inputs, `ano_alvo` and the label."""

    frame: pd.DataFrame
    features: tuple[str, ...]

    @property
    def X(self) -> pd.DataFrame:  # noqa: N802 - ML convention
        return self.frame[list(self.features)]

    @property
    def y(self) -> np.ndarray:
        return self.frame[LABEL].to_numpy(dtype=int)

    @property
    def groups(self) -> np.ndarray:
        return self.frame["aluno_id"].to_numpy()

    @property
    def years(self) -> list[int]:
        """Label years (t+1) present, in order."""
        return sorted(int(y) for y in self.frame["ano_alvo"].unique())

    def __len__(self) -> int:
        return len(self.frame)

    def subset(self, mask: np.ndarray) -> TransitionSet:
        return TransitionSet(self.frame[mask].reset_index(drop=True), self.features)

    def before(self, year: int) -> TransitionSet:
        """Transitions whose label year is earlier than `year` (what was known before it)."""
        return self.subset((self.frame["ano_alvo"] < year).to_numpy())

    def in_year(self, year: int) -> TransitionSet:
        return self.subset((self.frame["ano_alvo"] == year).to_numpy())

    def coverage(self) -> dict[int, dict[str, float]]:
        """Share of known values of each input, per label year (t+1)."""
        known = self.X.notna().groupby(self.frame["ano_alvo"]).mean()
        return {
            int(str(year)): {str(name): round(float(v), 4) for name, v in row.items()}
            for year, row in known.iterrows()
        }

    def absent_inputs(self) -> dict[int, list[str]]:
        """Inputs with no value at all in some label year's cycle t (the previous-cycle fields
        of the first cycle aside: nothing precedes it)."""
        first = min(self.years) if len(self) else None
        absent: dict[int, list[str]] = {}
        for year, shares in self.coverage().items():
            names = [
                n
                for n, share in shares.items()
                if share == 0 and not (year == first and n.endswith("_anterior"))
            ]
            if names:
                absent[year] = names
        return absent

    def label_origins(self) -> dict[str, int]:
        """How many labels are official and how many derived by the IPV rule."""
        counts = self.frame[LABEL_ORIGIN].fillna("desconhecida").value_counts()
        return {str(k): int(v) for k, v in counts.items()}


def build_transitions(
    table: pd.DataFrame,
    features: Sequence[str] = MODEL_INPUTS,
    horizon: int = 1,
) -> TransitionSet:
    """Pair each student's cycle t with the PV of cycle t+horizon (same dataset id)."""
    inputs = model_frame(table)
    target = table[["aluno_id", "ano", "pv", "pv_origem", "ipv", "inde"]].copy()
    target = target.rename(
        columns={
            "pv": LABEL,
            "pv_origem": LABEL_ORIGIN,
            "ipv": "ipv_proximo",
            "inde": "inde_proximo",
        }
    )
    target["ano_alvo"] = target["ano"]
    target["ano"] = target["ano"] - horizon
    frame = inputs.merge(target, on=list(KEY_COLUMNS), how="inner", validate="one_to_one")
    attributes = [*KEY_COLUMNS, *(c for c in GROUP_ATTRIBUTES if c in table)]
    frame = frame.merge(table[attributes], on=list(KEY_COLUMNS), how="left", validate="one_to_one")
    frame = frame[frame[LABEL].notna()].copy()
    frame[LABEL] = frame[LABEL].astype(bool).astype(int)
    frame = frame.sort_values(["ano", "aluno_id"], kind="stable").reset_index(drop=True)
    return TransitionSet(frame=frame, features=tuple(features))


def scoring_frame(table: pd.DataFrame, year: int | None = None) -> pd.DataFrame:
    """Model inputs of every student of one cycle (default: the latest), labels or not."""
    frame = model_frame(table)
    year = int(frame["ano"].max()) if year is None else year
    return frame[frame["ano"] == year].reset_index(drop=True)


def cohorts(table: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """Model inputs of every student of each cycle (what a roster of that cycle scores)."""
    frame = model_frame(table)
    return {int(str(year)): rows.reset_index(drop=True) for year, rows in frame.groupby("ano")}


def single_feature_auc(values: pd.Series, y: np.ndarray, min_rows: int = 30) -> float | None:
    """How well one feature alone separates the label (direction-free ROC-AUC)."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score  # training-only; keeps this module light

    numeric = pd.to_numeric(values, errors="coerce") if values.dtype == object else values
    present = numeric.notna().to_numpy()
    labels = y[present]
    if present.sum() < min_rows or len(np.unique(labels)) < 2:
        return None
    auc = float(roc_auc_score(labels, numeric[present].astype(float)))
    return max(auc, 1.0 - auc)


def check_leakage(transitions: TransitionSet, auc_limit: float) -> dict[str, float]:
    """Stop training when a feature comes from t+1, is a group attribute (GROUP_ATTRIBUTES), or
    alone separates the label almost perfectly.

    Returns each feature's single-feature ROC-AUC (for the run log) when nothing is wrong.
    """
    future = [
        f
        for f in transitions.features
        if f in (LABEL, LABEL_ORIGIN) or f.endswith(FUTURE_SUFFIXES) or "_proximo" in f
    ]
    sensitive = [f for f in transitions.features if f in GROUP_ATTRIBUTES]
    if sensitive:
        raise LeakageError(
            "atributos de grupo entre as features: "
            + ", ".join(sensitive)
            + ". Eles servem só ao relatório de equidade e nunca são entradas do modelo."
        )
    if future:
        raise LeakageError(
            "vazamento de informação: colunas do ciclo t+1 entre as features: "
            + ", ".join(future)
            + ". Só é permitido usar o que se sabe no ciclo t."
        )
    aucs: dict[str, float] = {}
    for feature in transitions.features:
        auc = single_feature_auc(transitions.frame[feature], transitions.y)
        if auc is not None:
            aucs[feature] = auc
    suspicious = {f: a for f, a in aucs.items() if a >= auc_limit}
    if suspicious:
        shown = ", ".join(f"{f} (ROC-AUC {a:.3f})" for f, a in sorted(suspicious.items()))
        raise LeakageError(
            f"vazamento de informação: a feature sozinha separa o rótulo quase perfeitamente: "
            f"{shown} (limite {auc_limit}). Isso é uma consulta à resposta, não uma previsão; "
            "por exemplo, o PV do ano é um limiar sobre o IPV do mesmo ano."
        )
    return aucs
