"""Evidently cross-check: per-column drift flags of `DataDriftPreset` between two Parquet frames.

Runs ONLY in the separate benchmark venv (`benchmarks/.venv-evidently`, created by
`benchmarks/evidently/setup_env.sh`); `benchmarks/bench_monitoring.py` calls it as a subprocess so
the product never imports Evidently. Evidently picks each column's method and threshold by its own
defaults (nothing is configured here); the script records which ones it used.

Usage:
    benchmarks/.venv-evidently/bin/python benchmarks/evidently/drift_flags.py \
        --reference REF.parquet --current CUR.parquet --output OUT.json \
        [--columns a,b,c] [--categorical pedra] [--repeat 3] [--no-warmup] [--skip-empty]

Output (JSON):
    {"evidently_version": "0.7.23",
     "seconds": <median of the timed runs: Dataset.from_pandas + Report.run only>,
     "seconds_runs": [...],  # --repeat timed runs, after one warm-up run unless --no-warmup
     "seconds_first_run": <the first run, cold (Evidently's lazy imports)>,
     "seconds_total": <script wall time: imports, Parquet reading, warm-up, runs>,
     "n_reference": int, "n_current": int,
     "columns": {col: {"drifted": bool, "score": float | null, "method": str, "threshold": float,
                       "score_kind": "p_value" | "distance", "column_type": "num" | "cat",
                       "reference_non_null": int, "current_non_null": int}},
     "share_drifted": float, "dataset_drift": bool, "drift_share": 0.5,
     "skipped_columns": {col: reason}}

Report.run also builds the report's Plotly widgets (most of its time) and the preset computes each
column's drift more than once; that is the cost of the preset as shipped, so it is in "seconds".
"drifted" is Evidently's own verdict (its per-column test status); for p-value methods it means
score < threshold, for distances score >= threshold. Exit codes: 0 ok, 2 bad input (missing file
or column, column with no value), 1 Evidently failed.
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

EXIT_BAD_INPUT = 2
DRIFT_SHARE = 0.5  # Evidently's default share of drifted columns for dataset drift


class InputError(Exception):
    """Bad input: reported as one clear line and exit code 2 (no traceback)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", required=True, type=Path, help="Parquet de referência")
    parser.add_argument("--current", required=True, type=Path, help="Parquet atual")
    parser.add_argument("--output", required=True, type=Path, help="JSON de saída")
    parser.add_argument(
        "--columns", default="", help="colunas a comparar, separadas por vírgula (padrão: todas)"
    )
    parser.add_argument(
        "--categorical",
        default="",
        help="colunas categóricas, separadas por vírgula (colunas não numéricas já são)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="execuções cronometradas (mediana) (padrão: 3)"
    )
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="não faz a execução de aquecimento (a 1ª execução cronometrada fica fria)",
    )
    parser.add_argument(
        "--skip-empty",
        action="store_true",
        help="pula (em vez de falhar) colunas sem nenhum valor em um dos frames",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat precisa ser >= 1")
    return args


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def read_frame(path: Path, label: str) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise InputError(f"arquivo {label} não encontrado: {path}")
    try:
        return pd.read_parquet(path)
    except Exception as exc:
        raise InputError(f"não consegui ler o Parquet {label} {path}: {exc}") from exc


def prepare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    categorical: list[str],
    skip_empty: bool,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str], dict[str, str]]:
    """Select and normalise the columns: numeric -> float64 (NaN), categorical -> object (None).

    Returns (reference, current, numeric columns, categorical columns, skipped {col: reason}).
    """
    import numpy as np
    import pandas as pd

    if reference.empty or current.empty:
        raise InputError(
            f"frame vazio: referência {reference.shape[0]} linhas, atual {current.shape[0]} linhas"
        )
    wanted = columns or list(reference.columns)
    for label, frame in (("referência", reference), ("atual", current)):
        missing = [col for col in wanted if col not in frame.columns]
        if missing:
            raise InputError(f"coluna(s) ausente(s) no frame {label}: {', '.join(missing)}")
    unknown_cat = [col for col in categorical if col not in wanted]
    if unknown_cat:
        raise InputError(f"--categorical cita coluna(s) fora da comparação: {unknown_cat}")

    ref_out: dict[str, pd.Series] = {}
    cur_out: dict[str, pd.Series] = {}
    numeric: list[str] = []
    cats: list[str] = []
    skipped: dict[str, str] = {}
    for col in wanted:
        is_cat = col in categorical or not (
            pd.api.types.is_numeric_dtype(reference[col])
            and pd.api.types.is_numeric_dtype(current[col])
            and not pd.api.types.is_bool_dtype(reference[col])
        )
        pair = []
        for frame in (reference, current):
            series = frame[col]
            if is_cat:
                series = series.astype(object).where(series.notna(), None)
            else:
                series = series.astype("float64").replace([np.inf, -np.inf], np.nan)
            pair.append(series)
        empty = [
            label
            for label, series in zip(("referência", "atual"), pair, strict=True)
            if series.notna().sum() == 0
        ]
        if empty:
            reason = f"coluna '{col}' sem nenhum valor (toda NaN/None) no frame {' e '.join(empty)}"
            if not skip_empty:
                raise InputError(f"{reason}; use --skip-empty para pulá-la")
            skipped[col] = reason
            continue
        ref_out[col], cur_out[col] = pair
        (cats if is_cat else numeric).append(col)
    if not ref_out:
        raise InputError("nenhuma coluna para comparar")
    return (
        pd.DataFrame(ref_out, index=reference.index),
        pd.DataFrame(cur_out, index=current.index),
        numeric,
        cats,
        skipped,
    )


