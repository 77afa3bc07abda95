"""The monitoring window is read newest first across rotated files, stops when full, keeps
versions apart, and counts (and skips) malformed lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from passos_magicos.features import MODEL_INPUTS
from passos_magicos.monitoring.window import read_window
from passos_magicos.serving.prediction_log import PredictionLog, PredictionRecord


def record(i: int, version: str) -> PredictionRecord:
    features: dict[str, float | str | None] = dict.fromkeys(MODEL_INPUTS, float(i))
    features["pedra"] = "Ágata" if i % 2 else None
    features["pv"], features["pv_anterior"] = float(i % 2 == 0), None  # as the API logs them
    return {
        "ts": f"2026-11-{1 + i // 1000:02d}T00:00:{i % 60:02d}.{i % 1000:03d}Z",
        "request_id": f"r-{i}",
        "aluno_id": None,
        "endpoint": "/predict",
        "modelo": "m",
        "versao": version,
        "fonte": "mlflow",
        "features": features,
        "probabilidade": i / 10_000,
        "pv_previsto": i % 3 == 0,
        "limiar": 0.5,
        "latencia_ms": 1.0,
    }


def write_log(path: Path) -> None:
    """3,000 predictions (version 1 then version 2) in several rotated files, plus junk."""
    log = PredictionLog(path, max_bytes=200_000, daily=False)
    for start in range(0, 3000, 100):
        log.append([record(i, "1" if i < 2000 else "2") for i in range(start, start + 100)])
        if start == 1000:
            with path.open("ab") as handle:
                handle.write(b'{"not": "a prediction"}\nnot json at all\n')
    log.close()
    with path.open("ab") as handle:
        handle.write(b'{"ts": "2026-11-04T00:0')  # a write in progress: not a line yet


def test_window_is_the_newest_records_split_by_version(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    write_log(path)
    assert len(list(tmp_path.glob("predictions-*.jsonl"))) >= 3  # really rotated

    window = read_window(path, MODEL_INPUTS, limit=1500)
    by_version = {v.version: v for v in window.versions}
    assert window.n == 1500 and by_version["2"].n == 1000 and by_version["1"].n == 500
    assert window.invalid_lines == 0  # the junk is older than the window
    # Newest first: version 1's share is its last 500 records (1500..1999).
    assert sorted(by_version["1"].features["iaa"])[:2] == [1500.0, 1501.0]
    np.testing.assert_allclose(sorted(by_version["2"].scores)[-1], 0.2999)
    assert by_version["2"].predicted.sum() == sum(1 for i in range(2000, 3000) if i % 3 == 0)
    pedra = by_version["2"].features["pedra"]
    assert isinstance(pedra, list) and pedra.count(None) == 500
    assert window.last_ts is not None and window.first_ts is not None
    assert window.first_ts < window.last_ts


def test_malformed_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    write_log(path)
    window = read_window(path, MODEL_INPUTS, limit=10_000)
    assert window.n == 3000 and window.invalid_lines == 2
    assert window.scanned_lines == 3002  # the unfinished last line is not a line yet


def test_time_window_stops_at_older_records(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    write_log(path)
    window = read_window(path, MODEL_INPUTS, limit=10_000, since="2026-11-03T00:00:00.000Z")
    assert window.n == 1000 and [v.version for v in window.versions] == ["2"]


def test_missing_log_is_an_empty_window(tmp_path: Path) -> None:
    window = read_window(tmp_path / "nothing.jsonl", MODEL_INPUTS, limit=10)
    assert window.n == 0 and window.versions == [] and window.scanned_lines == 0


def test_fast_and_line_by_line_parsing_agree(tmp_path: Path) -> None:
    from passos_magicos.monitoring import window as module
    from passos_magicos.serving.prediction_log import encode_records

    records = [record(i, str(i % 2)) for i in range(50)]
    records[3]["features"] = {"pv": 1.0, "pedra": "Quartzo", "iaa": 75}  # partial, an int
    for i in (20, 21):  # roster lines: a student's own record, with the feature-store version
        records[i] |= {"tipo": "lista", "aluno_id": f"RA-{i}", "features_versao": 4}
    lines = encode_records(records).splitlines()
    lines.insert(10, b'{"ts": "2026-11-01T00:00:00.000Z"}')  # JSON, but not a prediction
    view = {"ts": "2026-11-01T00:00:01.000Z", "tipo": "consulta", "request_id": "v", "alunos": 2}
    lines.insert(30, encode_records([view | {"latencia_ms": 3.0, "ciclos": [2024]}]).strip())
    fast = module._parse_fast(b"\n".join(lines), MODEL_INPUTS)
    assert fast is not None, "the Arrow reader should take a well-formed batch"
    slow = module._parse_slow(b"\n".join(lines), MODEL_INPUTS)
    (fast_rows, fast_invalid), (slow_rows, slow_invalid) = (
        (fast.rows, fast.invalid),
        (slow.rows, slow.invalid),
    )
    assert fast_invalid == slow_invalid == 1  # the view is neither a prediction nor invalid
    assert fast.views.tolist() == slow.views.tolist() == [len(lines) - 1 - 30]
    assert fast.lines == slow.lines == len(lines)
    np.testing.assert_array_equal(fast_rows.line, slow_rows.line)
    np.testing.assert_array_equal(fast_rows.key, slow_rows.key)
    assert fast_rows.identity.tolist() == slow_rows.identity.tolist()
    assert sum(i is not None for i in fast_rows.identity.tolist()) == 2
    assert fast_rows.ts.to_pylist() == slow_rows.ts.to_pylist()
    np.testing.assert_allclose(fast_rows.scores, slow_rows.scores)
    np.testing.assert_array_equal(fast_rows.predicted, slow_rows.predicted)
    for name in MODEL_INPUTS:
        a, b = fast_rows.features[name], slow_rows.features[name]
        if name == "pedra":
            assert list(a) == list(b)
        else:
            np.testing.assert_allclose(a, b, equal_nan=True)
    (partial,) = np.flatnonzero(fast_rows.features["iaa"] == 75.0)
    assert (
        fast_rows.features["pv"][partial] == 1.0
        and fast_rows.features["pedra"][partial] == "Quartzo"
    )
    assert np.isnan(fast_rows.features["ida"][partial])
    assert fast_rows.line[0] == 0 and fast_rows.key[0].endswith("1")  # newest (record 49) first

    lines.append(b"not json")  # one bad line: the whole batch goes line by line
    assert module._parse_fast(b"\n".join(lines), MODEL_INPUTS) is None
    odd = encode_records([record(0, "1") | {"features": {"pv": True, "iaa": "7"}}])
    assert module._parse_fast(odd, MODEL_INPUTS) is None  # types the reader does not take…
    batch = module._parse_slow(odd, MODEL_INPUTS)
    rows, invalid = batch.rows, batch.invalid
    assert invalid == 0 and rows.features["pv"][0] == 1.0  # …are read line by line
    assert np.isnan(rows.features["iaa"][0])


def test_blocks_split_lines_exactly_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny read blocks: every line comes out once, whatever the block boundaries."""
    from passos_magicos.monitoring import window as module

    path = tmp_path / "predictions.jsonl"
    lines = [f'{{"n": {i}, "pad": "{"x" * (i % 37)}"}}'.encode() for i in range(500)]
    path.write_bytes(b"\n".join(lines) + b"\n" + b'{"n": 500, "unfinished')
    for size in (7, 64, 100, 4096):
        monkeypatch.setattr(module, "READ_BLOCK", size)
        seen = [line for block in module.blocks_newest_first(path) for line in module._lines(block)]
        assert seen == lines[::-1], size


