"""Serving metrics from the shared prediction log (the same figures on every replica)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from passos_magicos.serving.deps import AppState, State
from passos_magicos.serving.metrics import MetricsSnapshot, prometheus_text

router = APIRouter(tags=["métricas"])
PROMETHEUS_PATH = "/metrics/prometheus"


@router.get(
    "/metrics",
    summary="Contagens, distribuição de classes, latência e versões (log compartilhado)",
    description="Calculado a partir de `logs/predictions.jsonl`, que todas as réplicas "
    "compartilham: duas réplicas respondem o mesmo. Cada previsão de um aluno do feature store "
    "conta uma vez por versão do modelo e do feature store (`predicoes_repetidas`: as "
    "repetições); a lista de alunos entra uma vez por versão e ciclo, e cada consulta a ela "
    "conta só em `requisicoes` e `consultas_lista`. `linhas_perdidas`: linhas que não puderam "
    "ser gravadas (disco cheio), somadas de todas as réplicas. Formato Prometheus em "
    f"`{PROMETHEUS_PATH}`.",
)
async def metrics(state: State) -> dict[str, Any]:
    snapshot = (await run_in_threadpool(_refreshed, state)).to_dict()
    model = state.runtime.current
    return {
        **snapshot,
        "modelo_atual": None if model is None else {"versao": model.version, "fonte": model.source},
        "uptime_s": round(time.time() - state.started_at, 1),
    }


@router.get(
    PROMETHEUS_PATH,
    summary="As mesmas métricas no formato de exposição do Prometheus",
    response_class=PlainTextResponse,
)
async def metrics_prometheus(state: State) -> PlainTextResponse:
    snapshot = await run_in_threadpool(_refreshed, state)
    model = state.runtime.current
    text = prometheus_text(
        snapshot,
        model_name=state.settings.MLFLOW_MODEL_NAME,
        model_version=None if model is None else model.version,
        ready=model is not None,
    )
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


def _refreshed(state: AppState) -> MetricsSnapshot:
    """The log's figures now, with the lines lost by every replica (the monitoring store)."""
    state.metrics.refresh()
    return dataclasses.replace(state.metrics.snapshot(), linhas_perdidas=state.losses.total())
