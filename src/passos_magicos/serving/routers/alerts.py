"""Alert contract: status and history (API token), test and send (admin token).

Test and manual alerts go through the same sender (retries on 429, 5xx and timeouts) and the
same Block Kit layout as the monitoring job's alerts, and are recorded in the same history."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from passos_magicos.alerts.history import AlertEvent
from passos_magicos.alerts.messages import ManualKind, build_manual_message
from passos_magicos.serving.deps import State
from passos_magicos.serving.security import AdminToken, ApiToken

router = APIRouter(prefix="/alerts", tags=["alertas"])

RUN_FIELDS = ("id", "started_at", "finished_at", "status")
REALISED_CHECKS = 50  # newest realised-performance evaluations shown in the status


class AlertaManual(BaseModel):
    model_config = ConfigDict(extra="forbid")
    titulo: str = Field(min_length=1, max_length=200, description="Título curto do alerta")
    mensagem: str = Field(min_length=1, max_length=3000, description="Texto do alerta")
    severidade: Literal["info", "aviso", "critico"] = Field(
        default="aviso", description="Severidade mostrada no cabeçalho da mensagem"
    )


class EventoAlerta(BaseModel):
    id: int
    created_at: str = Field(description="Quando a entrega foi tentada (ISO 8601, UTC)")
    kind: str = Field(description="alerta, lembrete, resolvido, teste ou manual")
    severity: str = Field(description="info, aviso ou critico")
    title: str
    text: str = Field(description="Texto da mensagem (a versão sem formatação)")
    dedup_key: str | None = Field(description="Chave de deduplicação (alertas do monitoramento)")
    delivered: bool = Field(description="Se o Slack aceitou a mensagem")
    detail: str | None = Field(description="Por que não foi entregue")


class UltimaExecucao(BaseModel):
    id: int
    started_at: str
    finished_at: str | None
    status: str


class AlertaAtivo(BaseModel):
    chave: str = Field(description="Chave de deduplicação do alerta")
    severidade: str
    titulo: str
    desde: str = Field(description="Início do episódio atual (ISO 8601, UTC)")
    ultimo_envio: str | None = Field(
        description="Última entrega ao Slack neste episódio; nulo se nenhuma chegou ainda"
    )


class EstadoAlertas(BaseModel):
    slack_configurado: bool = Field(description="Se SLACK_WEBHOOK_URL está configurado")
    ultima_execucao: UltimaExecucao | None = Field(
        description="A execução mais recente do job de monitoramento (nula se nunca rodou)"
    )
    verificacoes: list[Any] = Field(
        description="As verificações do relatório da última execução, como o job as gravou"
    )
    alertas_ativos: list[AlertaAtivo] = Field(
        description="Alertas ativos agora (mais antigos primeiro)"
    )
    desempenho_realizado: list[Any] = Field(
        default_factory=list,
        description="As verificações de desempenho realizado (`passos-magicos evaluate`), uma "
        "por versão do modelo e ciclo avaliado, do ciclo mais recente ao mais antigo; mesmo "
        "formato de `verificacoes`",
    )


class HistoricoAlertas(BaseModel):
    itens: list[EventoAlerta]
    pagina: int
    por_pagina: int
    total: int = Field(description="Total de eventos no histórico")


class ResultadoEnvio(BaseModel):
    enviado: bool = Field(description="Se o Slack aceitou a mensagem")
    motivo: str | None = Field(description="Por que não foi entregue (nulo se foi)")
    tentativas: int = Field(description="Requisições feitas ao Slack (0: nada foi tentado)")
    evento: EventoAlerta = Field(description="O evento registrado no histórico")


def _evento(event: AlertEvent) -> EventoAlerta:
    return EventoAlerta(**asdict(event))


@router.get(
    "/status",
    dependencies=[ApiToken],
    response_model=EstadoAlertas,
    summary="Estado de cada verificação, alertas ativos e última execução",
    description="Lê o armazenamento de monitoramento compartilhado: o relatório da execução "
    "mais recente do job (`verificacoes`) e os alertas ativos com a última entrega ao Slack. "
    "Exige o token de API.",
)
async def alerts_status(state: State) -> EstadoAlertas:
    run = await run_in_threadpool(state.alerts.latest_run)
    active = await run_in_threadpool(state.alerts.active_alerts)
    realised = await run_in_threadpool(
        state.performance.realised_records, None, None, None, REALISED_CHECKS
    )
    report: dict[str, Any] = run["report"] if run and isinstance(run["report"], dict) else {}
    checks = report.get("verificacoes", [])
    return EstadoAlertas(
        slack_configurado=state.slack.configured,
        ultima_execucao=None if run is None else UltimaExecucao(**{k: run[k] for k in RUN_FIELDS}),
        verificacoes=checks if isinstance(checks, list) else [],
        alertas_ativos=[
            AlertaAtivo(
                chave=alert.dedup_key,
                severidade=alert.severity,
                titulo=alert.title,
                desde=alert.first_seen_at.isoformat(),
                ultimo_envio=alert.last_sent_at.isoformat() if alert.last_sent_at else None,
            )
            for alert in active
        ],
        desempenho_realizado=[r["verificacao"] for r in realised if "verificacao" in r],
    )


@router.get(
    "/history",
    dependencies=[ApiToken],
    response_model=HistoricoAlertas,
    summary="Histórico de alertas (mais novos primeiro)",
    description="Cada tentativa de entrega ao Slack (alertas, lembretes, resoluções, testes e "
    "alertas manuais), entregue ou não, paginada. Exige o token de API.",
)
async def alerts_history(
    state: State,
    pagina: Annotated[int, Query(ge=1, le=100_000, description="Página (a partir de 1)")] = 1,
    por_pagina: Annotated[int, Query(ge=1, le=200, description="Eventos por página")] = 50,
) -> HistoricoAlertas:
    events, total = await run_in_threadpool(state.alerts.events, pagina, por_pagina)
    return HistoricoAlertas(
        itens=[_evento(e) for e in events], pagina=pagina, por_pagina=por_pagina, total=total
    )


async def _deliver(
    state: State, kind: ManualKind, severity: str, title: str, text: str
) -> ResultadoEnvio:
    fallback, blocks = build_manual_message(
        title, text, severity, kind=kind, dashboard_url=state.settings.DASHBOARD_URL
    )
    delivery = await run_in_threadpool(state.slack.send, fallback, blocks)
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
    return ResultadoEnvio(
        enviado=delivery.delivered,
        motivo=delivery.reason,
        tentativas=delivery.attempts,
        evento=_evento(event),
    )


@router.post(
    "/test",
    dependencies=[AdminToken],
    response_model=ResultadoEnvio,
    summary="Envia uma mensagem de teste ao Slack",
    description="Confere se os alertas chegam ao canal configurado em SLACK_WEBHOOK_URL (com as "
    "mesmas novas tentativas dos alertas do monitoramento). Exige `X-Admin-Token`.",
)
async def alerts_test(state: State) -> ResultadoEnvio:
    return await _deliver(
        state,
        "teste",
        "info",
        "Teste de alerta — Passos Mágicos",
        "Se você está lendo isto, os alertas do monitoramento chegam a este canal.",
    )


@router.post(
    "/send",
    dependencies=[AdminToken],
    response_model=ResultadoEnvio,
    summary="Envia um alerta manual ao Slack",
    description="Mesmo formato e mesmas novas tentativas dos alertas do monitoramento; fica "
    "registrado no histórico. Exige `X-Admin-Token`.",
)
async def alerts_send(body: AlertaManual, state: State) -> ResultadoEnvio:
    return await _deliver(state, "manual", body.severidade, body.titulo, body.mensagem)
