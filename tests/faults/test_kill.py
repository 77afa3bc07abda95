"""`kill -9` of `train`, `materialize` and `monitor` at seeded random points: the registry
(MLflow server on PostgreSQL + S3), the offline (Parquet) and online (PostgreSQL) feature
stores and the monitoring history stay consistent, and the same command run again completes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from passos_magicos.alerts.history import AlertHistory
from passos_magicos.data.dataset import build_dataset
from passos_magicos.data.storage import SourceFile
from passos_magicos.feature_store.offline import read_offline
from passos_magicos.feature_store.online import OnlineStore
from passos_magicos.serving.app import create_app
from passos_magicos.serving.runtime import load_registered
from tests.faults.conftest import Registry, kill_after, report, rng, run_cli
from tests.serving.conftest import AUTH, RECORD, settings_for, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.services]

RUN_STATUSES = {"ok", "alerta", "sem_dados"}


# ---------------------------------------------------------------------------------------------
# What "consistent" means, checked after every kill


@dataclass(frozen=True)
class OnlineState:
    active: int
    versions: dict[int, int]  # versao -> rows its metadata announces


def online_state(url: str) -> OnlineState:
    """The active version loads whole, and every version's rows match its metadata (no
    half-written version anywhere, active or not)."""
    store = OnlineStore(url)
    try:
        snapshot = store.load_active()  # raises if the active version is missing or partial
        with store.engine.connect() as conn:
            versions: dict[int, int] = dict(
                conn.execute(sa.text("SELECT versao, rows FROM fs_versions")).tuples().all()
            )
            counted: dict[int, int] = dict(
                conn.execute(sa.text("SELECT versao, count(*) FROM fs_rows GROUP BY versao"))
                .tuples()
                .all()
            )
    finally:
        store.dispose()
    assert len(snapshot) == snapshot.meta.rows > 0
    assert counted == {v: n for v, n in versions.items() if v in counted}, (counted, versions)
    assert set(counted) <= set(versions), "linhas de uma versão sem metadados"
    # Only the active version and the one before it keep rows (older ones are pruned).
    assert snapshot.meta.version in counted
    return OnlineState(snapshot.meta.version, {int(v): int(n) for v, n in versions.items()})


def offline_digest(registry: Registry, expected_rows: int) -> str:
    """The offline store reads back whole, with the rows its metadata announces."""
    table, info = read_offline(registry.root / "data" / "feature_store" / "offline")
    assert len(table) == info.rows == expected_rows
    return info.source_digest


def mlflow_client(registry: Registry) -> MlflowClient:
    return MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)


def check_registry(registry: Registry, workdir: Path) -> dict[str, str]:
    """@production is still the promoted version and loads (artefacts complete); every version
    holding an alias passed the gate and loads too. Returns the aliases."""
    client = mlflow_client(registry)
    aliases = dict(client.get_registered_model(registry.model_name).aliases)
    assert aliases.get("production") == registry.production, aliases
    for alias, version in aliases.items():
        tags = client.get_model_version(registry.model_name, version).tags
        assert tags.get("gate.passed") == "true", (alias, version, tags)
        stage = "Production" if alias == "production" else "Staging"
        settings = settings_for(
            workdir / f"load-{alias}-{version}",
            MODEL_SOURCE="mlflow",
            MLFLOW_ENABLED=True,
            MLFLOW_TRACKING_URI=registry.tracking_uri,
            MLFLOW_MODEL_NAME=registry.model_name,
            MLFLOW_MODEL_STAGE=stage,
        )
        model = load_registered(settings)  # downloads every artefact and loads the model
        assert model.version == version
    return aliases


# ---------------------------------------------------------------------------------------------
# train


def test_kill_train_at_a_random_point(registry: Registry, tmp_path: Path) -> None:
    data_rows = len(
        build_dataset([SourceFile("pede.csv", "pede.csv", registry.data.read_bytes())]).table
    )
    client = mlflow_client(registry)
    before = {v.version for v in client.search_model_versions(f"name='{registry.model_name}'")}
    delay = rng("train").uniform(0.1, 0.95) * registry.train_seconds
    args = ("train", "--data", str(registry.data), "--model", "logistic_regression", "--json")
    killed = kill_after(registry.env, registry.root, tmp_path / "train.log", delay, *args)
    report(
        f"train: kill -9 após {delay:.1f} s (morto: {killed.killed}); último passo: "
        f"{killed.output_tail.splitlines()[-1] if killed.output_tail else '—'}"
    )

    check_registry(registry, tmp_path)
    versions = client.search_model_versions(f"name='{registry.model_name}'")
    orphans = [v.version for v in versions if v.version not in before]
    for version in orphans:  # registered before the kill, maybe without a verdict
        tags = client.get_model_version(registry.model_name, version).tags
        if "gate.passed" not in tags:
            # A version without a verdict can never be promoted.
            refused = run_cli(
                registry.env, registry.root, "promote", "--version", version, expect=3
            )
            assert "portão" in refused.stdout + refused.stderr
    offline_digest(registry, data_rows)
    online_state(registry.env["ONLINE_STORE_URL"])
    report(f"train: estado consistente; versões novas deixadas pelo processo morto: {orphans}")

    rerun = json.loads(run_cli(registry.env, registry.root, *args).stdout)
    assert rerun["aprovado"] is True, rerun
    aliases = check_registry(registry, tmp_path)
    assert aliases["staging"] == str(rerun["versao"])
    assert aliases["production"] == registry.production
    online_state(registry.env["ONLINE_STORE_URL"])
    report(f"train: nova execução completa, versão {rerun['versao']} em @staging")


# ---------------------------------------------------------------------------------------------
# materialize


def test_kill_materialize_at_random_points(registry: Registry, tmp_path: Path) -> None:
    url = registry.env["ONLINE_STORE_URL"]
    rows = len(build_dataset([SourceFile("p.csv", "p.csv", registry.data.read_bytes())]).table)
    started = time.monotonic()
    run_cli(registry.env, registry.root, "materialize", "--data", str(registry.data))
    seconds = time.monotonic() - started
    previous = online_state(url)
    digest = offline_digest(registry, rows)
    draw = rng("materialize")
    for attempt in range(3):
        delay = draw.uniform(0.3, 1.0) * seconds
        killed = kill_after(
            registry.env,
            registry.root,
            tmp_path / f"materialize-{attempt}.log",
            delay,
            "materialize",
            "--data",
            str(registry.data),
        )
        state = online_state(url)
        # Still the previous version, or the complete next one: never a partial one.
        assert state.active in (previous.active, previous.active + 1), (previous, state)
        assert offline_digest(registry, rows) == digest
        report(
            f"materialize #{attempt + 1}: kill -9 após {delay:.2f} s de ~{seconds:.1f} s "
            f"(morto: {killed.killed}); versão ativa {previous.active} → {state.active}"
        )
        previous = state
    done = run_cli(registry.env, registry.root, "materialize", "--data", str(registry.data))
    final = online_state(url)
    assert final.active == max(final.versions) > previous.active
    assert f"versão {final.active}" in done.stdout
    report(f"materialize: nova execução completa, versão ativa {final.active}")


# ---------------------------------------------------------------------------------------------
# monitor


@pytest.fixture(scope="module")
def logged_predictions(registry: Registry) -> int:
    """Predictions of @production in the shared log (what the job reads), via the real app."""
    root = registry.root
    settings = settings_for(
        root / "api",
        MODEL_SOURCE="mlflow",
        MLFLOW_ENABLED=True,
        MLFLOW_TRACKING_URI=registry.tracking_uri,
        MLFLOW_MODEL_NAME=registry.model_name,
        PREDICTION_LOG_PATH=Path(registry.env["PREDICTION_LOG_PATH"]),
        MONITORING_STORE_URL=registry.env["MONITORING_STORE_URL"],
        ONLINE_STORE_URL=registry.env["ONLINE_STORE_URL"],
    )
    draw = rng("log")
    records: list[dict[str, Any]] = [
        RECORD
        | {
            "aluno_id": f"RA-{i}",
            "inde": round(draw.uniform(4, 9.5), 2),
            "ipv": round(draw.uniform(4, 9.5), 2),
            "ida": round(draw.uniform(3, 9.5), 2),
        }
        for i in range(300)
    ]
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        response = client.post("/predict/batch", json={"registros": records}, headers=AUTH)
        assert response.status_code == 200, response.text
    return len(records)


def monitoring_runs(registry: Registry) -> list[dict[str, Any]]:
    """Every run in the history, each complete (a status and a parsed report); every report
    file on disk parses as JSON."""
    history = AlertHistory(registry.env["MONITORING_STORE_URL"])
    try:
        runs = history.runs(1000)
    finally:
        history.dispose()
    for run in runs:
        assert run["status"] in RUN_STATUSES, run
        assert run["report"].get("verificacoes"), f"execução {run['id']} sem relatório completo"
    for path in Path(registry.env["MONITOR_REPORT_DIR"]).glob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))  # no half-written report
    return runs


def test_kill_monitor_at_random_points(
    registry: Registry, logged_predictions: int, tmp_path: Path
) -> None:
    started = time.monotonic()
    run_cli(registry.env, registry.root, "monitor", "--no-alerts")
    seconds = time.monotonic() - started
    runs = monitoring_runs(registry)
    assert runs and runs[0]["report"]["log"]["previsoes_na_janela"] == logged_predictions
    draw = rng("monitor")
    for attempt in range(2):
        # Later runs are faster than the first (caches warm): draw from its first part.
        delay = draw.uniform(0.15, 0.65) * seconds
        killed = kill_after(
            registry.env, registry.root, tmp_path / f"monitor-{attempt}.log", delay, "monitor"
        )
        after = monitoring_runs(registry)
        # The run is recorded whole or not at all.
        assert len(after) in (len(runs), len(runs) + 1)
        report(
            f"monitor #{attempt + 1}: kill -9 após {delay:.2f} s de ~{seconds:.1f} s "
            f"(morto: {killed.killed}); execuções no histórico {len(runs)} → {len(after)}"
        )
        runs = after
    run_cli(registry.env, registry.root, "monitor")
    final = monitoring_runs(registry)
    assert len(final) == len(runs) + 1
    assert final[0]["report"]["log"]["previsoes_na_janela"] == logged_predictions
    report(f"monitor: nova execução completa (status {final[0]['status']})")
