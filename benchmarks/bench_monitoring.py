"""Benchmark: the monitoring job over 1,000,000 logged predictions, and a cross-check of its
per-feature drift flags against Evidently's DataDriftPreset.

1. Writes a prediction log of 1,000,000 lines in the API's exact format (synthetic students
   scored by a real model, in rotated files), then runs the real CLI, `passos-magicos monitor
   --window 1000000 --no-alerts`, in a subprocess: wall time and the child's peak RSS.
   Target on the 2-core machine: ≤ 10 s and ≤ 1 GB.
2. On the same reference and current frames (an unshifted and a shifted case), which features
   our drift check flags and which Evidently flags, and the time ratio. Evidently runs in its
   own environment (benchmarks/.venv-evidently): the product does not depend on it.

Usage: `make bench`, or `.venv/bin/python benchmarks/bench_monitoring.py [--lines N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from passos_magicos.data.dataset import SourceFile, build_dataset
from passos_magicos.data.synth import render_synthetic
from passos_magicos.features import CATEGORICAL, MODEL_INPUTS, build_transitions
from passos_magicos.monitoring.drift import compare
from passos_magicos.reference_profile import build_reference
from passos_magicos.serving.prediction_log import PredictionLog, PredictionRecord
from passos_magicos.training.evaluation import fit_recipe
from passos_magicos.training.models import PontoViradaClassifier

TARGET_SECONDS = 10.0
TARGET_RSS_MB = 1024.0
MODEL_NAME = "passos-magicos-ponto-virada"
VERSION = "7"
SHIFTED = ("iaa", "ida")
ROOT = Path(__file__).resolve().parent
EVIDENTLY_PYTHON = ROOT / ".venv-evidently" / "bin" / "python"


def scenario() -> tuple[PontoViradaClassifier, pd.DataFrame, pd.DataFrame]:
    """A model fitted on some synthetic students; reference rows and a pool of unseen ones."""
    content = render_synthetic(students=4000, seed=21, fmt="csv")
    transitions = build_transitions(build_dataset([SourceFile("s.csv", "s.csv", content)]).table)
    tenth = np.array([zlib.crc32(str(g).encode()) % 10 for g in transitions.groups])
    X, y, groups = transitions.X, transitions.y, transitions.groups  # noqa: N806
    fit = tenth < 2
    model, _ = fit_recipe("logistic_regression", X[fit], y[fit], groups[fit], folds=3, seed=0)
    reference = X[(tenth >= 2) & (tenth < 5)].reset_index(drop=True)
    return model, reference, X[tenth >= 5].reset_index(drop=True)


def shift(frame: pd.DataFrame) -> pd.DataFrame:
    shifted = frame.copy()
    shifted["iaa"] = (shifted["iaa"] + 2.0).clip(upper=10.0)
    shifted["ida"] = (shifted["ida"] - 2.0).clip(lower=0.0)
    return shifted


def write_log(path: Path, model: PontoViradaClassifier, pool: pd.DataFrame, lines: int) -> None:
    log = PredictionLog(path, max_bytes=250_000_000, daily=False)
    rng = np.random.default_rng(0)
    chunk = 50_000
    written = 0
    while written < lines:
        size = min(chunk, lines - written)
        rows = pool.iloc[rng.integers(0, len(pool), size)].reset_index(drop=True)
        scores = model.predict_proba(rows)
        features = rows[list(MODEL_INPUTS)].astype(object).where(rows.notna(), None)
        records: list[PredictionRecord] = []
        for i, row in enumerate(features.to_dict("records")):
            records.append(
                {
                    "ts": f"2026-11-27T{(written + i) // 3_600_000 % 24:02d}:00:00.000Z",
                    "request_id": f"bench-{written + i}",
                    "aluno_id": None,
                    "endpoint": "/predict/batch",
                    "modelo": MODEL_NAME,
                    "versao": VERSION,
                    "fonte": "mlflow",
                    "features": row,
                    "probabilidade": round(float(scores[i]), 6),
                    "pv_previsto": bool(scores[i] >= model.threshold),
                    "limiar": model.threshold,
                    "latencia_ms": 1.0,
                }
            )
        log.append(records)
        written += size
        print(f"  log: {written:,} linhas", end="\r", file=sys.stderr, flush=True)
    log.close()
    print(file=sys.stderr)


def run_job(tmp: Path, lines: int) -> dict[str, Any]:
    cli = Path(sys.executable).with_name("passos-magicos")
    env = os.environ | {
        "DATA_DIR": str(tmp / "data"),
        "MODELS_DIR": str(tmp / "models"),
        "PREDICTION_LOG_PATH": str(tmp / "logs" / "predictions.jsonl"),
        "MONITOR_REPORT_DIR": str(tmp / "logs" / "monitoring"),
        "MLFLOW_ENABLED": "false",
        "API_URL": "http://127.0.0.1:9",  # nothing listens: a finding, not a failure
        "SLACK_WEBHOOK_URL": "",
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(
        [str(cli), "monitor", "--window", str(lines), "--no-alerts"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if done.returncode != 0:
        raise SystemExit(f"monitor falhou ({done.returncode}):\n{done.stderr}")
    report_path = done.stdout.strip().splitlines()[-1].removeprefix("relatório: ")
    report: dict[str, Any] = json.loads(Path(report_path).read_text())
    return {
        "seconds": wall,
        "job_seconds": report["duracao_s"],
        "rss_mb": peak_mb if peak_mb > before / 1024 else float("nan"),
        "predictions": report["log"]["previsoes_na_janela"],
        "status": report["status"],
    }


def ours(
    reference: pd.DataFrame,
    ref_scores: np.ndarray,
    current: pd.DataFrame,
    model: PontoViradaClassifier,
) -> tuple[list[str], float]:
    """Features our check flags, and the time from the raw frames (profile + comparison)."""
    scores = model.predict_proba(current)
    start = time.perf_counter()
    profile = build_reference(reference, ref_scores, model.threshold, MODEL_NAME)
    columns = {
        name: list(current[name]) if name in CATEGORICAL else current[name].to_numpy(float)
        for name in MODEL_INPUTS
    }
    drift = compare(profile, columns, scores, scores >= model.threshold, 0.2, 0.01)
    return sorted(f.feature for f in drift.drifted), time.perf_counter() - start


def evidently(
    tmp: Path, reference: pd.DataFrame, current: pd.DataFrame, name: str
) -> dict[str, Any] | None:
    if not EVIDENTLY_PYTHON.exists():
        return None
    ref_path, cur_path, out = tmp / "ref.parquet", tmp / f"{name}.parquet", tmp / f"{name}.json"
    reference[list(MODEL_INPUTS)].to_parquet(ref_path)
    current[list(MODEL_INPUTS)].to_parquet(cur_path)
    subprocess.run(
        [
            str(EVIDENTLY_PYTHON),
            str(ROOT / "evidently" / "drift_flags.py"),
            "--reference",
            str(ref_path),
            "--current",
            str(cur_path),
            "--output",
            str(out),
            "--categorical",
            ",".join(CATEGORICAL),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--current", type=int, default=1000, help="linhas do caso de drift")
    args = parser.parse_args()

    print("Preparando modelo e dados sintéticos…", file=sys.stderr)
    model, reference, pool = scenario()
    ref_scores = model.predict_proba(reference)
    profile = build_reference(reference, ref_scores, model.threshold, MODEL_NAME)
    profile["versao"] = VERSION

    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as name:
        tmp = Path(name)
        cache = tmp / "data" / "monitoring" / "referencias" / MODEL_NAME
        cache.mkdir(parents=True)
        (cache / f"{VERSION}.json").write_text(json.dumps(profile))
        print(f"Gravando {args.lines:,} previsões no log…", file=sys.stderr)
        write_log(tmp / "logs" / "predictions.jsonl", model, pool, args.lines)
        size_mb = sum(p.stat().st_size for p in (tmp / "logs").glob("*.jsonl")) / 1e6
        job = run_job(tmp, args.lines)
        ok_time = job["seconds"] <= TARGET_SECONDS
        ok_rss = job["rss_mb"] <= TARGET_RSS_MB
        print(
            f"\nmonitor sobre {job['predictions']:,} previsões ({size_mb:.0f} MB de log): "
            f"{job['seconds']:.2f} s de parede (job {job['job_seconds']:.2f} s), "
            f"pico RSS {job['rss_mb']:.0f} MB; status {job['status']}"
        )
        print(
            f"  metas: ≤ {TARGET_SECONDS:.0f} s {'OK' if ok_time else 'NÃO ATINGIDA'}, "
            f"≤ {TARGET_RSS_MB:.0f} MB {'OK' if ok_rss else 'NÃO ATINGIDA'}"
        )

        print("\nComparação com o Evidently (DataDriftPreset), mesmas referências e janelas:")
        if not EVIDENTLY_PYTHON.exists():
            print("  ambiente do Evidently ausente: rode benchmarks/evidently/setup_env.sh")
        cases = {
            "sem_drift": pool.sample(n=args.current, random_state=1).reset_index(drop=True),
            "com_drift": shift(pool.sample(n=args.current, random_state=2).reset_index(drop=True)),
        }
        for case, current in cases.items():
            flagged, seconds = ours(reference, ref_scores, current, model)
            print(f"  {case}: nosso job marca {flagged or '—'} em {seconds * 1000:.1f} ms")
            result = evidently(tmp, reference, current, case)
            if result is None:
                continue
            theirs = sorted(c for c, v in result["columns"].items() if v["drifted"])
            print(
                f"  {case}: Evidently {result['evidently_version']} marca {theirs or '—'} "
                f"em {result['seconds'] * 1000:.1f} ms (razão Evidently/nosso "
                f"{result['seconds'] / max(seconds, 1e-9):.0f}×)"
            )
            print(f"      métodos: {sorted({v['method'] for v in result['columns'].values()})}")


if __name__ == "__main__":
    main()
