"""Latency percentiles count each request once, even when a batch logs one line per student."""

from __future__ import annotations

from pathlib import Path

from passos_magicos.serving.metrics import SharedLogMetrics
from passos_magicos.serving.prediction_log import PredictionLog, PredictionRecord


def record(request_id: str, latency: float) -> PredictionRecord:
    return {
        "ts": "2026-01-01T00:00:00.000Z",
        "request_id": request_id,
        "aluno_id": None,
        "endpoint": "/predict",
        "modelo": "m",
        "versao": "1",
        "fonte": "local",
        "features": {"ipv": 7.0},
        "probabilidade": 0.2,
        "pv_previsto": False,
        "limiar": 0.3,
        "latencia_ms": latency,
    }


def test_a_batch_counts_once_in_the_latency_window(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    with PredictionLog(path, max_bytes=10_000_000, daily=False) as log:
        log.append([record("lote", 50.0)] * 100)
        for i in range(3):
            log.append([record(f"r{i}", 1.0)])
    metrics = SharedLogMetrics(path, window=1000)
    metrics.refresh()
    snapshot = metrics.snapshot().to_dict()
    assert snapshot["total_predicoes"] == 103
    assert snapshot["latencia_ms"]["p50"] == 1.0  # per line it would be 50
