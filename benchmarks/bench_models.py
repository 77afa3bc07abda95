"""Model quality on the real data: every candidate beside the baselines, out of time
(fit 2020→2021, test 2021→2022) and with student-grouped CV. Usage: `make bench`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from passos_magicos.data.dataset import load_dataset
from passos_magicos.features import build_transitions
from passos_magicos.training.evaluation import (
    BASELINES,
    evaluate_grouped_cv,
    evaluate_out_of_time,
)
from passos_magicos.training.models import MODEL_KINDS

COLUMNS = ("roc_auc", "pr_auc", "brier", "recall_top15", "recall_top25")


def row(name: str, metrics: dict[str, float]) -> str:
    return f"| {name} | " + " | ".join(f"{metrics[c]:.3f}" for c in COLUMNS) + " |"


def main() -> None:
    data_dir = os.environ.get("PEDE_DATA_DIR")
    csv = Path(data_dir or "") / "PEDE_PASSOS_DATASET_FIAP.csv"
    if not data_dir or not csv.exists():
        sys.exit("PEDE_DATA_DIR não aponta para os arquivos reais; benchmark não executado")
    transitions = build_transitions(load_dataset([str(csv)]).table)
    header = "| modelo | " + " | ".join(COLUMNS) + " |\n|---|" + "---|" * len(COLUMNS)
    for protocol, evaluate in (
        ("fora do tempo", evaluate_out_of_time),
        ("CV agrupada por aluno", evaluate_grouped_cv),
    ):
        evaluations = {kind: evaluate(kind, transitions, 5, 42) for kind in MODEL_KINDS}
        first = next(iter(evaluations.values()))
        print(
            f"\n{protocol}: {first.description} ({first.n_test} exemplos de teste, "
            f"{first.positive_rate:.1%} com PV)"
        )
        print(header)
        for kind, evaluation in evaluations.items():
            print(row(kind, evaluation.model))
        for name, label in BASELINES.items():
            print(row(f"referência: {label}", first.baselines[name]))


if __name__ == "__main__":
    main()
