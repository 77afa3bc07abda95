"""Realised performance end to end, through the real CLI and API: a model trained on cycles up
to t, the roster of cycle t scored (`predict` and the API), the file with cycle t+1 given to
`evaluate`, the figures in the monitoring history, in /alerts/status and in the API; on the
synthetic files and on the real ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from passos_magicos.performance_history import PerformanceHistory
from passos_magicos.serving.app import create_app
from passos_magicos.settings import Settings, get_settings
from tests.flows import cli
from tests.serving.conftest import wait_ready
from tests.slack_receiver import SlackReceiver

pytestmark = pytest.mark.slow

MODEL = "passos-magicos-ponto-virada"
TOKEN = "token-e2e"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def api(settings: Settings) -> TestClient:
    client = TestClient(create_app(settings))
    client.__enter__()
    wait_ready(client)
    return client


def test_realised_performance_on_synthetic_files(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, slack_receiver: SlackReceiver
) -> None:
    csv, workbook = isolated / "pede-2020-2022.csv", isolated / "pede-2022-2024.xlsx"
    synth = ("data", "synth", "--students", "600", "--seed", "5")
    cli(*synth, "--output", str(csv))
    cli(*synth, "--format", "xlsx", "--output", str(workbook))  # 2023/2024 PV: empty cells
    monkeypatch.setenv("BACKTEST_REPLICATES", "200")
    monkeypatch.setenv("API_TOKENS", TOKEN)

    # Cycle t = 2022: trained on the CSV alone (version 1, through the gate, promoted), its
    # 2022 roster scored and recorded.
    cli("train", "--data", str(csv), "--model", "compact_logistic")
    cli("promote")
    cli("predict", "--data", str(csv), "--output", str(isolated / "previsoes.csv"))
    roster = pd.read_csv(isolated / "previsoes.csv")
    assert roster["ano"].eq(2022).all()
    nothing = cli("evaluate", "--data", str(csv))
    assert "nada a avaliar" in nothing.stdout and "ainda não chegaram" in nothing.stdout

    # The team also looks up three students in the API (feature store, logged with the cycle).
    client = api(get_settings())
    looked_up = list(roster["aluno_id"][:3])
    for student in looked_up:
        assert client.get(f"/predict/aluno/{student}", headers=AUTH).json()["ciclo"] == 2022
    estimate = client.get("/model/performance", headers=AUTH).json()
    assert (estimate["ciclo"], estimate["n"], estimate["realizado"]) == (2022, len(roster), None)

    # The 2023 outcomes arrive (the workbook, PV derived by the IPV rule); a strict floor
    # makes the check alert, through the policy, to Slack.
    monkeypatch.setenv("REALISED_MIN_ROC_AUC", "0.99")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack_receiver.url)
    result = json.loads(
        cli("evaluate", "--data", str(csv), "--data", str(workbook), "--json").stdout
    )
    [record] = result["avaliacoes"]
    assert (record["modelo"], record["versao"], record["ciclo"]) == (MODEL, "1", 2022)
    assert record["previsoes"] == len(roster) and record["estado"] == "alerta"
    assert record["fontes"] == {"lista_pontuada": len(roster) - 3, "log_de_previsoes": 3}
    assert set(record["origem_rotulos"]) == {"derivado"} and record["n"] >= 100
    assert 0.5 < record["realizado"]["roc_auc"]["valor"] < 0.99
    assert record["alerta"]["entregue"] is True
    assert "abaixo do piso" in slack_receiver.bodies[-1]["text"]

    status = client.get("/alerts/status", headers=AUTH).json()
    [check] = status["desempenho_realizado"]
    assert check["estado"] == "alerta" and check["chave"] == f"desempenho_realizado:{MODEL}:1:2022"
    assert [a["chave"] for a in status["alertas_ativos"]] == [check["chave"]]
    [listed] = client.get("/monitoring/realised", headers=AUTH).json()["registros"]
    assert listed["realizado"] == record["realizado"]
    page = client.get("/monitoring/realised/1/2022/alunos", headers=AUTH).json()
    assert page["total"] == len(roster) and page["alunos"][0]["posicao"] == 1
    reached = [s for s in page["alunos"] if s["pv_real"]]
    assert reached and all(s["pv_origem"] == "derivado" for s in reached)
    after = client.get("/model/performance", headers=AUTH).json()
    assert after["realizado"]["avaliado_em"] == record["avaliado_em"]

    # Rerun with a floor it clears: the same evaluation, replaced; the alert is resolved.
    monkeypatch.setenv("REALISED_MIN_ROC_AUC", "0.5")
    text = cli("evaluate", "--data", str(csv), "--data", str(workbook)).stdout
    assert "alunos de 2022 → PV em 2023" in text and "estimado antes" in text
    history = PerformanceHistory(get_settings().monitoring_store_url)
    [stored] = history.realised_records()
    history.dispose()
    assert stored["realizado"] == record["realizado"] and stored["estado"] == "ok"
    assert "resolvido" in slack_receiver.bodies[-1]["text"].lower()
    assert client.get("/alerts/status", headers=AUTH).json()["alertas_ativos"] == []
    client.__exit__(None, None, None)


@pytest.mark.real_data
def test_realised_performance_on_the_real_files(
    isolated: Path, real_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ("PEDE_PASSOS_DATASET_FIAP.csv", "PEDE2022.csv", "PEDE2023.csv", "PEDE2024.csv")
    files = [real_data_dir / name for name in names]
    missing = [f.name for f in files if not f.exists()]
    if missing:
        pytest.skip(f"arquivos reais ausentes em {real_data_dir}: {', '.join(missing)}")
    monkeypatch.setenv("BACKTEST_REPLICATES", "300")
    up_to_2023: list[Any] = [arg for f in files[:3] for arg in ("--data", str(f))]
    cli("train", *up_to_2023)
    cli(
        "predict",
        *up_to_2023,
        "--output",
        str(isolated / "previsoes-2023.csv"),
        "--model-uri",
        f"models:/{MODEL}/1",
    )
    roster = pd.read_csv(isolated / "previsoes-2023.csv")
    assert roster["ano"].eq(2023).all() and roster["aluno_id"].str.startswith("RA-").all()

    result = json.loads(
        cli("evaluate", *up_to_2023, "--data", str(files[3]), "--json", "--no-alerts").stdout
    )
    [record] = result["avaliacoes"]
    assert (record["versao"], record["ciclo"], record["previsoes"]) == ("1", 2023, len(roster))
    # Students of 2023 still in the programme in 2024, labelled by the IPV rule.
    assert 500 <= record["n"] < len(roster) and record["origem_rotulos"] == {
        "derivado": record["n"]
    }
    assert 0.08 < record["taxas"]["real"] < 0.22
    roc = record["realizado"]["roc_auc"]
    assert 0.6 < roc["valor"] < 0.9 and roc["ic_inf"] < roc["valor"] < roc["ic_sup"]
    assert roc["ic_sup"] - roc["ic_inf"] < 0.15  # ~100 positives: an SE near 0.03
    estimated = record["estimado"]["roc_auc"]
    assert estimated["ic_inf"] < estimated["valor"] < estimated["ic_sup"]
    assert record["alerta"] is None  # --no-alerts
