"""Benchmark: wall time and peak RSS of `passos-magicos backtest` on the real files (2020-2024,
three test years, `auto` chosen inside each year, 1,000 bootstrap replicates, logged to a fresh
embedded MLflow store). Target on the 2-core machine: ≤ 3 min and ≤ 1.5 GB. Prints the table.
Usage: `make bench` (needs PEDE_DATA_DIR)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 180.0
TARGET_RSS_MB = 1536.0
FILES = ("PEDE_PASSOS_DATASET_FIAP.csv", "BASE DE DADOS PEDE 2024 - DATATHON.xlsx")


def main() -> None:
    data_dir = os.environ.get("PEDE_DATA_DIR")
    files = [Path(data_dir or "") / name for name in FILES]
    if not data_dir or not all(f.exists() for f in files):
        sys.exit("PEDE_DATA_DIR não aponta para os arquivos reais; benchmark não executado")
    cli = Path(sys.executable).with_name("passos-magicos")
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as tmp:
        env = os.environ | {"DATA_DIR": f"{tmp}/data", "MODELS_DIR": f"{tmp}/models"}
        env.pop("MLFLOW_TRACKING_URI", None)
        start = time.perf_counter()
        result = subprocess.run(
            [str(cli), "backtest", *(a for f in files for a in ("--data", str(f)))],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if result.returncode != 0:
        sys.exit(f"backtest falhou ({result.returncode}):\n{result.stderr[-3000:]}")
    print(result.stdout)
    print("passos-magicos backtest nos arquivos reais 2020-2024")
    print(f"  tempo total (processo): {wall:.1f} s   (meta ≤ {TARGET_SECONDS:.0f} s)")
    print(f"  pico de memória (RSS):  {peak_mb:.0f} MB (meta ≤ {TARGET_RSS_MB:.0f} MB)")
    ok = wall <= TARGET_SECONDS and peak_mb <= TARGET_RSS_MB
    print("  dentro da meta" if ok else "  FORA DA META")


if __name__ == "__main__":
    main()