def run_evidently(
    reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], cats: list[str]
) -> tuple[dict[str, Any], float]:
    """One DataDriftPreset run with Evidently's defaults; returns (snapshot dict, seconds)."""
    from evidently.presets import DataDriftPreset

    from evidently import DataDefinition, Dataset, Report

    started = time.perf_counter()
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=cats)
    # Report.run takes (current, reference): current FIRST.
    snapshot = Report([DataDriftPreset(drift_share=DRIFT_SHARE)], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    seconds = time.perf_counter() - started
    return snapshot.dict(), seconds


def _finite_or_none(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def parse_snapshot(snapshot: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], float, bool]:
    """Per-column results, share of drifted columns and dataset drift from `Snapshot.dict()`."""
    columns: dict[str, dict[str, Any]] = {}
    share: float | None = None
    for metric in snapshot["metrics"]:
        config = metric.get("config", {})
        kind = str(config.get("type", "")).rsplit(":", 1)[-1]
        if kind == "ValueDrift":
            method = str(config["method"])
            columns[config["column"]] = {
                "drifted": None,
                "score": _finite_or_none(metric["value"]),
                "method": method,
                "threshold": float(config["threshold"]),
                "score_kind": "p_value" if "p_value" in method else "distance",
            }
        elif kind == "DriftedColumnsCount":
            share = float(metric["value"]["share"])
    if share is None:
        raise RuntimeError("o snapshot do Evidently não tem a métrica DriftedColumnsCount")

    dataset_drift: bool | None = None
    for test in snapshot["tests"]:
        params = test.get("metric_config", {}).get("params", {})
        kind = str(params.get("type", "")).rsplit(":", 1)[-1]
        failed = test["status"] == "FAIL"
        if kind == "ValueDrift" and params.get("column") in columns:
            columns[params["column"]]["drifted"] = failed
        elif kind == "DriftedColumnsCount":
            dataset_drift = failed  # its test is "share < drift_share"

    for col, result in columns.items():
        if result["drifted"] is None:  # no test result: apply the method's own rule
            score, threshold = result["score"], result["threshold"]
            if score is None:
                raise RuntimeError(f"sem veredito nem score finito do Evidently para '{col}'")
            is_p = result["score_kind"] == "p_value"
            result["drifted"] = score < threshold if is_p else score >= threshold
    if dataset_drift is None:
        dataset_drift = share >= DRIFT_SHARE
    return columns, share, dataset_drift


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Evidently's telemetry is only in its UI service; opt out anyway (this machine is offline).
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("EVIDENTLY_DISABLE_TELEMETRY", "1")
    try:
        import pandas as pd  # noqa: F401  (fail here, clearly, if the venv is wrong)

        import evidently
    except ImportError as exc:
        print(
            f"erro: {exc}. Rode com o Python de benchmarks/.venv-evidently "
            "(crie-o com benchmarks/evidently/setup_env.sh).",
            file=sys.stderr,
        )
        return 1

    try:
        reference = read_frame(args.reference, "de referência")
        current = read_frame(args.current, "atual")
        ref, cur, numeric, cats, skipped = prepare(
            reference, current, _split(args.columns), _split(args.categorical), args.skip_empty
        )
    except InputError as exc:
        print(f"erro: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    # Unless --no-warmup, the first run is a warm-up (Evidently's lazy imports): not counted.
    snapshot, first = run_evidently(ref, cur, numeric, cats)
    runs = [first] if args.no_warmup else []
    while len(runs) < args.repeat:
        snapshot, seconds = run_evidently(ref, cur, numeric, cats)
        runs.append(seconds)

    columns, share, dataset_drift = parse_snapshot(snapshot)
    for col, result in columns.items():
        result["column_type"] = "cat" if col in cats else "num"
        result["reference_non_null"] = int(ref[col].notna().sum())
        result["current_non_null"] = int(cur[col].notna().sum())

    out = {
        "evidently_version": evidently.__version__,
        "seconds": statistics.median(runs),
        "seconds_runs": runs,
        "seconds_first_run": first,
        "seconds_total": time.perf_counter() - _STARTED,
        "n_reference": int(ref.shape[0]),
        "n_current": int(cur.shape[0]),
        "columns": columns,
        "share_drifted": share,
        "dataset_drift": dataset_drift,
        "drift_share": DRIFT_SHARE,
        "skipped_columns": skipped,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    flagged = [col for col, result in columns.items() if result["drifted"]]
    print(
        f"evidently {out['evidently_version']}: {len(flagged)}/{len(columns)} colunas com drift "
        f"{flagged}, dataset_drift={dataset_drift}, {out['seconds']:.3f} s "
        f"(total {out['seconds_total']:.2f} s) -> {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
