"""Benchmark: wall time and peak RSS of `passos-magicos train` on the real files (the 2020-2022
CSV and the 2022-2024 workbook: four transitions, the backtest of three years included).

Runs the real CLI in a subprocess with a fresh embedded MLflow store, reads the per-stage
timings from its `--json` summary and the child's peak RSS from the kernel. Target on the
2-core machine: ≤ 60 s and ≤ 1.5 GB. Usage: `make bench` (needs PEDE_DATA_DIR).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 60.0
TARGET_RSS_MB = 1536.0
STAGES = ("load", "features", "backtest", "fit", "report", "mlflow", "materialize")
FILES = ("PEDE_PASSOS_DATASET_FIAP.csv", "BASE DE DADOS PEDE 2024 - DATATHON.xlsx")


def _data_args(files: list[Path]) -> list[str]:
    return [arg for file in files for arg in ("--data", str(file))]


def run_train(files: list[Path], model: str) -> dict[str, object]:
    cli = Path(sys.executable).with_name("passos-magicos")
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        env = os.environ | {"DATA_DIR": f"{tmp}/data", "MODELS_DIR": f"{tmp}/models"}
        env.pop("MLFLOW_TRACKING_URI", None)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        result = subprocess.run(
            [str(cli), "train", *_data_args(files), "--model", model, "--json"],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if result.returncode != 0:
        sys.exit(f"train failed ({result.returncode}):\n{result.stderr[-3000:]}")
    summary = json.loads(result.stdout)
    return {
        "model": summary["modelo"],
        "wall_s": wall,
        # ru_maxrss of children is the max over all children so far: run one model per process.
        "peak_rss_mb": max(peak_kb, before) / 1024,
        "stages": summary["tempos_s"],
        "oot_roc_auc": summary["metricas"].get("oot_roc_auc"),
    }


def main() -> None:
    data_dir = os.environ.get("PEDE_DATA_DIR")
    files = [Path(data_dir or "") / name for name in FILES]
    if not data_dir or not all(f.exists() for f in files):
        sys.exit("PEDE_DATA_DIR não aponta para os arquivos reais; benchmark não executado")
    models = sys.argv[1:] or ["auto"]
    if len(models) > 1:  # peak RSS per run needs one process per model
        for model in models:
            subprocess.run([sys.executable, __file__, model], check=True)
        return
    figures = run_train(files, models[0])
    stages = figures["stages"]
    assert isinstance(stages, dict)
    print(f"train --model {models[0]} (escolhido: {figures['model']}) nos arquivos reais 2020-2024")
    print(f"  tempo total (processo): {figures['wall_s']:.1f} s   (meta ≤ {TARGET_SECONDS:.0f} s)")
    print(
        f"  pico de memória (RSS):  {figures['peak_rss_mb']:.0f} MB (meta ≤ {TARGET_RSS_MB:.0f} MB)"
    )
    print("  por etapa: " + ", ".join(f"{k} {stages[k]:.1f} s" for k in STAGES if k in stages))
    print(f"  ROC-AUC no ano mais recente do backtest (2023→2024): {figures['oot_roc_auc']:.3f}")
    ok = figures["wall_s"] <= TARGET_SECONDS and figures["peak_rss_mb"] <= TARGET_RSS_MB
    print("  dentro da meta" if ok else "  FORA DA META")


if __name__ == "__main__":
    main()
