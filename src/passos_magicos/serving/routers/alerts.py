"""Alert contract: status and history (API token), test and send (admin token)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from passos_magicos.serving.deps import State
from passos_magicos.serving.security import AdminToken, ApiToken

router = APIRouter(prefix="/alerts", tags=["alertas"])


class AlertaManual(BaseModel):
    model_config = ConfigDict(extra="forbid")
    titulo: str = Field(min_length=1, max_length=200)
    mensagem: str = Field(min_length=1, max_length=3000)
    severidade: Literal["info", "aviso", "critico"] = "aviso"


@router.get(
    "/status", dependencies=[ApiToken], summary="Estado de cada verificação e última execução"
)
async def alerts_status(state: State) -> dict[str, Any]:
    run = await run_in_threadpool(state.alerts.latest_run)
    report: dict[str, Any] = run["report"] if run else {}
    return {
        "slack_configurado": state.slack.configured,
        "ultima_execucao": None
        if run is None
        else {k: run[k] for k in ("id", "started_at", "finished_at", "status")},
        "verificacoes": report.get("verificacoes", []),
    }


@router.get(
    "/history", dependencies=[ApiToken], summary="Histórico de alertas (mais novos primeiro)"
)
async def alerts_history(
    state: State,
    pagina: Annotated[int, Query(ge=1, le=100_000)] = 1,
    por_pagina: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    events, total = await run_in_threadpool(state.alerts.events, pagina, por_pagina)
    return {
        "itens": [asdict(e) for e in events],
        "pagina": pagina,
        "por_pagina": por_pagina,
        "total": total,
    }


async def _deliver(state: State, kind: str, severity: str, title: str, text: str) -> dict[str, Any]:
    delivery = await run_in_threadpool(state.slack.send, f"*{title}*\n{text}")
    event = await run_in_threadpool(
        lambda: state.alerts.record(
            kind=kind,
            severity=severity,
            title=title,
            text=text,
            delivered=delivery.delivered,
            detail=delivery.reason,
        )
    )
    return {"enviado": delivery.delivered, "motivo": delivery.reason, "evento": asdict(event)}


@router.post("/test", dependencies=[AdminToken], summary="Envia uma mensagem de teste ao Slack")
async def alerts_test(state: State) -> dict[str, Any]:
    return await _deliver(
        state,
        "teste",
        "info",
        "Teste de alerta — Passos Mágicos",
        "Se você está lendo isto, os alertas do monitoramento chegam a este canal.",
    )


@router.post("/send", dependencies=[AdminToken], summary="Envia um alerta manual ao Slack")
async def alerts_send(body: AlertaManual, state: State) -> dict[str, Any]:
    return await _deliver(state, "manual", body.severidade, body.titulo, body.mensagem)
