"""Model quality on the real files: the rolling-origin backtest of every candidate kind (and of
`auto`) beside the baselines, ROC-AUC per test year with its bootstrap 95 % interval, and the
paired verdict against INDE_t alone. Usage: `make bench` (needs PEDE_DATA_DIR)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from passos_magicos.data.dataset import load_dataset
from passos_magicos.features import build_transitions, cohorts
from passos_magicos.training.backtest import BASELINES, run_backtest
from passos_magicos.training.models import MODEL_KINDS
from passos_magicos.training.selection import FitCache

FILES = ("PEDE_PASSOS_DATASET_FIAP.csv", "BASE DE DADOS PEDE 2024 - DATATHON.xlsx")
REPLICATES = 1000


def main() -> None:
    data_dir = os.environ.get("PEDE_DATA_DIR")
    files = [Path(data_dir or "") / name for name in FILES]
    if not data_dir or not all(f.exists() for f in files):
        sys.exit("PEDE_DATA_DIR não aponta para os arquivos reais; benchmark não executado")
    table = load_dataset([str(f) for f in files]).table
    transitions, rosters = build_transitions(table), cohorts(table)
    cache: FitCache = {}
    results = {
        kind: run_backtest(transitions, kind, 5, 42, REPLICATES, cache, cohorts=rosters)
        for kind in (*MODEL_KINDS, "auto")
    }
    first = next(r for r in results.values() if r is not None)
    years = [y.label for y in first.years]
    print("ROC-AUC por ano de teste do backtest (IC 95%, bootstrap por aluno); veredito contra")
    print("o INDE_t sozinho pelo bootstrap pareado da diferença\n")
    print("| modelo | " + " | ".join(years) + " |\n|---|" + "---|" * len(years))
    for kind, result in results.items():
        assert result is not None
        cells = []
        for year in result.years:
            auc = year.figures()["roc_auc"]
            chosen = f" ({year.kind})" if kind == "auto" else ""
            cells.append(f"{auc.text()} {year.comparison('inde_t').verdict}{chosen}")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    for name, label in BASELINES.items():
        cells = [year.figures(name)["roc_auc"].text() for year in first.years]
        print(f"| referência: {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