def test_roster_views_are_not_invalid_and_repeats_count_once(tmp_path: Path) -> None:
    """A roster view is a request (skipped, not invalid); the same student, model version and
    feature-store version seen again counts once, as its newest prediction."""
    path = tmp_path / "predictions.jsonl"
    own = {"aluno_id": "RA-1", "features_versao": 3, "endpoint": "/predict/aluno"}
    view = {
        "ts": "2026-11-01T00:00:00.000Z",
        "tipo": "consulta",
        "request_id": "v",
        "latencia_ms": 2.0,
        "ciclos": [2024],
        "alunos": 10,
    }
    with PredictionLog(path, 10_000_000, daily=False) as log:
        log.append([record(i, "1") | own | {"probabilidade": 0.1 * i} for i in range(1, 4)])
        log.append([view, view])  # type: ignore[list-item]
        log.append([record(9, "1") | own | {"features_versao": 4}])  # a new feature version
        log.append([record(i, "1") for i in range(10, 15)])  # caller-given inputs
    window = read_window(path, MODEL_INPUTS, limit=100)
    (version,) = window.versions
    assert version.n == 7 and window.view_lines == 2 and window.repeated_lines == 2
    assert window.invalid_lines == 0 and window.scanned_lines == 11
    big = sorted(round(float(x), 6) for x in version.scores if x > 0.05)
    assert big == [0.3]  # RA-1 at feature version 3: only its newest prediction (0.3)
