"""The Kubernetes and Argo CD files, checked offline: schema validation of every manifest
(kubernetes-validate --strict for built-in kinds, check-jsonschema against the vendored schemas for
the Argo CD Application and the CloudNativePG Cluster), yamllint, checkov, and what schemas cannot
see — names that must agree across files, probe paths the API really serves, settings that exist.

What the containers run is proven in test_container_commands.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from passos_magicos.data.dataset import build_dataset
from passos_magicos.data.storage import SourceFile
from passos_magicos.data.synth import render_synthetic
from passos_magicos.feature_store.materialize import materialize_online, store_offline
from passos_magicos.settings import Settings
from tests.deploy.commands import (
    K8S_DIR,
    REPO_ROOT,
    VENV_BIN,
    Container,
    configmaps,
    containers,
    find,
    load_manifests,
    load_yaml,
    mounts,
    pod_spec,
    secret_references,
    secret_shapes,
)
from tests.serving.conftest import LiveServer, publish_local_model, settings_for

NAMESPACE = "passos-magicos"
ARGOCD_DIR = REPO_ROOT / "argocd"
EXAMPLE_SECRETS = "secrets.example.yaml"
KUSTOMIZATION = "kustomization.yaml"
CHECKOV = ("uvx", "--from", "checkov==3.3.30", "checkov")
PVCS = {"models-pvc", "logs-pvc", "feature-store-pvc"}
IMAGES = {
    "api": "docker.io/passosmagicos/passos-magicos-api:",
    "dashboard": "docker.io/passosmagicos/passos-magicos-dashboard:",
    "train": "docker.io/passosmagicos/passos-magicos-jobs:",
    "monitor": "docker.io/passosmagicos/passos-magicos-jobs:",
}
ARGS = {
    "api": ["serve", "--host", "0.0.0.0", "--port", "8000"],  # noqa: S104 - inside the pod
    "dashboard": ["dashboard", "--host", "0.0.0.0", "--port", "8501"],  # noqa: S104
    "train": ["train"],
    "monitor": ["monitor"],
}


def schemas_dir() -> Path:
    """The CRD schemas vendored in tests/deploy/schemas (MIT, see SOURCE.md there)."""
    return Path(__file__).with_name("schemas")


def manifest_files() -> list[Path]:
    """Every Kubernetes manifest in k8s/ (the Kustomization is Kustomize's, not the API's)."""
    return sorted(p for p in K8S_DIR.glob("*.y*ml") if p.name != KUSTOMIZATION)


def tool(name: str) -> str:
    path = VENV_BIN / name
    assert path.is_file(), f"{name} ausente em {VENV_BIN}: rode `uv sync`"
    return str(path)


def read(path: Path) -> dict[str, Any]:
    (document,) = load_yaml(path)
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    return load_manifests(exclude=(EXAMPLE_SECRETS,))


@pytest.fixture(scope="module")
def config(manifests: list[dict[str, Any]]) -> dict[str, str]:
    return configmaps(manifests)["passos-magicos-config"]


@pytest.fixture(scope="module")
def cnpg() -> dict[str, Any]:
    return read(ARGOCD_DIR / "pg-mlflow.yml")


@pytest.fixture(scope="module")
def mlflow_values() -> dict[str, Any]:
    return read(ARGOCD_DIR / "mlflow-helm-values.yml")


def workload_containers(manifests: list[dict[str, Any]]) -> dict[str, Container]:
    return {c.name: c for c in containers(manifests)}


# ---------------------------------------------------------------------------------------------
# Validators


def test_every_manifest_passes_kubernetes_validate_strict() -> None:
    files = manifest_files()
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # A kind without a built-in schema is only a warning for the tool: not here.
    assert "Couldn't find schema" not in output, output
    documents = sum(len(load_yaml(path)) for path in files)
    assert output.count(" passed for resource ") == documents, output


def test_strict_validation_rejects_an_unknown_field(tmp_path: Path) -> None:
    broken = tmp_path / "deployment.yaml"
    text = (K8S_DIR / "deployment.yaml").read_text()
    broken.write_text(text.replace("revisionHistoryLimit:", "revisionHistoryLimt:"))
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "revisionHistoryLimt" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("file", "schema", "api_version", "kind"),
    [
        (
            "application.yaml",
            "argocd-application_v1alpha1.json",
            "argoproj.io/v1alpha1",
            "Application",
        ),
        ("pg-mlflow.yml", "cnpg-cluster_v1.json", "postgresql.cnpg.io/v1", "Cluster"),
    ],
)
def test_argocd_resources_pass_their_crd_schemas(
    file: str, schema: str, api_version: str, kind: str
) -> None:
    schema_path = schemas_dir() / schema
    document = read(ARGOCD_DIR / file)
    # The schemas do not constrain these two: checked here, so the right schema is used.
    assert (document["apiVersion"], document["kind"]) == (api_version, kind)
    result = subprocess.run(
        [tool("check-jsonschema"), "--schemafile", str(schema_path), str(ARGOCD_DIR / file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_yaml_is_lint_clean() -> None:
    result = subprocess.run(
        [tool("yamllint"), "--strict", "-c", str(REPO_ROOT / ".yamllint"), "k8s", "argocd"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_checkov_finds_nothing_and_every_skip_says_why() -> None:
    if shutil.which(CHECKOV[0]) is None:
        pytest.skip("uvx ausente: checkov roda com `uvx --from checkov==3.3.30 checkov`")
    result = subprocess.run(
        [*CHECKOV, "--skip-download", "--framework", "kubernetes", "-d", "k8s", "-o", "json"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
        timeout=600,
    )
    report = json.loads(result.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [], failed
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 100  # it did look at the workloads
    for skipped in report["results"]["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason) > 30, f"{skipped['check_id']} em {skipped['resource']}: sem motivo"


# ---------------------------------------------------------------------------------------------
# Kustomize, namespaces, secrets


def test_kustomization_applies_every_real_manifest_and_no_secret() -> None:
    kustomization = read(K8S_DIR / KUSTOMIZATION)
    listed = kustomization["resources"]
    real = {p.name for p in manifest_files()} - {EXAMPLE_SECRETS}
    assert sorted(listed) == sorted(real)
    assert kustomization["namespace"] == NAMESPACE
    for name in listed:
        kinds = {doc["kind"] for doc in load_yaml(K8S_DIR / name)}
        assert "Secret" not in kinds, f"{name}: Secrets não vão para o Git"


def test_everything_lives_in_the_namespace(manifests: list[dict[str, Any]]) -> None:
    namespace = find(manifests, "Namespace", NAMESPACE)
    assert namespace["metadata"]["name"] == NAMESPACE
    for manifest in manifests:
        if manifest["kind"] != "Namespace":
            assert manifest["metadata"].get("namespace") == NAMESPACE, manifest["metadata"]
    examples = [m for m in load_manifests() if m["_file"] == EXAMPLE_SECRETS]
    assert examples and all(m["metadata"]["namespace"] == NAMESPACE for m in examples)
    assert read(ARGOCD_DIR / "pg-mlflow.yml")["metadata"]["namespace"] == NAMESPACE


def test_secret_examples_cover_every_reference_with_placeholders(
    manifests: list[dict[str, Any]],
) -> None:
    examples = [m for m in load_manifests() if m["_file"] == EXAMPLE_SECRETS]
    shapes = secret_shapes(examples)
    referenced: set[str] = set()
    for container in containers(manifests):
        for name, keys in secret_references(container).items():
            referenced.add(name)
            assert name in shapes, f"{container.key}: Secret {name} sem exemplo"
            assert keys is None or keys <= shapes[name], (container.key, name, keys)
    assert referenced == set(shapes), "exemplo de Secret que nenhum contêiner usa"
    assert {
        "mlops-data-creds",
        "mlflow-tracking-auth",
        "mlops-monitoring-alerts",
        "passos-magicos-api-tokens",
    } <= referenced
    not_secret = {"AWS_DEFAULT_REGION", "username"}
    for example in examples:
        for key, value in example["stringData"].items():
            assert key in not_secret or "REPLACE-ME" in value, f"{key}: valor que parece real"
    tokens = next(e for e in examples if e["metadata"]["name"] == "passos-magicos-api-tokens")
    data = tokens["stringData"]
    assert data["API_TOKEN"] in data["API_TOKENS"].split(","), "o token cliente é aceito pela API"
    team = next(e for e in examples if e["metadata"]["name"] == "passos-magicos-team-tokens")
    pairs = [entry.split(":", 1) for entry in team["stringData"]["TEAM_TOKENS"].split(",")]
    assert all(len(pair) == 2 and all(pair) for pair in pairs), "TEAM_TOKENS: nome:token"
    assert team["stringData"]["DASHBOARD_TEAM_TOKEN"] in {token for _, token in pairs}


def test_secrets_the_docs_call_optional_are_optional(manifests: list[dict[str, Any]]) -> None:
    for container in containers(manifests):
        for source in container.spec.get("envFrom", []):
            ref = source.get("secretRef")
            if ref and ref["name"] in {"mlflow-tracking-auth", "mlops-monitoring-alerts"}:
                assert ref.get("optional") is True, (container.key, ref)


# ---------------------------------------------------------------------------------------------
# Workloads


def test_every_container_is_hardened_and_sized(manifests: list[dict[str, Any]]) -> None:
    for container in containers(manifests):
        pod = container.pod
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        security = container.spec["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        resources = container.spec["resources"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[bound]), (container.key, bound)
        # Read-only root: /tmp is a writable emptyDir in every container.
        assert mounts(container)["/tmp"][0] == "emptyDir", container.key
        env = {e["name"]: e.get("value") for e in container.spec.get("env", [])}
        assert env.get("HOME") == "/tmp", container.key


def test_images_and_arguments_follow_the_image_contract(manifests: list[dict[str, Any]]) -> None:
    found = workload_containers(manifests)
    assert set(found) == set(ARGS)
    for name, container in found.items():
        assert "command" not in container.spec, "o ENTRYPOINT da imagem é passos-magicos"
        assert container.spec["args"] == ARGS[name]
        assert container.image.startswith(IMAGES[name]), container.image
        assert not container.image.endswith(":latest")


def test_api_deployment(manifests: list[dict[str, Any]]) -> None:
    deployment = find(manifests, "Deployment", "passos-magicos-api")
    assert deployment["spec"]["replicas"] == 2
    template = deployment["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert set(annotations) >= {
        "mlops.passos-magicos/reload-at",
        "mlops.passos-magicos/model-version",
    }
    assert all(isinstance(v, str) for v in annotations.values())
    api = workload_containers(manifests)["api"]
    assert api.http_probes() == {
        "startupProbe": ("/health", 8000),
        "readinessProbe": ("/ready", 8000),
        "livenessProbe": ("/health", 8000),
    }
    assert {path: kind for path, (kind, _) in mounts(api).items()} == {
        "/app/models": "pvc",
        "/app/logs": "pvc",
        "/app/data": "pvc",
        "/tmp": "emptyDir",
    }
    hpa = find(manifests, "HorizontalPodAutoscaler", "passos-magicos-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "passos-magicos-api",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"


@pytest.mark.parametrize(
    ("service", "deployment", "port"),
    [
        ("passos-magicos-api", "passos-magicos-api", 8000),
        ("passos-magicos-dashboard", "passos-magicos-dashboard", 8501),
    ],
)
def test_services_reach_their_pods(
    manifests: list[dict[str, Any]], service: str, deployment: str, port: int
) -> None:
    spec = find(manifests, "Service", service)["spec"]
    workload = find(manifests, "Deployment", deployment)
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"].items() <= labels.items()
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = [c for c in containers([workload]) if not c.init]
    (service_port,) = spec["ports"]
    assert service_port["port"] == port
    assert container.port_number(service_port["targetPort"]) == port


def test_dashboard_deployment(manifests: list[dict[str, Any]]) -> None:
    dashboard = workload_containers(manifests)["dashboard"]
    assert set(dashboard.http_probes().values()) == {("/_stcore/health", 8501)}
    token = next(e for e in dashboard.spec["env"] if e["name"] == "API_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {
        "name": "passos-magicos-api-tokens",
        "key": "API_TOKEN",
    }
    # The client token only: never the admin token or the whole token list; and one team token
    # (optional) for the follow-up form, never the team's whole list.
    assert secret_references(dashboard) == {
        "passos-magicos-api-tokens": {"API_TOKEN"},
        "passos-magicos-team-tokens": {"DASHBOARD_TEAM_TOKEN"},
    }
    team = next(e for e in dashboard.spec["env"] if e["name"] == "DASHBOARD_TEAM_TOKEN")
    assert team["valueFrom"]["secretKeyRef"]["optional"] is True


@pytest.mark.parametrize(
    ("name", "schedule", "claims"),
    [
        ("passos-magicos-train", "0 6 * * 1", {"feature-store-pvc", "models-pvc", "logs-pvc"}),
        ("passos-magicos-monitoring", "0 */6 * * *", PVCS),
    ],
)
def test_cronjobs(
    manifests: list[dict[str, Any]], name: str, schedule: str, claims: set[str]
) -> None:
    cronjob = find(manifests, "CronJob", name)
    spec = cronjob["spec"]
    assert spec["schedule"] == schedule
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] >= 1 and job["activeDeadlineSeconds"] > 0
    pod = pod_spec(cronjob)
    assert pod is not None and pod["restartPolicy"] == "Never"
    (container,) = containers([cronjob])
    assert {n for kind, n in mounts(container).values() if kind == "pvc"} == claims


def test_pvcs_exist_are_shared_and_used(manifests: list[dict[str, Any]]) -> None:
    claims = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "PersistentVolumeClaim"}
    assert set(claims) == PVCS
    for claim in claims.values():
        # API replicas and the jobs mount them at once, possibly from different nodes.
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
        assert claim["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false"
    used = {
        name for c in containers(manifests) for kind, name in mounts(c).values() if kind == "pvc"
    }
    assert used == PVCS


def test_network_policies_select_every_pod(manifests: list[dict[str, Any]]) -> None:
    policies = [m for m in manifests if m["kind"] == "NetworkPolicy"]
    for manifest in manifests:
        spec = pod_spec(manifest)
        if spec is None:
            continue
        template = manifest["spec"]
        if manifest["kind"] == "CronJob":
            template = template["jobTemplate"]["spec"]
        labels = template["template"]["metadata"]["labels"]
        assert any(_selects(p["spec"]["podSelector"], labels) for p in policies), manifest["kind"]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Settings: the ConfigMap against Settings, and names that must agree across files


def test_configmap_keys_are_settings_and_values_parse(config: dict[str, str]) -> None:
    unknown = set(config) - set(Settings.model_fields)
    assert not unknown, f"chaves que Settings não lê: {sorted(unknown)}"
    settings = Settings(_env_file=None, **config)  # type: ignore[arg-type]
    assert settings.MLFLOW_MODEL_STAGE == "Production" and settings.model_alias == "production"
    assert settings.MODEL_SOURCE == "mlflow" and settings.MODEL_FALLBACK_LOCAL is True
    assert settings.API_PORT == 8000 and settings.DASHBOARD_PORT == 8501
    secret_like = {name for name, field in Settings.model_fields.items() if "Secret" in str(field)}
    assert not secret_like & set(config), "segredo no ConfigMap"


def test_configmap_paths_are_the_volume_mounts(
    manifests: list[dict[str, Any]], config: dict[str, str]
) -> None:
    by_name = workload_containers(manifests)
    for name in ("api", "monitor"):
        claims = {path: claim for path, (_, claim) in mounts(by_name[name]).items()}
        logs = next(path for path, claim in claims.items() if claim == "logs-pvc")
        assert Path(config["PREDICTION_LOG_PATH"]).parent == Path(logs)
        assert Path(config["MONITOR_REPORT_DIR"]).is_relative_to(logs)
        assert claims[config["DATA_DIR"]] == "feature-store-pvc"
        assert claims[config["MODELS_DIR"]] == "models-pvc"


def test_in_cluster_urls_point_at_the_services_that_exist(
    manifests: list[dict[str, Any]],
    config: dict[str, str],
    cnpg: dict[str, Any],
    mlflow_values: dict[str, Any],
) -> None:
    api = urlsplit(config["API_URL"])
    service = find(manifests, "Service", "passos-magicos-api")
    assert api.netloc == f"passos-magicos-api.{NAMESPACE}.svc.cluster.local:8000"
    assert service["spec"]["ports"][0]["port"] == api.port

    tracking = urlsplit(config["MLFLOW_TRACKING_URI"])
    assert tracking.hostname == f"{mlflow_values['fullnameOverride']}.{NAMESPACE}.svc.cluster.local"
    assert tracking.port == mlflow_values["service"]["port"]
    assert tracking.netloc in mlflow_values["extraArgs"]["allowedHosts"].split(",")

    cluster = cnpg["metadata"]["name"]
    for key in ("ONLINE_STORE_URL", "MONITORING_STORE_URL", "FOLLOWUPS_STORE_URL"):
        url = urlsplit(config[key])
        assert url.scheme == "postgresql+psycopg2"
        assert "@" not in url.netloc, f"{key}: credenciais fora do ConfigMap (PGUSER/PGPASSWORD)"
        assert url.hostname == f"{cluster}-rw.{NAMESPACE}.svc.cluster.local"
        assert url.path == "/passos_magicos"
        assert f"CREATE DATABASE {url.path[1:]} OWNER" in " ".join(
            cnpg["spec"]["bootstrap"]["initdb"]["postInitSQL"]
        )


def test_database_login_is_the_role_cnpg_manages(
    manifests: list[dict[str, Any]], cnpg: dict[str, Any], mlflow_values: dict[str, Any]
) -> None:
    (role,) = cnpg["spec"]["managed"]["roles"]
    secret = role["passwordSecret"]["name"]
    users = {c.name for c in containers(manifests) if secret in secret_references(c)}
    assert users == {"api", "train", "monitor"}
    for name in users:
        env = {e["name"]: e for e in workload_containers(manifests)[name].spec["env"]}
        for variable, key in (("PGUSER", "username"), ("PGPASSWORD", "password")):
            assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": key}
    examples = [m for m in load_manifests() if m["_file"] == EXAMPLE_SECRETS]
    example = next(e for e in examples if e["metadata"]["name"] == secret)
    assert example["type"] == "kubernetes.io/basic-auth"
    assert example["stringData"]["username"] == role["name"]

    backend = mlflow_values["backendStore"]
    assert (
        backend["postgres"]["host"]
        == f"{cnpg['metadata']['name']}-rw.{NAMESPACE}.svc.cluster.local"
    )
    assert backend["postgres"]["database"] == cnpg["spec"]["bootstrap"]["initdb"]["database"]
    assert backend["existingDatabaseSecret"]["name"] == f"{cnpg['metadata']['name']}-app"
    s3 = mlflow_values["artifactRoot"]["s3"]["existingSecret"]
    admin = mlflow_values["auth"]["existingAdminSecret"]
    shapes = secret_shapes(examples)
    assert {s3["keyOfAccessKeyId"], s3["keyOfSecretAccessKey"]} <= shapes[s3["name"]]
    assert {admin["usernameKey"], admin["passwordKey"]} <= shapes[admin["name"]]
    assert mlflow_values["artifactRoot"]["proxiedArtifactStorage"] is True


def test_argocd_application_syncs_k8s_into_the_namespace() -> None:
    app = read(ARGOCD_DIR / "application.yaml")
    spec = app["spec"]
    assert app["metadata"]["namespace"] == "argocd"
    assert spec["source"]["path"] == "k8s"
    assert spec["destination"]["namespace"] == NAMESPACE
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert "CreateNamespace=true" in spec["syncPolicy"]["syncOptions"]
    # The HPA owns the replica count: selfHeal must not fight it.
    assert "RespectIgnoreDifferences=true" in spec["syncPolicy"]["syncOptions"]
    (ignored,) = spec["ignoreDifferences"]
    assert (ignored["kind"], ignored["name"], ignored["jsonPointers"]) == (
        "Deployment",
        "passos-magicos-api",
        ["/spec/replicas"],
    )
    assert "finalizers" not in app["metadata"]


# ---------------------------------------------------------------------------------------------
# Probe paths, against the real app


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("probes")
    settings = settings_for(root)
    publish_local_model(settings, "7", "logistic_regression", seed=2)
    dataset = build_dataset([SourceFile("s.csv", "s.csv", render_synthetic(students=200, seed=4))])
    materialize_online(settings, store_offline(settings, dataset), dataset.digest)
    with LiveServer(settings) as server:
        yield server


@pytest.mark.slow
def test_api_probe_paths_are_served_by_the_app(
    manifests: list[dict[str, Any]], served: LiveServer
) -> None:
    for kind, (path, _) in workload_containers(manifests)["api"].http_probes().items():
        response = httpx.get(f"{served.url}{path}", timeout=10)
        assert response.status_code == 200, f"{kind} {path}: {response.status_code}"
    assert httpx.get(f"{served.url}/nao-existe", timeout=10).status_code == 404
