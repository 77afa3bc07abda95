"""`GET /metrics` from the shared log: exact figures, replicas agree, rotation, Prometheus text."""

from __future__ import annotations

import math
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from passos_magicos.serving import metrics as metrics_module
from passos_magicos.serving.metrics import MetricsSnapshot, SharedLogMetrics, prometheus_text
from passos_magicos.serving.prediction_log import (
    PredictionLog,
    PredictionRecord,
    ReadStats,
    encode_records,
    iter_records,
    rotated_log_files,
)

CONTRACT_KEYS = {
    "total_predicoes",
    "por_classe",
    "distribuicao_classes",
    "distribuicao_classes_janela",
    "latencia_ms",
    "probabilidade_media",
    "versoes_modelo",
    "ultima_predicao_em",
    "linhas_invalidas",
    "janela",
    "predicoes_na_janela",
    "requisicoes",
    "consultas_lista",
    "listas_registradas",
    "predicoes_repetidas",
    "linhas_perdidas",
}


def record(i: int, **overrides: Any) -> PredictionRecord:
    rec: PredictionRecord = {
        "ts": f"2026-03-01T10:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
        "request_id": f"req-{i}",
        "aluno_id": f"RA-{i % 900}",
        "endpoint": "/predict",
        "modelo": "passos-magicos-ponto-virada",
        "versao": str(1 + i % 3),
        "fonte": "mlflow",
        "features": {"ian": 5.0, "ida": 6.3, "ieg": 7.1, "fase": "2", "idade": None},
        "probabilidade": (i % 100) / 100,
        "pv_previsto": i % 4 == 0,
        "limiar": 0.35,
        "latencia_ms": 0.2 + (i % 37) / 10,
    }
    rec.update(overrides)  # type: ignore[typeddict-item]
    return rec


def fresh_snapshot(path: Path, window: int = 50) -> MetricsSnapshot:
    metrics = SharedLogMetrics(path, window)
    metrics.refresh()
    return metrics.snapshot()


# -- exact figures ---------------------------------------------------------------------------


