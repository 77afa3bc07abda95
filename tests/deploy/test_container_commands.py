"""Every container that k8s/ declares runs here, as declared, against local services.

The ENTRYPOINT of the images (`passos-magicos`) is this venv's console script; command, args,
env, envFrom and volume mounts come from the manifests (tests/deploy/commands.py resolves them as
the kubelet does); the ConfigMap's values are used as written, except where a name only exists in
the cluster:

- Services -> local ports (the API's Service is where the dashboard and the monitoring job find
  it, through API_URL);
- the CloudNativePG Service and database -> a fresh database on the local PostgreSQL, with the
  login given through PGUSER/PGPASSWORD from the `passos-magicos-db` Secret, as in the cluster;
- the S3 bucket of PEDE_DATA_PATH -> the same bucket and key on a local SeaweedFS, credentials
  and endpoint from the `mlops-data-creds` Secret;
- PVC mount paths -> one directory per claim (shared, as ReadWriteMany volumes are);
- the Slack webhook (Secret mlops-monitoring-alerts) -> a local receiver.

Two settings are overridden, and only these: MLFLOW_TRACKING_URI is removed (no MLflow server
here: the embedded store under DATA_DIR, on the feature-store claim that every container shares)
and CV_FOLDS is 2 (time). Without PostgreSQL or SeaweedFS the stores fall back to SQLite on the
claims and the data to a local file (with PASSOS_REQUIRE_SERVICES=1 that is a failure instead).

The sequence is the cluster's: training CronJob -> promotion (what deploy-model.yml runs) -> API
Deployment (its probes must answer 200) -> predictions -> dashboard Deployment (its probe) ->
monitoring CronJob (exit 0, report written, GET /metrics reached with the client token).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from passos_magicos.data.synth import render_synthetic
from tests.deploy.commands import (
    LOCALHOST,
    Container,
    DeclarationError,
    KubeStandIn,
    Prepared,
    Server,
    configmaps,
    containers,
    files_under,
    find,
    free_port,
    http_status,
    load_manifests,
    option_value,
    replace_option,
    resolve_env,
    run,
    serve,
)
from tests.services import PostgresConfig, S3Server, ServiceError, start_seaweedfs
from tests.slack_receiver import SlackReceiver

NAMESPACE = "passos-magicos"
CONFIG = "passos-magicos-config"
API = ("Deployment", "passos-magicos-api", "api")
DASHBOARD = ("Deployment", "passos-magicos-dashboard", "dashboard")
TRAIN = ("CronJob", "passos-magicos-train", "train")
MONITOR = ("CronJob", "passos-magicos-monitoring", "monitor")
EXERCISED = {API, DASHBOARD, TRAIN, MONITOR}
CLIENT_TOKEN = "token-interno-de-teste"
API_TOKENS = {
    "API_TOKENS": f"{CLIENT_TOKEN},token-parceiro-de-teste",
    "API_TOKEN": CLIENT_TOKEN,
    "ADMIN_RELOAD_TOKEN": "token-admin-de-teste",
}
OVERRIDES: dict[str, str | None] = {
    "MLFLOW_TRACKING_URI": None,  # embedded store under DATA_DIR (no MLflow server here)
    "CV_FOLDS": "2",  # time only
}


def services_required() -> bool:
    return os.environ.get("PASSOS_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes"}


def by_key(manifests: list[dict[str, Any]], key: tuple[str, str, str]) -> Container:
    for container in containers(manifests):
        if (container.workload_kind, container.workload, container.name) == key:
            return container
    raise AssertionError(f"{'/'.join(key)} não está em k8s/")


# ---------------------------------------------------------------------------------------------
# Fast: the runner itself, and coverage of the manifests


def test_every_container_in_k8s_is_run_by_this_module() -> None:
    declared = {(c.workload_kind, c.workload, c.name) for c in containers(load_manifests())}
    assert declared == EXERCISED, "contêiner novo em k8s/: rode-o aqui também"


def _container(spec: dict[str, Any]) -> Container:
    return Container("Deployment", "x", NAMESPACE, {"name": "c", **spec}, {})


def test_environment_is_resolved_as_the_kubelet_does() -> None:
    container = _container(
        {
            "envFrom": [
                {"configMapRef": {"name": "cm"}},
                {"secretRef": {"name": "s1"}},  # later source wins
                {"secretRef": {"name": "ausente", "optional": True}},
            ],
            "env": [
                {"name": "A", "value": "do-env"},  # env wins over envFrom
                {"name": "URL", "value": "http://$(HOST):1/$$(NAO)"},
                {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}},
                {
                    "name": "OPC",
                    "valueFrom": {"secretKeyRef": {"name": "s2", "key": "x", "optional": True}},
                },
            ],
        }
    )
    env = resolve_env(
        container,
        {"cm": {"A": "cm", "B": "cm", "HOST": "h"}},
        {"s1": {"B": "s1", "k": "segredo"}},
    )
    assert env == {
        "A": "do-env",
        "B": "s1",
        "HOST": "h",
        "URL": "http://h:1/$(NAO)",
        "K": "segredo",
        "k": "segredo",  # envFrom takes every key of the Secret
    }

    for missing in (
        {"envFrom": [{"secretRef": {"name": "s2"}}]},
        {"env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "y"}}}]},
    ):
        with pytest.raises(DeclarationError, match="inexistente"):
            resolve_env(_container(missing), {}, {"s1": {"k": "v"}})


def test_k8s_command_semantics_replace_entrypoint_and_cmd() -> None:
    assert _container({"args": ["serve"]}).argv() == ["passos-magicos", "serve"]
    assert _container({}).argv(cmd=["serve"]) == ["passos-magicos", "serve"]
    assert _container({"command": ["python", "-m", "x"]}).argv(cmd=["serve"]) == [
        "python",
        "-m",
        "x",
    ]


def test_a_renamed_flag_or_a_missing_module_fails_the_run(tmp_path: Path) -> None:
    """What this module guards against, shown on purpose: the same runner, a broken
    declaration, a failed run."""
    manifests = load_manifests()
    stand_in = KubeStandIn(
        tmp_path, configmaps(manifests), {"passos-magicos-api-tokens": API_TOKENS}
    )
    argv = by_key(manifests, API).argv()
    renamed = [("--prt" if word == "--port" else word) for word in argv]
    env = stand_in.prepare(by_key(manifests, DASHBOARD)).env
    result = run(renamed, env, tmp_path, timeout=60, check=False)
    assert result.returncode == 2 and "--prt" in result.stderr

    seed_command = ["python", "-m", "scripts.monitoring_job"]  # the seed's CronJob
    result = run(seed_command, env, tmp_path, timeout=60, check=False)
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr


# ---------------------------------------------------------------------------------------------
# The cluster, here


@dataclass
class LocalCluster:
    root: Path
    manifests: list[dict[str, Any]]
    stand_in: KubeStandIn
    slack: SlackReceiver
    database: str  # "postgresql" or "sqlite (…reason…)"
    data_source: str  # "s3" or "arquivo local (…reason…)"
    timings: dict[str, float] = field(default_factory=dict)

    def container(self, key: tuple[str, str, str]) -> Container:
        return by_key(self.manifests, key)


def _postgres(stand_in: KubeStandIn, config: dict[str, str]) -> tuple[str, Any]:
    """Point the ConfigMap's PostgreSQL URLs at a fresh local database; returns a description
    and a cleanup callable."""
    url = urlsplit(config["ONLINE_STORE_URL"])
    assert config["MONITORING_STORE_URL"] == config["ONLINE_STORE_URL"]
    pg = PostgresConfig.from_env()
    try:
        pg.check()
        database = pg.create_database("passos_deploy")
    except ServiceError as error:
        if services_required():
            pytest.fail(f"PostgreSQL obrigatório (PASSOS_REQUIRE_SERVICES=1): {error}")
        logs = stand_in.claim_dir("logs-pvc")
        stand_in.overrides["ONLINE_STORE_URL"] = f"sqlite:///{logs / 'online.db'}"
        stand_in.overrides["MONITORING_STORE_URL"] = f"sqlite:///{logs / 'monitoring.db'}"
        stand_in.overrides["FOLLOWUPS_STORE_URL"] = f"sqlite:///{logs / 'monitoring.db'}"
        return f"sqlite ({error})", lambda: None
    stand_in.replacements[f"{url.netloc}{url.path}"] = f"{pg.host}:{pg.port}/{database}"
    secrets = dict(stand_in.secrets)
    secrets["passos-magicos-db"] = {"username": pg.user, "password": pg.password}
    stand_in.secrets = secrets
    return "postgresql", lambda: pg.drop_database(database)


def _training_data(stand_in: KubeStandIn, config: dict[str, str], root: Path) -> tuple[str, Any]:
    """The PEDE file at PEDE_DATA_PATH's bucket and key on a local S3, when there is one."""
    content = render_synthetic(students=400, seed=5)
    location = urlsplit(config["PEDE_DATA_PATH"])
    assert location.scheme == "s3"
    server: S3Server | None = None
    try:
        server = start_seaweedfs(root / "s3", bucket=location.netloc)
    except ServiceError as error:
        if services_required():
            pytest.fail(f"SeaweedFS obrigatório (PASSOS_REQUIRE_SERVICES=1): {error}")
        local = root / "pede.csv"
        local.write_bytes(content)
        stand_in.overrides["PEDE_DATA_PATH"] = str(local)
        return f"arquivo local ({error})", lambda: None
    server.client().put_object(Bucket=location.netloc, Key=location.path.lstrip("/"), Body=content)
    secrets = dict(stand_in.secrets)
    environment = server.env()
    secrets["mlops-data-creds"] = {
        key: environment[key]
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    } | {"AWS_ENDPOINT_URL": server.endpoint_url}
    stand_in.secrets = secrets
    return "s3", lambda: server.process.stop(sigkill_only=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root = tmp_path_factory.mktemp("cluster")
    manifests = load_manifests(exclude=("secrets.example.yaml",))
    config = configmaps(manifests)[CONFIG]
    with SlackReceiver() as slack:
        stand_in = KubeStandIn(
            root=root,
            config_maps=configmaps(manifests),
            secrets={
                "passos-magicos-api-tokens": API_TOKENS,
                # Placeholders until a local service replaces them (see _postgres/_training_data).
                "passos-magicos-db": {"username": "sem-postgres", "password": "sem-postgres"},
                "mlops-data-creds": {
                    "AWS_ACCESS_KEY_ID": "sem-s3",
                    "AWS_SECRET_ACCESS_KEY": "sem-s3",
                    "AWS_DEFAULT_REGION": "us-east-1",
                },
                "mlops-monitoring-alerts": {"SLACK_WEBHOOK_URL": slack.url},
                # mlflow-tracking-auth: absent on purpose (optional; the embedded store has no auth)
            },
            overrides=dict(OVERRIDES),
        )
        database, drop_database = _postgres(stand_in, config)
        data_source, stop_s3 = _training_data(stand_in, config, root)
        try:
            yield LocalCluster(root, manifests, stand_in, slack, database, data_source)
        finally:
            stop_s3()
            drop_database()


def assert_read_only_root(prepared: Prepared) -> None:
    """The image's root filesystem is read-only: nothing may land in WORKDIR."""
    assert files_under(prepared.cwd) == [], f"{prepared.container.key} escreveu fora dos volumes"


@pytest.fixture(scope="module")
def trained(cluster: LocalCluster) -> dict[str, Any]:
    """The training CronJob's command, then the promotion deploy-model.yml runs."""
    train = cluster.stand_in.prepare(cluster.container(TRAIN))
    started = time.monotonic()
    result = run(train.argv, train.env, train.cwd, timeout=600)
    cluster.timings["train"] = time.monotonic() - started
    assert_read_only_root(train)

    # deploy-model.yml: `passos-magicos promote` with the same settings (version -> @production).
    started = time.monotonic()
    promoted = run(["passos-magicos", "promote"], train.env, train.cwd, timeout=300)
    cluster.timings["promote"] = time.monotonic() - started
    return {
        "prepared": train,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "promote": promoted,
    }


@pytest.mark.slow
def test_training_cronjob_trains_registers_and_materializes(
    cluster: LocalCluster, trained: dict[str, Any]
) -> None:
    train: Prepared = trained["prepared"]
    assert "portão aprovado" in trained["stdout"], trained["stdout"] + trained["stderr"]
    # PEDE_DATA_PATH was read (from S3 when there is a local one), not the synthetic default.
    assert "usando dados sintéticos" not in trained["stderr"]
    assert "arquivo PEDE_PASSOS_DATASET_FIAP.csv" in trained["stderr"]
    assert "@production: versão — → 1" in trained["promote"].stdout
    data_dir = train.volumes["/app/data"]
    assert any((data_dir / "feature_store" / "offline").rglob("*.parquet"))
    assert (data_dir / "mlflow" / "mlflow.db").is_file()  # the embedded registry (override)
    if cluster.database == "postgresql":
        assert "loja online: versão 1 materializada" in trained["stderr"]


@pytest.fixture(scope="module")
def api(cluster: LocalCluster, trained: dict[str, Any]) -> Iterator[tuple[Prepared, Server]]:
    container = cluster.container(API)
    service = find(cluster.manifests, "Service", "passos-magicos-api")
    (service_port,) = service["spec"]["ports"]
    container_port = container.port_number(service_port["targetPort"])
    local = free_port()
    cluster.stand_in.add_service("passos-magicos-api", NAMESPACE, service_port["port"], local)
    assert option_value(container.argv(), "--port") == str(container_port)
    prepared = cluster.stand_in.prepare(
        container,
        ports={container_port: local},
        options={"--port": str(local), "--host": LOCALHOST},
    )
    ready = prepared.probe_urls()["readinessProbe"]
    with serve(
        prepared.argv, prepared.env, prepared.cwd, ready, cluster.root / "logs" / "api.log"
    ) as server:
        cluster.timings["api_ready"] = server.startup_seconds
        yield prepared, server
    assert_read_only_root(prepared)


@pytest.mark.slow
def test_api_deployment_serves_and_its_probe_paths_answer_200(
    api: tuple[Prepared, Server],
) -> None:
    prepared, server = api
    probes = prepared.probe_urls()
    assert set(probes) == {"startupProbe", "readinessProbe", "livenessProbe"}
    for kind, url in probes.items():
        assert http_status(url) == 200, f"{kind} {url}"
    assert http_status(prepared.url(8000, "/nao-existe")) == 404  # 200 is not for any path
    assert "Uvicorn running" in server.log() or "Application startup complete" in server.log()
    assert "ModuleNotFoundError" not in server.log()
    # The follow-up tables were migrated on start-up, in the ConfigMap's database.
    followups = _get_json(prepared.url(8000, "/acompanhamentos?ciclo=2022"), CLIENT_TOKEN)
    assert followups["total"] == 0 and followups["itens"] == []


def _get_json(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - local server
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        return json.loads(response.read())


@pytest.fixture(scope="module")
def predictions(cluster: LocalCluster, api: tuple[Prepared, Server]) -> int:
    """Every student of the online feature store scored once, through the API."""
    prepared, _ = api
    info = _get_json(prepared.url(8000, "/model/info"), CLIENT_TOKEN)
    # @production from the registry (MODEL_SOURCE=mlflow), not the local fallback.
    assert (info["versao"], info["alias"], info["fonte"]) == ("1", "production", "mlflow"), info
    scored = _get_json(prepared.url(8000, "/predict/alunos"), CLIENT_TOKEN)
    count = len(scored["previsoes"])
    assert count >= int(cluster.stand_in.config_maps[CONFIG]["MONITOR_MIN_SAMPLES"])
    log = prepared.volumes["/app/logs"] / "predictions.jsonl"
    assert log.is_file() and len(log.read_text().splitlines()) >= count
    return count


@pytest.mark.slow
def test_dashboard_deployment_serves_its_probe_path(
    cluster: LocalCluster, api: tuple[Prepared, Server]
) -> None:
    api_prepared, _ = api
    container = cluster.container(DASHBOARD)
    (declared_port,) = [p["containerPort"] for p in container.spec["ports"]]
    assert option_value(container.argv(), "--port") == str(declared_port)
    local = free_port()
    prepared = cluster.stand_in.prepare(
        container,
        ports={declared_port: local},
        options={"--port": str(local), "--host": LOCALHOST},
    )
    probes = prepared.probe_urls()
    assert set(probes.values()) == {prepared.url(declared_port, "/_stcore/health")}
    with serve(
        prepared.argv,
        prepared.env,
        prepared.cwd,
        probes["readinessProbe"],
        cluster.root / "logs" / "dashboard.log",
    ) as server:
        cluster.timings["dashboard_ready"] = server.startup_seconds
        for kind, url in probes.items():
            assert http_status(url) == 200, f"{kind} {url}"
        # API_URL came from the ConfigMap and reaches the API Deployment's Service.
        assert f"(API: http://{LOCALHOST}:{api_prepared.ports[8000]})" in server.log()
    assert_read_only_root(prepared)


@pytest.mark.slow
def test_monitoring_cronjob_runs_reaches_the_api_and_writes_its_report(
    cluster: LocalCluster, predictions: int
) -> None:
    prepared = cluster.stand_in.prepare(cluster.container(MONITOR))
    started = time.monotonic()
    result = run(prepared.argv, prepared.env, prepared.cwd, timeout=300)
    cluster.timings["monitor"] = time.monotonic() - started
    assert_read_only_root(prepared)
    report_path = Path(result.stdout.strip().splitlines()[-1].removeprefix("relatório: "))
    reports = prepared.volumes["/app/logs"] / "monitoring"
    assert report_path.parent == reports and report_path.is_file()
    report = json.loads(report_path.read_text())
    assert report["log"]["previsoes_na_janela"] == predictions
    checks = {check["nome"]: check for check in report["verificacoes"]}
    # GET /metrics reached the API through API_URL with the client token from the Secret.
    assert checks["distribuicao_classes"]["dados"]["api"]["predicoes_na_janela"] == predictions
    # The reference profile of version 1 was found: drift was computed, not skipped.
    assert "referencia" not in checks, checks.get("referencia")
    assert report["status"] in {"ok", "alerta"}
    # Alerts (if any) went to the webhook of the optional Secret; none is lost silently.
    delivered = [d for d in report["alertas"] if d.get("entregue")]
    assert len(cluster.slack.requests) >= len(delivered)
    print(  # shown with -s: what ran against what, and how long it took
        f"\nbanco: {cluster.database}; dados: {cluster.data_source}; "
        + ", ".join(f"{k} {v:.1f} s" for k, v in cluster.timings.items())
    )


def test_options_replaced_for_local_runs_are_the_declared_ones() -> None:
    manifests = load_manifests()
    for key in (API, DASHBOARD):
        argv = by_key(manifests, key).argv()
        for flag in ("--host", "--port"):
            assert option_value(argv, flag) is not None, f"{key}: {flag}"
        with pytest.raises(DeclarationError):
            replace_option(argv, "--workers", "2")
