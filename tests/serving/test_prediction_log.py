"""The shared prediction log: atomic appends from threads and processes, rotation, readers."""

from __future__ import annotations

import multiprocessing
import os
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import orjson
import pytest

from passos_magicos.serving import prediction_log
from passos_magicos.serving.metrics import SharedLogMetrics
from passos_magicos.serving.prediction_log import (
    LineReader,
    PredictionLog,
    PredictionRecord,
    ReadStats,
    encode_records,
    iter_log_files,
    iter_records,
    parse_record,
    rotated_log_files,
    utc_timestamp,
)

DAY = 86_400.0
ROTATED_NAME = re.compile(r"predictions-\d{8}T\d{12}(-\d+)?\.jsonl")


def record(request_id: str, **overrides: Any) -> PredictionRecord:
    rec: PredictionRecord = {
        "ts": utc_timestamp(),
        "request_id": request_id,
        "aluno_id": "RA-17",
        "endpoint": "/predict",
        "modelo": "passos-magicos-ponto-virada",
        "versao": "3",
        "fonte": "mlflow",
        "features": {"ian": 5.0, "ida": 6.3, "ieg": 7.1, "fase": "2", "idade": None},
        "probabilidade": 0.42,
        "pv_previsto": True,
        "limiar": 0.35,
        "latencia_ms": 0.41,
    }
    rec.update(overrides)  # type: ignore[typeddict-item]
    return rec


def all_lines(path: Path) -> list[tuple[Path, bytes]]:
    out = []
    for file in iter_log_files(path):
        data = file.read_bytes()
        assert data.endswith(b"\n"), f"{file.name} termina sem quebra de linha"
        out.extend((file, line) for line in data[:-1].split(b"\n"))
    return out


# -- concurrent writers ----------------------------------------------------------------------

SINGLES_PER_ROUND = 100
ROUNDS = 4
BATCH = 150
PER_WRITER = ROUNDS * (SINGLES_PER_ROUND + BATCH)
MAX_BYTES = 100_000


def write_as(log: PredictionLog, writer: str) -> None:
    """One writer: batches of BATCH records alternating with single appends."""
    for round_ in range(ROUNDS):
        log.append([record(f"{writer}:b{round_}:{i}") for i in range(BATCH)])
        for i in range(SINGLES_PER_ROUND):
            log.append([record(f"{writer}:s{round_}:{i}")])


def spawned_writer(path: str, writer: str) -> None:
    with PredictionLog(Path(path), MAX_BYTES, daily=True) as log:
        write_as(log, writer)


def forked_writer(log: PredictionLog, writer: str) -> None:
    # Uses the instance the parent had already opened: the at-fork hook must reopen it.
    write_as(log, writer)
    log.close()