def test_figures_on_a_known_log(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    records = [record(i, latencia_ms=float(i + 1)) for i in range(120)]
    path.write_bytes(encode_records(records))
    snap = fresh_snapshot(path, window=50)

    assert snap.total_predicoes == 120
    assert snap.por_classe == {"pv_sim": 30, "nao": 90}
    assert snap.distribuicao_classes == {"pv_sim": 0.25, "nao": 0.75}
    window = records[-50:]
    latencies = np.array([r["latencia_ms"] for r in window])
    for key, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        assert snap.latencia_ms[key] == pytest.approx(np.percentile(latencies, q), abs=1e-3)
    assert snap.latencia_ms["media"] == pytest.approx(latencies.mean(), abs=1e-3)
    assert snap.probabilidade_media == pytest.approx(
        np.mean([r["probabilidade"] for r in window]), abs=1e-6
    )
    positives_in_window = sum(r["pv_previsto"] for r in window)
    assert snap.distribuicao_classes_janela["pv_sim"] == pytest.approx(positives_in_window / 50)
    assert snap.versoes_modelo == {"1": 40, "2": 40, "3": 40}
    assert snap.ultima_predicao_em == "2026-03-01T10:01:59.000Z"
    assert snap.linhas_invalidas == 0
    assert (snap.janela, snap.predicoes_na_janela) == (50, 50)

    as_dict = snap.to_dict()
    assert set(as_dict) == CONTRACT_KEYS
    assert orjson.loads(orjson.dumps(as_dict)) == as_dict  # plain JSON types only


def test_percentiles_match_numpy_on_odd_windows(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    rng = np.random.default_rng(7)
    values = rng.lognormal(0, 1, size=257).round(3)
    path.write_bytes(
        encode_records([record(i, latencia_ms=float(v)) for i, v in enumerate(values)])
    )
    for window in (1, 2, 7, 100, 1000):
        snap = fresh_snapshot(path, window)
        tail = values[-window:]
        for key, q in (("p50", 50), ("p95", 95), ("p99", 99)):
            assert snap.latencia_ms[key] == pytest.approx(np.percentile(tail, q), abs=1e-3)


def test_empty_or_missing_log(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "predictions.jsonl"
    metrics = SharedLogMetrics(path, 10)
    metrics.refresh()
    snap = metrics.snapshot()
    assert snap.total_predicoes == 0
    assert snap.distribuicao_classes == {"pv_sim": 0.0, "nao": 0.0}
    assert snap.latencia_ms == {"p50": None, "p95": None, "p99": None, "media": None}
    assert snap.probabilidade_media is None
    assert snap.ultima_predicao_em is None
    with PredictionLog(path, 10**9, daily=False) as log:
        log.append([record(1), record(2)])
    metrics.refresh()
    assert metrics.snapshot().total_predicoes == 2
    with pytest.raises(ValueError, match="window"):
        SharedLogMetrics(path, 0)


def test_malformed_lines_are_counted_and_a_partial_line_is_read_once_complete(
    tmp_path: Path,
) -> None:
    path = tmp_path / "predictions.jsonl"
    good = encode_records([record(1)])
    path.write_bytes(
        good
        + b"garbage\n"
        + b"\n"  # blank lines are not records and not errors
        + b'"a string"\n'
        + b'{"pv_previsto": true, "probabilidade": "0.3", "latencia_ms": 1.0}\n'
        + b'{"pv_previsto": true, "probabilidade": 0.3}\n'
    )
    metrics = SharedLogMetrics(path, 10)
    metrics.refresh()
    assert (metrics.snapshot().total_predicoes, metrics.snapshot().linhas_invalidas) == (1, 4)

    # A line still being written: not counted, not an error, not skipped either.
    second = encode_records([record(2, versao="9")])
    with path.open("ab") as f:
        f.write(second[:40])
    metrics.refresh()
    assert (metrics.snapshot().total_predicoes, metrics.snapshot().linhas_invalidas) == (1, 4)
    with path.open("ab") as f:
        f.write(second[40:])
    metrics.refresh()
    snap = metrics.snapshot()
    assert (snap.total_predicoes, snap.linhas_invalidas) == (2, 4)
    assert snap.versoes_modelo == {"2": 1, "9": 1}
    metrics.refresh()
    assert metrics.snapshot() == snap

    # Same verdicts as the monitoring job's reader.
    stats = ReadStats()
    assert len(list(iter_records(path, stats))) == 2
    assert stats.invalid == 4


def test_missing_or_odd_version_and_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    odd = orjson.dumps({"pv_previsto": False, "probabilidade": 1, "latencia_ms": 3}) + b"\n"
    path.write_bytes(odd + encode_records([record(5, versao=None)]))  # type: ignore[arg-type]
    snap = fresh_snapshot(path)
    assert snap.total_predicoes == 2
    assert snap.versoes_modelo == {"desconhecida": 2}
    assert snap.ultima_predicao_em == record(5)["ts"]


# -- replicas, incremental reading, rotation -------------------------------------------------


def test_two_replicas_report_identical_snapshots(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    size = len(encode_records([record(0)]))
    replica_a = SharedLogMetrics(path, 25)
    with PredictionLog(path, 7 * size, daily=False) as writer:
        for i in range(40):
            writer.append([record(i)])
            if i % 3 == 0:
                replica_a.refresh()
        replica_b = SharedLogMetrics(path, 25)  # a pod that starts later
        replica_b.refresh()
        writer.append([record(100 + i) for i in range(20)])
        writer.append([record(200)])
    assert len(rotated_log_files(path)) >= 5
    replica_a.refresh()
    replica_b.refresh()
    snap = replica_a.snapshot()
    assert snap == replica_b.snapshot() == fresh_snapshot(path, 25)
    assert snap.total_predicoes == 61


def test_incremental_refresh_across_rotations_neither_loses_nor_repeats(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    size = len(encode_records([record(0)]))
    metrics = SharedLogMetrics(path, 1000)
    written = 0
    with PredictionLog(path, 5 * size, daily=False) as writer:
        for step in range(60):
            batch = 1 + step % 4
            writer.append([record(written + k) for k in range(batch)])
            written += batch
            if step % 5 != 4:  # sometimes several rotations happen between two refreshes
                metrics.refresh()
                assert metrics.snapshot().total_predicoes == written
    metrics.refresh()
    snap = metrics.snapshot()
    assert snap.total_predicoes == written
    assert snap.predicoes_na_janela == written
    assert snap == fresh_snapshot(path, 1000)


def test_rotation_between_opening_and_listing_is_not_double_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "predictions.jsonl"
    size = len(encode_records([record(0)]))
    writer = PredictionLog(path, 2 * size + 10, daily=False)
    writer.append([record(0), record(1)])
    metrics = SharedLogMetrics(path, 100)
    metrics.refresh()  # follows the first file, both lines read
    writer.append([record(2)])  # rotates it; record 2 starts the second file
    real_listing = metrics_module.rotated_log_files
    rotations = []

    def rotate_then_list(p: Path) -> list[Path]:
        # The refresh has already opened the second file: rotate it before the listing.
        if not rotations:
            writer.append([record(3), record(4)])
            rotations.append(True)
        return real_listing(p)

    monkeypatch.setattr(metrics_module, "rotated_log_files", rotate_then_list)
    metrics.refresh()
    assert rotations
    assert len(real_listing(path)) == 2
    assert metrics.snapshot().total_predicoes == 3  # the second file is read once, as rotated
    metrics.refresh()
    writer.close()
    assert metrics.snapshot().total_predicoes == 5
    assert metrics.snapshot() == fresh_snapshot(path, 100)


def test_truncated_log_is_read_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    path.write_bytes(encode_records([record(i) for i in range(5)]))
    metrics = SharedLogMetrics(path, 100)
    metrics.refresh()
    with path.open("r+b") as f:  # same inode, shorter content
        f.truncate(0)
        f.write(encode_records([record(10), record(11)]))
    metrics.refresh()
    assert metrics.snapshot().total_predicoes == 7


def test_rotated_files_removed_by_retention(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    size = len(encode_records([record(0)]))
    metrics = SharedLogMetrics(path, 100)
    with PredictionLog(path, 2 * size, daily=False) as writer:
        writer.append([record(i) for i in range(2)])
        writer.append([record(i) for i in range(2, 4)])
        metrics.refresh()
        for old in rotated_log_files(path):
            old.unlink()
        writer.append([record(i) for i in range(4, 6)])
        metrics.refresh()
    assert metrics.snapshot().total_predicoes == 6
    assert len(metrics._done_rotated) == len(rotated_log_files(path))


def test_rotated_file_ending_without_newline_is_final(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    (tmp_path / "predictions-20260101T000000000000.jsonl").write_bytes(
        encode_records([record(0)]) + encode_records([record(1)]).rstrip()
    )
    (tmp_path / "predictions-20260102T000000000000.jsonl").write_bytes(b'{"trunc')
    path.write_bytes(encode_records([record(2)]))
    snap = fresh_snapshot(path)
    assert (snap.total_predicoes, snap.linhas_invalidas) == (3, 1)


def test_concurrent_refreshes_from_several_threads(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    size = len(encode_records([record(0)]))
    metrics = SharedLogMetrics(path, 100)
    done = threading.Event()

    def write() -> None:
        with PredictionLog(path, 20 * size, daily=False) as writer:
            for i in range(600):
                writer.append([record(i)])
        done.set()

    def read() -> None:
        while not done.is_set():
            metrics.refresh()
            metrics.snapshot()

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    metrics.refresh()
    assert metrics.snapshot().total_predicoes == 600
    assert metrics.snapshot() == fresh_snapshot(path, 100)


# -- Prometheus ------------------------------------------------------------------------------

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(rf"({METRIC_NAME})(?:\{{(.*)\}})? (\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse_exposition(text: str) -> dict[str, Any]:
    """A strict enough reader of the text format 0.0.4: families, types and samples."""
    assert text.endswith("\n")
    families: dict[str, dict[str, Any]] = {}
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name, _, _help = line[7:].partition(" ")
            assert name not in families, f"HELP repetido para {name}"
            families[name] = {"help": _help, "type": None, "samples": []}
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in {"counter", "gauge", "summary", "histogram", "untyped"}
            assert families[name]["type"] is None and not families[name]["samples"]
            families[name]["type"] = kind
        else:
            match = SAMPLE.fullmatch(line)
            assert match, f"linha inválida: {line!r}"
            name, raw_labels, value = match.groups()
            labels: dict[str, str] = {}
            if raw_labels:
                consumed = ",".join(m.group(0) for m in LABEL.finditer(raw_labels))
                assert consumed == raw_labels, f"rótulos inválidos: {raw_labels!r}"
                for m in LABEL.finditer(raw_labels):
                    labels[m.group(1)] = re.sub(
                        r"\\[\\\"n]", lambda e: UNESCAPE[e.group(0)], m.group(2)
                    )
            assert families[name]["type"] is not None, f"{name} sem TYPE antes das amostras"
            families[name]["samples"].append((labels, float(value)))
    return families


def test_prometheus_text_parses_and_carries_the_figures(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    path.write_bytes(encode_records([record(i, latencia_ms=float(i)) for i in range(1, 101)]))
    snap = fresh_snapshot(path, window=100)
    tricky = 'passos "modelo"\\ com\nquebra'
    families = parse_exposition(prometheus_text(snap, tricky, "7", ready=True))

    assert families["passos_predicoes_total"]["type"] == "counter"
    assert {s[0]["classe"]: s[1] for s in families["passos_predicoes_total"]["samples"]} == {
        "pv_sim": 25.0,
        "nao": 75.0,
    }
    quantiles = {s[0]["quantile"]: s[1] for s in families["passos_latencia_ms"]["samples"]}
    assert quantiles == {
        "0.5": snap.latencia_ms["p50"],
        "0.95": snap.latencia_ms["p95"],
        "0.99": snap.latencia_ms["p99"],
    }
    ((info_labels, info_value),) = families["passos_modelo_info"]["samples"]
    assert info_labels == {"modelo": tricky, "versao": "7"} and info_value == 1
    assert families["passos_api_pronta"]["samples"] == [({}, 1.0)]
    assert families["passos_log_linhas_invalidas_total"]["samples"] == [({}, 0.0)]
    versions = families["passos_predicoes_por_versao_total"]["samples"]
    assert sorted((s[0]["versao"], s[1]) for s in versions) == [
        ("1", 33.0),
        ("2", 34.0),
        ("3", 33.0),
    ]
    ((_, last),) = families["passos_ultima_predicao_timestamp_seconds"]["samples"]
    assert last == pytest.approx(1772359300.0)  # 2026-03-01T10:01:40Z


def test_prometheus_text_before_any_prediction() -> None:
    path = Path("/nonexistent/predictions.jsonl")
    families = parse_exposition(prometheus_text(fresh_snapshot(path), "m", None, ready=False))
    assert families["passos_api_pronta"]["samples"] == [({}, 0.0)]
    assert all(math.isnan(v) for _, v in families["passos_latencia_ms"]["samples"])
    assert families["passos_modelo_info"]["samples"][0][0]["versao"] == "nenhuma"
    assert "passos_ultima_predicao_timestamp_seconds" not in families


def test_prometheus_numbers_and_unparsable_timestamp() -> None:
    snap = MetricsSnapshot(
        total_predicoes=1,
        por_classe={"pv_sim": 1, "nao": 0},
        distribuicao_classes={"pv_sim": 1.0, "nao": 0.0},
        distribuicao_classes_janela={"pv_sim": 1.0, "nao": 0.0},
        latencia_ms={"p50": math.inf, "p95": -math.inf, "p99": math.nan, "media": 2.5},
        probabilidade_media=0.5,
        versoes_modelo={"1": 1},
        ultima_predicao_em="ontem",
        linhas_invalidas=0,
        janela=10,
    )
    text = prometheus_text(snap, "m", "1", ready=True)
    assert 'passos_latencia_ms{quantile="0.5"} +Inf' in text
    assert 'passos_latencia_ms{quantile="0.95"} -Inf' in text
    assert 'passos_latencia_ms{quantile="0.99"} NaN' in text
    assert "passos_latencia_media_ms 2.5" in text
    assert "passos_ultima_predicao_timestamp_seconds" not in text
    parse_exposition(text)


# -- micro-benchmark (printed, not asserted) --------------------------------------------------


def write_synthetic_log(path: Path, lines: int, max_bytes: int = 100_000_000) -> None:
    """A realistic log of `lines` predictions (16 features per line), in batches of 1,000."""
    features: dict[str, float | str | None] = {f"f{k}": 0.123456 * k for k in range(14)}
    features |= {"fase": "3", "genero": None}
    with PredictionLog(path, max_bytes, daily=False) as log:
        for start in range(0, lines, 1000):
            log.append(
                [record(i, features=features) for i in range(start, min(start + 1000, lines))]
            )


def measure_read_seconds(path: Path, window: int = 1000) -> tuple[float, MetricsSnapshot]:
    """Seconds for a replica that starts now to read the whole log (first refresh)."""
    started = time.perf_counter()
    metrics = SharedLogMetrics(path, window)
    metrics.refresh()
    return time.perf_counter() - started, metrics.snapshot()


def test_benchmark_reading_from_scratch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "predictions.jsonl"
    lines = 50_000
    write_synthetic_log(path, lines, max_bytes=10_000_000)
    seconds, snap = measure_read_seconds(path)
    assert snap.total_predicoes == lines
    metrics = SharedLogMetrics(path, 1000)
    metrics.refresh()
    started = time.perf_counter()
    for _ in range(200):
        metrics.refresh()
    idle_us = (time.perf_counter() - started) / 200 * 1e6
    megabytes = sum(f.stat().st_size for f in [path, *rotated_log_files(path)]) / 1e6
    with capsys.disabled():
        print(
            f"\n[bench] leitura do zero: {lines} linhas ({megabytes:.0f} MB) em {seconds:.2f} s"
            f" → ~{seconds * 1_000_000 / lines:.1f} s por 1.000.000 linhas;"
            f" refresh sem novidades: {idle_us:.0f} µs"
        )


def test_refresh_reads_only_what_was_appended(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    path.write_bytes(encode_records([record(i) for i in range(10)]))
    metrics = SharedLogMetrics(path, 10)
    metrics.refresh()
    reads: list[int] = []
    real_pread = os.pread

    def counting_pread(fd: int, length: int, offset: int) -> bytes:
        data = real_pread(fd, length, offset)
        reads.append(len(data))
        return data

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "pread", counting_pread)
        metrics.refresh()
        assert sum(reads) == 0
        with path.open("ab") as f:
            f.write(encode_records([record(10)]))
        metrics.refresh()
    assert sum(reads) == len(encode_records([record(10)]))
    assert metrics.snapshot().total_predicoes == 11
