"""The registry flow against PostgreSQL + SeaweedFS (S3) + a real `mlflow server`, reading the
training data from S3 and writing predictions back to it."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy

from passos_magicos.settings import get_settings
from tests.flows import FlowFiles, registry_flow, synthetic_csv, with_shuffled_labels
from tests.services import S3Server

pytestmark = pytest.mark.slow
BUCKET = "pede-dados"


def test_registry_flow_on_the_server_stack(
    isolated: Path,
    mlflow_env: dict[str, str],
    s3_server: S3Server,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = s3_server.client()
    if BUCKET not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=BUCKET)
    good = synthetic_csv(seed=5)
    client.put_object(Bucket=BUCKET, Key="entrada/pede.csv", Body=good)
    client.put_object(Bucket=BUCKET, Key="entrada/ruim.csv", Body=with_shuffled_labels(good))
    # The data reader is the only S3 client here; MLflow artifacts go through the server.
    for name, value in s3_server.env().items():
        if name != "MLFLOW_S3_ENDPOINT_URL":
            monkeypatch.setenv(name, value)

    def read_predictions(uri: str) -> pd.DataFrame:
        key = uri.removeprefix(f"s3://{BUCKET}/")
        return pd.read_csv(io.BytesIO(client.get_object(Bucket=BUCKET, Key=key)["Body"].read()))

    registry_flow(
        FlowFiles(
            good_data=f"s3://{BUCKET}/entrada/pede.csv",
            shuffled_data=f"s3://{BUCKET}/entrada/ruim.csv",
            predictions=f"s3://{BUCKET}/saida/previsoes.csv",
            read_predictions=read_predictions,
        )
    )
    # Runs and versions live in PostgreSQL; model files in the S3 bucket behind the server.
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.connect() as connection:
        versions = connection.execute(
            sqlalchemy.text("SELECT count(*) FROM model_versions WHERE name = :n"),
            {"n": get_settings().MLFLOW_MODEL_NAME},
        ).scalar_one()
    assert versions == 3
    assert any(key.endswith("python_model.pkl") for key in s3_server.keys("mlartifacts/"))
    assert not (isolated / "data" / "mlflow").exists()  # nothing went to the local store