def test_concurrent_processes_and_threads_never_tear_lines(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "predictions.jsonl"
    log = PredictionLog(path, MAX_BYTES, daily=True)
    log.append([record("parent:first")])  # the descriptor is open before forking

    fork, spawn = multiprocessing.get_context("fork"), multiprocessing.get_context("spawn")
    processes = [fork.Process(target=forked_writer, args=(log, f"fork{i}")) for i in range(2)]
    processes += [
        spawn.Process(target=spawned_writer, args=(str(path), f"spawn{i}")) for i in range(2)
    ]
    for process in processes:
        process.start()
    threads = [threading.Thread(target=write_as, args=(log, f"thread{i}")) for i in range(3)]
    # A replica's /metrics reading while everybody writes and rotates.
    metrics = SharedLogMetrics(path, window=100)
    stop = threading.Event()

    def keep_refreshing() -> None:
        while not stop.is_set():
            metrics.refresh()

    reader = threading.Thread(target=keep_refreshing)
    for thread in [*threads, reader]:
        thread.start()
    for thread in threads:
        thread.join()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    stop.set()
    reader.join()
    log.close()

    writers = [f"fork{i}" for i in range(2)] + [f"spawn{i}" for i in range(2)]
    writers += [f"thread{i}" for i in range(3)]
    expected = 1 + PER_WRITER * len(writers)
    lines = all_lines(path)
    assert len(lines) == expected
    ids = [orjson.loads(line)["request_id"] for _, line in lines]  # every line parses
    assert len(set(ids)) == expected
    rotated = rotated_log_files(path)
    assert len(rotated) >= 10, "a rotação deveria ter ocorrido durante o teste"
    assert all(ROTATED_NAME.fullmatch(f.name) for f in rotated)
    assert all(f.stat().st_size <= MAX_BYTES for f in rotated)

    # Each writer's records are all there, in the order written (files in chronological
    # order), and each batch sits on consecutive lines of a single file.
    position = {rid: (n, file) for n, ((file, _), rid) in enumerate(zip(lines, ids, strict=True))}
    for writer in writers:
        mine = [rid for rid in ids if rid.split(":")[0] == writer]
        assert len(mine) == PER_WRITER
        written = [
            f"{writer}:{kind}{r}:{i}"
            for r in range(ROUNDS)
            for kind, n in (("b", BATCH), ("s", SINGLES_PER_ROUND))
            for i in range(n)
        ]
        assert mine == written
        for r in range(ROUNDS):
            spots = [position[f"{writer}:b{r}:{i}"] for i in range(BATCH)]
            assert [n for n, _ in spots] == list(range(spots[0][0], spots[0][0] + BATCH))
            assert len({file for _, file in spots}) == 1

    metrics.refresh()
    snap = metrics.snapshot()
    assert snap.total_predicoes == expected
    assert snap.linhas_invalidas == 0
    late = SharedLogMetrics(path, window=100)
    late.refresh()
    assert late.snapshot() == snap


def test_threads_share_one_instance(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    with PredictionLog(path, 20_000, daily=False) as log:
        threads = [
            threading.Thread(
                target=lambda t=t: [log.append([record(f"t{t}:{i}")]) for i in range(300)]
            )
            for t in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    ids = [orjson.loads(line)["request_id"] for _, line in all_lines(path)]
    assert sorted(ids) == sorted(f"t{t}:{i}" for t in range(6) for i in range(300))


def reports_fd_after_fork(log: PredictionLog, queue: Any) -> None:
    queue.put(log._fd)


def test_forked_child_does_not_reuse_the_parent_descriptor(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "predictions.jsonl", MAX_BYTES, daily=False)
    log.append([record("a")])
    assert log._fd is not None
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=reports_fd_after_fork, args=(log, queue))
    child.start()
    assert queue.get(timeout=30) is None
    child.join()
    assert log._fd is not None  # the parent's own descriptor is untouched
    log.append([record("b")])
    log.close()


def test_at_fork_hook_drops_inherited_descriptors(tmp_path: Path) -> None:
    # What the child runs right after fork (called here directly, in this process).
    log = PredictionLog(tmp_path / "predictions.jsonl", MAX_BYTES, daily=False)
    log.append([record("a")])
    prediction_log._reset_instances_after_fork()
    assert log._fd is None
    log.append([record("b")])
    log.close()
    assert len(all_lines(tmp_path / "predictions.jsonl")) == 2


# -- rotation --------------------------------------------------------------------------------


def line_size() -> int:
    return len(encode_records([record("r0000")]))


def test_rotation_by_size_keeps_every_line_in_order(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    max_bytes = 3 * line_size() + 10
    with PredictionLog(path, max_bytes, daily=False) as log:
        for i in range(10):
            log.append([record(f"r{i:04d}")])
    files = iter_log_files(path)
    assert files[-1] == path
    assert [len(f.read_bytes().splitlines()) for f in files] == [3, 3, 3, 1]
    assert all(f.stat().st_size <= max_bytes for f in files)
    ids = [orjson.loads(line)["request_id"] for _, line in all_lines(path)]
    assert ids == [f"r{i:04d}" for i in range(10)]


def test_oversized_batch_goes_whole_into_a_fresh_file(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    with PredictionLog(path, 2 * line_size(), daily=False) as log:
        log.append([record("r0000")])
        log.append([record(f"r{i:04d}") for i in range(1, 6)])  # bigger than max_bytes
        log.append([record("r0006")])
    sizes = [len(f.read_bytes().splitlines()) for f in iter_log_files(path)]
    assert sizes == [1, 5, 1]


def test_same_microsecond_rotations_get_distinct_sortable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prediction_log, "_now", lambda: 1_780_000_000.0)
    path = tmp_path / "predictions.jsonl"
    with PredictionLog(path, line_size(), daily=False) as log:
        for i in range(13):
            log.append([record(f"r{i:04d}")])
    rotated = rotated_log_files(path)
    assert len(rotated) == 12
    assert rotated[0].name == "predictions-20260528T202640000000.jsonl"
    assert rotated[1].name == "predictions-20260528T202640000000-1.jsonl"
    ids = [orjson.loads(line)["request_id"] for _, line in all_lines(path)]
    assert ids == [f"r{i:04d}" for i in range(13)]


def test_rotation_by_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    day1 = datetime(2026, 3, 1, 23, 59, 58, tzinfo=UTC).timestamp()
    clock = {"now": day1}
    monkeypatch.setattr(prediction_log, "_now", lambda: clock["now"])
    path = tmp_path / "predictions.jsonl"
    with PredictionLog(path, 10**9, daily=True) as log:
        log.append([record("d1-a"), record("d1-b")])
        clock["now"] += 1.5  # still 1 March
        log.append([record("d1-c")])
        assert rotated_log_files(path) == []
        clock["now"] += 1.0  # 2 March, 00:00:00.5
        log.append([record("d2-a")])
        log.append([record("d2-b")])
    rotated = rotated_log_files(path)
    assert [f.name for f in rotated] == ["predictions-20260302T000000500000.jsonl"]
    assert [orjson.loads(x)["request_id"] for x in rotated[0].read_bytes().splitlines()] == [
        "d1-a",
        "d1-b",
        "d1-c",
    ]
    assert [orjson.loads(x)["ts"][:10] for x in path.read_bytes().splitlines()] == [
        "2026-03-02",
        "2026-03-02",
    ]
    # Another process opening the file later learns its day from the first line.
    clock["now"] += DAY
    with PredictionLog(path, 10**9, daily=True) as other:
        other.append([record("d3-a")])
    assert len(rotated_log_files(path)) == 2
    assert len(path.read_bytes().splitlines()) == 1
    # Without `daily`, only size matters.
    clock["now"] += DAY
    with PredictionLog(path, 10**9, daily=False) as plain:
        plain.append([record("d4-a")])
    assert len(rotated_log_files(path)) == 2


def test_day_of_a_file_without_timestamps_comes_from_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "predictions.jsonl"
    path.write_bytes(b'{"edited": "by hand"}\n')
    yesterday = time.time() - DAY
    os.utime(path, (yesterday, yesterday))
    with PredictionLog(path, 10**9, daily=True) as log:
        log.append([record("today")])
    assert len(rotated_log_files(path)) == 1
    # Same file, same day: no rotation.
    path.write_bytes(b'{"edited": "by hand"}\n')
    with PredictionLog(path, 10**9, daily=True) as log:
        log.append([record("today-2")])
    assert len(rotated_log_files(path)) == 1


def test_impossible_date_in_the_first_line_falls_back_to_mtime(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    path.write_bytes(encode_records([record("odd", ts="2026-13-45T00:00:00.000Z")]))
    with PredictionLog(path, 10**9, daily=True) as log:
        log.append([record("today")])  # mtime is today: no rotation
    assert rotated_log_files(path) == []


def test_empty_file_is_never_rotated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "predictions.jsonl"
    path.touch()
    os.utime(path, (0, 0))
    with PredictionLog(path, 10, daily=True) as log:
        log.append([record("x")])
    assert rotated_log_files(path) == []


def test_failed_rotation_still_logs_the_prediction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "predictions.jsonl"

    def refuse(self: Path, target: Path) -> Path:
        raise PermissionError("read-only")

    with PredictionLog(path, line_size(), daily=False) as log:
        log.append([record("r0000")])
        monkeypatch.setattr(Path, "rename", refuse)
        log.append([record("r0001")])
        log.append([record("r0002")])
    assert len(path.read_bytes().splitlines()) == 3
    assert rotated_log_files(path) == []
    assert sum("rotacionar" in r.getMessage() for r in caplog.records) == 1


def test_a_pod_with_a_slower_clock_does_not_rotate_a_newer_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "predictions.jsonl"
    midnight = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    path.write_bytes(encode_records([record("fast", ts=utc_timestamp(midnight + 0.2))]))
    monkeypatch.setattr(prediction_log, "_now", lambda: midnight - 0.1)  # still 1 March here
    with PredictionLog(path, 10**9, daily=True) as log:
        log.append([record("slow")])
    assert rotated_log_files(path) == []


def test_writer_follows_a_rotation_made_by_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    size = line_size()
    a = PredictionLog(path, 2 * size + 1, daily=False)
    b = PredictionLog(path, 10**9, daily=False)  # would never rotate by itself
    a.append([record("r0000")])
    b.append([record("r0001")])
    a.append([record("r0002")])  # rotates the file b still has open
    b.append([record("r0003")])  # must land in the new file, not the rotated one
    a.close()
    b.close()
    (rotated,) = rotated_log_files(path)
    assert len(rotated.read_bytes().splitlines()) == 2
    assert [orjson.loads(x)["request_id"] for x in path.read_bytes().splitlines()] == [
        "r0002",
        "r0003",
    ]


def test_log_removed_by_hand_is_recreated(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "predictions.jsonl"
    log = PredictionLog(path, 10**9, daily=False)
    log.append([record("a")])
    path.unlink()
    log.append([record("b")])
    log.close()
    log.append([record("c")])  # reopens after close
    log.close()
    assert [orjson.loads(x)["request_id"] for x in path.read_bytes().splitlines()] == ["b", "c"]


# -- encoding and timestamps -----------------------------------------------------------------


def test_encoding_accepts_numpy_and_read_only_mappings() -> None:
    rec = record(
        "n",
        features=MappingProxyType({"ian": np.float64(5.5), "fase": "2"}),
        probabilidade=np.float32(0.25),
    )
    data = encode_records([rec, record("m")])
    first, second, rest = data.split(b"\n")
    assert rest == b""
    assert orjson.loads(first)["features"] == {"ian": 5.5, "fase": "2"}
    assert orjson.loads(second)["request_id"] == "m"
    with pytest.raises(TypeError):
        encode_records([record("bad", features={"x": object()})])


def test_empty_append_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    with PredictionLog(path, 10**9, daily=False) as log:
        log.append([])
    assert not path.exists()
    with pytest.raises(ValueError, match="max_bytes"):
        PredictionLog(path, 0, daily=False)


@pytest.mark.parametrize(
    "seconds", [0.0, 1.9999, 1_764_230_000.123456, 1_764_230_000.9996, -0.5, 951_782_400.0]
)
def test_utc_timestamp_is_iso_8601_with_milliseconds(seconds: float) -> None:
    expected = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    assert utc_timestamp(seconds) == expected.replace("+00:00", "Z")
    assert datetime.fromisoformat(utc_timestamp(seconds)).tzinfo is not None


def test_utc_timestamp_follows_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prediction_log, "_now", lambda: 1_780_000_000.25)
    assert utc_timestamp() == "2026-05-28T20:26:40.250Z"


# -- readers ---------------------------------------------------------------------------------


def test_partial_line_left_by_a_crash_does_not_swallow_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    path.write_bytes(encode_records([record("before")]) + b'{"ts": "2026-03-0')
    with PredictionLog(path, 10**9, daily=False) as log:
        log.append([record("after")])
    stats = ReadStats()
    ids = [r["request_id"] for r in iter_records(path, stats)]
    assert ids == ["before", "after"]
    assert (stats.records, stats.invalid, stats.pending_bytes) == (2, 1, 0)


def test_iter_records_counts_and_skips_malformed_lines(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    good = encode_records([record("ok")])
    # A rotated file ending without its newline: final, so its last line is judged as is.
    (tmp_path / "predictions-20260101T000000000000.jsonl").write_bytes(good + good.rstrip())
    (tmp_path / "predictions-20260102T000000000000.jsonl").write_bytes(good + b"{trunc")
    (tmp_path / "predictions-notadate.jsonl").write_bytes(b"ignored: not a rotated name\n")
    path.write_bytes(
        good
        + b"not json\n"
        + b"[1, 2]\n"
        + b'{"pv_previsto": "sim", "probabilidade": 0.1, "latencia_ms": 1}\n'
        + b'{"pv_previsto": true, "probabilidade": null, "latencia_ms": 1}\n'
        + b'{"pv_previsto": true, "probabilidade": true, "latencia_ms": 1}\n'
        + b"\n"
        + good
        + b'{"ts": "2026'
    )
    stats = ReadStats()
    records = list(iter_records(path, stats))
    assert len(records) == 5
    assert stats.records == 5
    assert stats.invalid == 6
    assert stats.pending_bytes == len(b'{"ts": "2026')
    assert list(iter_records(tmp_path / "missing.jsonl")) == []


def test_line_reader_keeps_the_unterminated_tail(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"a\nbb\nccc\nd")
    fd = os.open(path, os.O_RDONLY)
    try:
        reader = LineReader(fd, 0, chunk_bytes=3)  # lines straddle chunk boundaries
        assert [line for lines in reader for line in lines] == [b"a", b"bb", b"ccc"]
        assert (reader.offset, reader.tail) == (9, b"d")
        again = LineReader(fd, 2)
        assert [line for lines in again for line in lines] == [b"bb", b"ccc"]
    finally:
        os.close(fd)


def test_parse_record_rules() -> None:
    assert parse_record(encode_records([record("x")]).rstrip()) is not None
    assert parse_record(b'{"pv_previsto": false, "probabilidade": 0, "latencia_ms": 2}')
    for bad in (b"", b"{", b"null", b'"s"', b'{"pv_previsto": 1, "probabilidade": 0.1}'):
        assert parse_record(bad) is None


# -- micro-benchmark (printed, not asserted) --------------------------------------------------


def time_appends(path: Path, count: int) -> float:
    """Microseconds per single-record append (encoding included)."""
    rec = record("bench")
    with PredictionLog(path, 10**10, daily=True) as log:
        log.append([rec])
        started = time.perf_counter()
        for _ in range(count):
            log.append([rec])
        return (time.perf_counter() - started) / count * 1e6


def test_benchmark_single_append(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    per_append = time_appends(tmp_path / "predictions.jsonl", 5000)
    with capsys.disabled():
        print(f"\n[bench] append de 1 registro: {per_append:.1f} µs")
    assert per_append > 0
