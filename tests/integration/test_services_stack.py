"""End-to-end check of the real stack: MLflow server on PostgreSQL with artifacts on S3.

These tests do not exercise project code; they prove the fixtures give later tests a stack
that behaves like production (tracking, registry, aliases, proxied artifacts, restarts).
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

from tests.services import MlflowServer, S3Server

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo


@pytest.fixture(scope="module")
def tiny_model() -> tuple[LogisticRegression, NDArray[np.float64]]:
    """A small fitted classifier and the rows to predict on (seconds to log, not minutes)."""
    rng = np.random.default_rng(42)
    features = rng.normal(size=(60, 3))
    target = (features[:, 0] + 0.5 * features[:, 1] > 0).astype(int)
    return LogisticRegression().fit(features, target), features[:10]


def _log_and_register(model: LogisticRegression, name: str) -> ModelInfo:
    """Log `model` in the active run and register it; returns MLflow's ModelInfo."""
    import mlflow.sklearn

    # cloudpickle: skops would need trusted types on load; explicit requirements skip the
    # (slow, network-hungry) inference of the environment.
    info: ModelInfo = mlflow.sklearn.log_model(
        model,
        name="model",
        serialization_format="cloudpickle",
        pip_requirements=["scikit-learn"],
        registered_model_name=name,
    )
    return info


def _s3_key(artifact_uri: str, prefix: str) -> str:
    """`mlflow-artifacts:/1/<run>/artifacts` → the S3 key the server proxied it to."""
    path = artifact_uri.removeprefix("mlflow-artifacts:").lstrip("/")
    return f"{prefix}/{path}"


def test_run_model_alias_round_trip_on_postgres_and_s3(
    mlflow_env: dict[str, str],
    mlflow_server: MlflowServer,
    s3_server: S3Server,
    postgres_url: str,
    tiny_model: tuple[LogisticRegression, NDArray[np.float64]],
) -> None:
    import mlflow
    import mlflow.pyfunc
    import sqlalchemy
    from mlflow import MlflowClient

    model, rows = tiny_model
    name = f"stack-{uuid.uuid4().hex[:8]}"
    experiment = mlflow.set_experiment(name)
    # Proxied artifacts: the client only ever sees mlflow-artifacts:/, never s3://.
    assert experiment.artifact_location.startswith("mlflow-artifacts:")

    with mlflow.start_run() as run:
        mlflow.log_params({"model": "logistic_regression", "seed": 42})
        mlflow.log_metrics({"roc_auc": 0.91, "f1": 0.82})
        mlflow.log_text("ponto de virada\n", "notes/hello.txt")
        info = _log_and_register(model, name)
    run_id = run.info.run_id
    version = str(info.registered_model_version)
    assert version == "1"

    client = MlflowClient()
    client.set_registered_model_alias(name, "staging", version)
    assert client.get_model_version_by_alias(name, "staging").run_id == run_id
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@staging")
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))

    # The bytes really are in the SeaweedFS bucket, where --artifacts-destination points.
    prefix = mlflow_server.artifacts_destination.removeprefix(f"s3://{s3_server.bucket}/")
    keys = set(s3_server.keys(f"{prefix}/{experiment.experiment_id}/"))
    run_artifacts = _s3_key(run.info.artifact_uri, prefix)
    assert f"{run_artifacts}/notes/hello.txt" in keys
    model_artifacts = _s3_key(mlflow.get_logged_model(info.model_id).artifact_location, prefix)
    assert {f"{model_artifacts}/MLmodel", f"{model_artifacts}/model.pkl"} <= keys
    body = (
        s3_server.client()
        .get_object(Bucket=s3_server.bucket, Key=f"{run_artifacts}/notes/hello.txt")["Body"]
        .read()
    )
    assert body == b"ponto de virada\n"

    # …and the metadata really is in PostgreSQL, not in some local fallback store.
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            status = connection.execute(
                sqlalchemy.text("SELECT status FROM runs WHERE run_uuid = :run"), {"run": run_id}
            ).scalar_one()
            params = {
                row.key: row.value
                for row in connection.execute(
                    sqlalchemy.text("SELECT key, value FROM params WHERE run_uuid = :run"),
                    {"run": run_id},
                )
            }
            metrics = {
                row.key: row.value
                for row in connection.execute(
                    sqlalchemy.text("SELECT key, value FROM latest_metrics WHERE run_uuid = :run"),
                    {"run": run_id},
                )
            }
            alias_version = connection.execute(
                sqlalchemy.text(
                    "SELECT version FROM registered_model_aliases "
                    "WHERE name = :name AND alias = 'staging'"
                ),
                {"name": name},
            ).scalar_one()
    finally:
        engine.dispose()
    assert status == "FINISHED"
    assert params == {"model": "logistic_regression", "seed": "42"}
    assert metrics == pytest.approx({"roc_auc": 0.91, "f1": 0.82})
    assert str(alias_version) == version


def test_registered_model_survives_server_restart(
    mlflow_env: dict[str, str],
    mlflow_server: MlflowServer,
    tiny_model: tuple[LogisticRegression, NDArray[np.float64]],
) -> None:
    import mlflow
    import mlflow.pyfunc
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    model, rows = tiny_model
    name = f"restart-{uuid.uuid4().hex[:8]}"
    mlflow.set_experiment(name)
    with mlflow.start_run():
        version = str(_log_and_register(model, name).registered_model_version)
    client = MlflowClient()
    client.set_registered_model_alias(name, "production", version)
    tracking_uri = mlflow_server.tracking_uri

    mlflow_server.stop()
    try:
        assert not mlflow_server.running
        assert not mlflow_server.health_ok()
        # With the fixture's short retries a client notices the outage in seconds.
        started = time.monotonic()
        with pytest.raises(MlflowException):
            client.get_model_version_by_alias(name, "production")
        assert time.monotonic() - started < 30
    finally:
        mlflow_server.start()

    assert mlflow_server.tracking_uri == tracking_uri  # same port: clients need no new config
    assert mlflow_server.health_ok()
    assert client.get_model_version_by_alias(name, "production").version == version
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@production")
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))
