"""The registry flow, written once and run against the embedded store (e2e) and against the
real PostgreSQL + S3 + MLflow server stack (integration)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from typer.testing import CliRunner, Result

from passos_magicos.cli import app
from passos_magicos.data.synth import render_synthetic
from passos_magicos.settings import get_settings

OUTPUT_COLUMNS = ["aluno_id", "ano", "probabilidade_pv", "pv_previsto", "modelo_versao"]


def cli(*args: str, expect: int = 0) -> Result:
    get_settings.cache_clear()
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == expect, f"{args}: exit {result.exit_code}\n{result.output}"
    return result


def synthetic_csv(seed: int = 7, students: int = 900) -> bytes:
    return render_synthetic(students=students, seed=seed, fmt="csv")


def with_shuffled_labels(content: bytes, seed: int = 0) -> bytes:
    """The same file with PV permuted among the students of each year: no signal left."""
    frame = pd.read_csv(io.BytesIO(content), sep=";", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    for column in [c for c in frame.columns if c.startswith("PONTO_VIRADA_")]:
        labelled = frame[column].isin(["Sim", "Não"]).to_numpy()
        values = frame.loc[labelled, column].to_numpy()
        frame.loc[labelled, column] = rng.permutation(values)
    return frame.to_csv(sep=";", index=False).encode()


def models_json() -> dict[str, object]:
    payload: dict[str, object] = json.loads(cli("models", "--json").stdout)
    return payload


def aliases() -> dict[str, str]:
    versions = models_json()["versoes"]
    assert isinstance(versions, list)
    return {alias: row["version"] for row in versions for alias in row["aliases"]}


@dataclass
class FlowFiles:
    """Where the flow reads data and writes predictions (local paths or s3:// URIs)."""

    good_data: str
    shuffled_data: str
    predictions: str
    read_predictions: Callable[[str], pd.DataFrame]


def registry_flow(files: FlowFiles) -> None:
    """train → @staging → predict → promote → retrain → gate blocks a worse model → rollback."""
    first = json.loads(
        cli("train", "--data", files.good_data, "--model", "logistic_regression", "--json").stdout
    )
    assert first["aprovado"] is True and first["versao"] == "1"
    assert aliases() == {"staging": "1"}

    # No @production yet: the default alias (Production) cannot be resolved, clearly.
    failed = cli("predict", "--data", files.good_data, "--output", files.predictions, expect=3)
    assert "promote" in failed.output

    cli(
        "predict",
        "--data",
        files.good_data,
        "--output",
        files.predictions,
        "--model-uri",
        f"models:/{get_settings().MLFLOW_MODEL_NAME}@staging",
    )
    scored = files.read_predictions(files.predictions)
    assert list(scored.columns) == OUTPUT_COLUMNS
    assert scored["aluno_id"].str.startswith("ALUNO-").all()
    assert scored["ano"].eq(2022).all() and scored["aluno_id"].is_unique
    assert scored["probabilidade_pv"].between(0, 1).all()
    assert scored["modelo_versao"].astype(str).eq("1").all()

    cli("promote")
    assert aliases() == {"staging": "1", "production": "1"}

    second = json.loads(
        cli("train", "--data", files.good_data, "--model", "logistic_regression", "--json").stdout
    )
    assert second["aprovado"] is True, second["portao"]
    assert "mesma_avaliacao" in second["portao"]  # same data and protocol as production
    cli("promote")
    assert aliases() == {"staging": "2", "production": "2"}

    # A model trained on shuffled labels is registered, fails the gate, moves no alias.
    worse = json.loads(
        cli(
            "train", "--data", files.shuffled_data, "--model", "logistic_regression", "--json"
        ).stdout
    )
    assert worse["aprovado"] is False and worse["versao"] == "3"
    assert "abaixo do piso" in worse["portao"]
    assert aliases() == {"staging": "2", "production": "2"}
    refused = cli("promote", "--version", "3", expect=3)
    assert "não passou no portão" in refused.output

    cli("rollback")
    assert aliases()["production"] == "1"
    payload = models_json()
    history = payload["historico"]
    assert isinstance(history, list)
    assert [(e["acao"], e["versao"]) for e in history] == [
        ("promote", "1"),
        ("promote", "2"),
        ("rollback", "1"),
    ]
    gate_tags = {row["version"]: row["gate"] for row in payload["versoes"]}  # type: ignore[union-attr]
    assert gate_tags == {"3": "reprovado", "2": "aprovado", "1": "aprovado"}

    cli("predict", "--data", files.good_data, "--output", files.predictions)
    assert files.read_predictions(files.predictions)["modelo_versao"].astype(str).eq("1").all()
