"""A full disk under the prediction log (a real ENOSPC): the API keeps answering 200, counts the
lines it lost (`/metrics` → `linhas_perdidas`), the monitoring job raises the critical alert
`log_linhas_perdidas` (delivered to a real HTTP stand-in for Slack), nothing crashes, and once
space is freed the log is written again and the next run resolves the alert.

The full disk is a tiny tmpfs filled to the last byte (needs root and mount permission);
where mounting is not allowed (an unprivileged container) the log is a symlink to /dev/full,
whose writes fail with ENOSPC too. PASSOS_FAULT_DISK=devfull forces the second way."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from passos_magicos.monitoring.job import LOST_LINES
from tests.faults.conftest import clean_env, report, run_cli, start_api
from tests.serving.conftest import (
    ADMIN_TOKEN,
    API_TOKEN,
    AUTH,
    RECORD,
    publish_local_model,
    settings_for,
)
from tests.slack_receiver import SlackReceiver

pytestmark = pytest.mark.slow

LOST_TITLE = "Linhas do log de previsões perdidas"


def _fill(volume: Path) -> None:
    """Write until the filesystem refuses with ENOSPC."""
    chunk = b"\0" * 4096
    with (volume / "enche-o-disco").open("wb", buffering=0) as filler:
        try:
            while True:
                filler.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    with pytest.raises(OSError) as refused, (volume / "sonda").open("wb", buffering=0) as f:
        f.write(b"x" * 4096)
    assert refused.value.errno == errno.ENOSPC


@contextlib.contextmanager
def full_disk(folder: Path) -> Iterator[tuple[str, Path, Callable[[], None]]]:
    """(how, the log path on a full disk, a function that frees the space)."""
    volume = folder / "volume-do-log"
    volume.mkdir()
    mounted = False
    if os.environ.get("PASSOS_FAULT_DISK") != "devfull":
        try:
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(volume)],
                check=True,
                capture_output=True,
                timeout=10,
            )
            mounted = True
        except (OSError, subprocess.SubprocessError) as exc:
            report(f"disco cheio: mount tmpfs indisponível ({exc}); usando /dev/full")
    try:
        if mounted:
            _fill(volume)
            yield (
                "tmpfs de 256 KiB cheio",
                volume / "predictions.jsonl",
                ((volume / "enche-o-disco").unlink),
            )
        else:
            log = volume / "predictions.jsonl"
            log.symlink_to("/dev/full")
            yield "/dev/full", log, log.unlink
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(volume)], check=False, timeout=30)


def _report(env: dict[str, str], root: Path, name: str) -> dict[str, Any]:
    output = root / f"{name}.json"
    run_cli(env, root, "monitor", "--output", str(output))
    data: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    return next(c for c in data["verificacoes"] if c["chave"] == LOST_LINES)


def test_full_disk_under_the_log(tmp_path: Path, slack_receiver: SlackReceiver) -> None:
    root = tmp_path
    publish_local_model(settings_for(root), "7", "logistic_regression", seed=2)
    with full_disk(root) as (how, log, free_space):
        env = clean_env(
            MODEL_SOURCE="local",
            MLFLOW_ENABLED="false",
            DATA_DIR=str(root / "data"),
            MODELS_DIR=str(root / "models"),
            API_TOKENS=API_TOKEN,
            ADMIN_RELOAD_TOKEN=ADMIN_TOKEN,
            PREDICTION_LOG_PATH=str(log),
            PREDICTION_LOG_DAILY="false",
            # The history (where every replica's lost lines are summed) is on another volume.
            MONITORING_STORE_URL=f"sqlite:///{root / 'estado' / 'monitoring.db'}",
            MONITOR_REPORT_DIR=str(root / "relatorios"),
            SLACK_WEBHOOK_URL=slack_receiver.url,
            SLACK_BACKOFF_SECONDS="0",
            MONITOR_MIN_SAMPLES="10",
        )
        api, url = start_api(env, root, "api-disco-cheio")
        try:
            env["API_URL"] = url
            env["API_TOKEN"] = API_TOKEN
            with httpx.Client(base_url=url, headers=AUTH, timeout=10) as client:
                codes = [client.post("/predict", json=RECORD).status_code for _ in range(20)]
                batch = client.post(
                    "/predict/batch",
                    json={"registros": [RECORD | {"aluno_id": f"RA-{i}"} for i in range(5)]},
                )
                lost = codes.count(200) + (5 if batch.status_code == 200 else 0)
                assert codes == [200] * 20 and batch.status_code == 200, (codes, batch.text)
                metrics = client.get("/metrics").json()
                assert metrics["linhas_perdidas"] == lost == 25, metrics
                assert metrics["total_predicoes"] == 0
                prometheus = client.get("/metrics/prometheus").text
                assert f"passos_log_linhas_perdidas_total {lost}" in prometheus
                assert client.get("/health").status_code == 200 and api.alive()
                report(
                    f"disco cheio ({how}): 25 de 25 previsões respondidas 200, "
                    f"{lost} linhas perdidas contadas"
                )

                alert = _report(env, root, "monitor-1")
                assert alert["estado"] == "alerta" and alert["severidade"] == "critico", alert
                assert alert["dados"]["desde_a_ultima_execucao"] == lost
                delivered = [
                    b
                    for b in slack_receiver.bodies
                    if LOST_TITLE in json.dumps(b, ensure_ascii=False)
                ]
                assert delivered, slack_receiver.bodies

                free_space()
                again = [client.post("/predict", json=RECORD).status_code for _ in range(5)]
                assert again == [200] * 5
                after = client.get("/metrics").json()
                assert after["total_predicoes"] == 5 and after["linhas_perdidas"] == lost, after
                assert len(log.read_bytes().splitlines()) == 5

                resolved = _report(env, root, "monitor-2")
                assert resolved["estado"] == "ok", resolved
                assert resolved["dados"]["desde_a_ultima_execucao"] == 0
                assert resolved["dados"]["total"] == lost
                report(
                    f"disco cheio: alerta {LOST_LINES} entregue ({len(delivered)} mensagem); "
                    "espaço liberado → 5 previsões gravadas, alerta resolvido"
                )
            assert api.alive(), api.log_tail()
        finally:
            api.stop()
