"""Session fixtures for the real service stack: PostgreSQL, SeaweedFS (S3) and `mlflow server`.

Each service starts once per pytest session on free ports and is torn down at the end. A test
that uses any of these fixtures is marked `services` automatically, so `-m "not services"`
deselects it. When a service cannot start, the test is skipped with the reason, unless
PASSOS_REQUIRE_SERVICES=1 (CI), where it fails loudly instead.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final, NoReturn, TypeVar

import pytest

# The repository root, so `tests.services` imports however pytest was started (it already is
# on sys.path when tests/ is a package; this keeps working if that ever changes).
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.services import (  # noqa: E402  # needs the repository root on sys.path
    MlflowServer,
    PostgresConfig,
    S3Server,
    ServiceError,
    mlflow_server_available,
    start_seaweedfs,
)

SERVICE_FIXTURES: Final = frozenset({"postgres_url", "s3_server", "mlflow_server", "mlflow_env"})
ARTIFACTS_PREFIX: Final = "mlartifacts"

T = TypeVar("T")

# Startup seconds per service, printed in the terminal summary (and useful for CI timing).
_TIMINGS: dict[str, float] = {}


def services_required() -> bool:
    return os.environ.get("PASSOS_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> NoReturn:
    if services_required():
        pytest.fail(
            f"serviço obrigatório indisponível (PASSOS_REQUIRE_SERVICES=1): {reason}", pytrace=False
        )
    pytest.skip(reason)


def _require(start: Callable[[], T]) -> T:
    """Run `start`; on ServiceError skip or fail (outside `except`: no chained traceback)."""
    try:
        return start()
    except ServiceError as error:
        reason = str(error)
    _unavailable(reason)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselection, so `-m "not services"` sees the mark
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _TIMINGS:
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in _TIMINGS.items())
        terminalreporter.write_line(f"serviços (tempo de subida): {parts}")


@pytest.fixture(scope="session")
def services_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the services keep their data and logs (kept by pytest for post-mortems)."""
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a fresh PostgreSQL database, dropped at the end of the session."""
    config = PostgresConfig.from_env()
    started = time.monotonic()
    _require(config.check)
    database = _require(config.create_database)
    _TIMINGS["PostgreSQL (banco novo)"] = time.monotonic() - started
    yield config.sqlalchemy_url(database)
    config.drop_database(database)


@pytest.fixture(scope="session")
def s3_server(services_workdir: Path) -> Iterator[S3Server]:
    """SeaweedFS S3 with bucket `mlflow`: endpoint_url, access_key, secret_key, bucket, client()."""
    server = _require(lambda: start_seaweedfs(services_workdir))
    _TIMINGS["SeaweedFS (S3)"] = server.startup_seconds
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mlflow_server(
    postgres_url: str, s3_server: S3Server, services_workdir: Path
) -> Iterator[MlflowServer]:
    """`mlflow server` on PostgreSQL with artifacts proxied to S3.

    Attributes: tracking_uri, port, backend_store_uri, artifacts_destination, log_path;
    stop() / start() / restart() keep the same port, for tests of outages and fallbacks.
    """
    _require(mlflow_server_available)
    server = MlflowServer(
        backend_store_uri=postgres_url,
        artifacts_destination=f"s3://{s3_server.bucket}/{ARTIFACTS_PREFIX}",
        workdir=services_workdir,
        extra_env=s3_server.env(),  # only the server talks to S3
    )
    _TIMINGS["MLflow server"] = _require(server.start)
    yield server
    server.stop()
    if restarts := server.startup_seconds[1:]:
        _TIMINGS["MLflow server (reinício)"] = max(restarts)


@pytest.fixture
def mlflow_env(
    mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """Point MLflow (and the project's Settings) at the test server for one test.

    Returns the variables it set, to pass on to subprocesses (`env={**os.environ, **env}`).
    S3 credentials are removed: a client that only knows the tracking URI must be enough.
    Retries are short so that tests that stop the server see the failure in seconds.
    """
    import mlflow

    from passos_magicos.settings import get_settings

    if not mlflow_server.running:  # an earlier test may have stopped it and failed
        _require(mlflow_server.start)
    variables = {
        "MLFLOW_TRACKING_URI": mlflow_server.tracking_uri,
        "MLFLOW_REGISTRY_URI": mlflow_server.tracking_uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
        # The server lives for the whole session: each test registers its own model, so
        # version numbers and aliases do not depend on which tests ran before.
        "MLFLOW_MODEL_NAME": f"passos-magicos-ponto-virada-{uuid.uuid4().hex[:8]}",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "MLFLOW_S3_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    # mlflow.set_tracking_uri() from an earlier test would win over the environment.
    mlflow.set_tracking_uri(mlflow_server.tracking_uri)
    mlflow.set_registry_uri(mlflow_server.tracking_uri)
    get_settings.cache_clear()
    yield variables
    if mlflow.active_run() is not None:
        mlflow.end_run()
    # Back to "unset" so later tests resolve the URI from their own environment again;
    # monkeypatch then restores the variables themselves.
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None is accepted: unset
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    get_settings.cache_clear()
