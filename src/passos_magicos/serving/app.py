"""The FastAPI application: `create_app()` wires settings, model runtime, feature store,
prediction log, metrics and alerts, then the routers (one per resource)."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException

from passos_magicos import __version__
from passos_magicos.alerts.history import AlertHistory
from passos_magicos.alerts.slack import SlackSender
from passos_magicos.feature_store.history import OfflineHistory
from passos_magicos.feature_store.online import CachedOnlineFeatures, OnlineStore
from passos_magicos.followups.store import FollowupStore, FollowupStoreError
from passos_magicos.performance_history import PerformanceHistory
from passos_magicos.serving import contract, errors
from passos_magicos.serving.deps import AppState
from passos_magicos.serving.log_losses import LossCounter
from passos_magicos.serving.metrics import SharedLogMetrics
from passos_magicos.serving.middleware import RequestContextMiddleware
from passos_magicos.serving.prediction_log import PredictionLog
from passos_magicos.serving.routers import (
    admin,
    alerts,
    fairness,
    features,
    followups,
    health,
    metrics,
    model,
    monitoring,
    performance,
    predict,
    students,
)
from passos_magicos.serving.runtime import ModelRuntime
from passos_magicos.serving.security import ADMIN_TOKEN_HEADER, API_TOKEN_HEADER
from passos_magicos.serving.versions import RegistryReader
from passos_magicos.settings import Settings, get_settings

logger = logging.getLogger(__name__)

DESCRIPTION = """
API de previsão do **Ponto de Virada** (PV) da Associação Passos Mágicos.

A partir do registro de um aluno no ciclo *t* da PEDE, estima a probabilidade de ele atingir o
PV no ciclo seguinte (*t+1*) e mostra os fatores que mais pesaram.

- Endpoints de previsão, histórico de alunos, monitoramento e versões do modelo exigem um
  token de API (`Authorization: Bearer <token>` ou `X-API-Token`); sem `API_TOKENS`
  configurado eles ficam desabilitados.
- Administração e envio de alertas exigem `X-Admin-Token`.
- Acompanhamentos da equipe: um token da equipe (`TEAM_TOKENS`) lê e registra; um token de API
  só lê.
- Cada operação diz que token aceita (botão **Authorize**) e todas as respostas que pode dar.
  Erros: `{"detail": "<motivo>", "request_id": "..."}`; no 422, também `erros`, um item por
  campo (`{"campo": ..., "erro": ...}`). Tipos estritos: `true`/`false` para booleanos,
  números (não texto) para números.
- Toda previsão é registrada em `logs/predictions.jsonl` (sem nomes: só o id do arquivo).
"""

TAGS = [
    {"name": "previsões", "description": "Probabilidade de PV no próximo ciclo"},
    {"name": "saúde", "description": "Sondas de liveness e readiness"},
    {"name": "modelo", "description": "O modelo em uso e suas métricas"},
    {"name": "features", "description": "Feature store online"},
    {"name": "alunos", "description": "Histórico de cada aluno em todos os ciclos"},
    {"name": "métricas", "description": "Métricas de serving a partir do log compartilhado"},
    {"name": "monitoramento", "description": "Execuções do job de monitoramento (drift)"},
    {
        "name": "desempenho",
        "description": "Como o modelo se saiu quando os desfechos chegaram, e o que se espera "
        "da turma pontuada agora",
    },
    {"name": "alertas", "description": "Monitoramento e alertas no Slack"},
    {
        "name": "acompanhamentos",
        "description": "O que a equipe fez por cada aluno sinalizado (nunca usado pelo modelo)",
    },
    {"name": "administração", "description": "Recarga do modelo"},
]


def build_state(settings: Settings) -> AppState:
    store = OnlineStore(settings.online_store_url)
    alerts = AlertHistory(settings.monitoring_store_url)
    losses = LossCounter(alerts)
    return AppState(
        settings=settings,
        runtime=ModelRuntime(settings),
        store=store,
        features=CachedOnlineFeatures(store),
        prediction_log=PredictionLog(
            settings.PREDICTION_LOG_PATH,
            settings.PREDICTION_LOG_MAX_BYTES,
            settings.PREDICTION_LOG_DAILY,
            on_loss=losses.add,
        ),
        losses=losses,
        metrics=SharedLogMetrics(settings.PREDICTION_LOG_PATH, settings.PERFORMANCE_WINDOW),
        alerts=alerts,
        slack=SlackSender.from_settings(settings),
        history=OfflineHistory(settings.offline_store_dir),
        registry=RegistryReader(settings),
        performance=PerformanceHistory(settings.monitoring_store_url),
        followups=FollowupStore(settings.followups_store_url),
    )


def _migrate_followups(store: FollowupStore) -> None:
    """Bring the follow-up tables to head (serialised across workers and replicas); on failure
    the endpoints retry before each request and answer 503 meanwhile."""
    try:
        store.ready()
    except FollowupStoreError as exc:
        logger.warning("%s: nova tentativa na próxima requisição", exc)


IMPORTED_BEFORE_THREADS: Final = (
    "sqlalchemy.orm",
    "alembic.command",
    "alembic.runtime.environment",
    "passos_magicos.registry",  # MLflow itself is already loaded by this module's imports
)
"""Packages the start-up threads would import lazily, imported first in the main thread (~0.1 s).

Two threads importing a package with internal import cycles at once can get it half-initialised
(CPython's import deadlock avoidance). Seen in CI: the follow-ups migration and the model's load
both importing Alembic (MLflow uses it), and the features' load importing SQLAlchemy's ORM: the
model fell back to the local copy, or every student lookup answered 503."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = build_state(settings)
        app.state.passos = state
        if not settings.api_tokens:
            logger.warning("API_TOKENS não configurado: endpoints de previsão desabilitados")
        for problem in settings.team_token_problems:
            logger.warning(problem)
        for module in IMPORTED_BEFORE_THREADS:
            importlib.import_module(module)
        state.features.start(settings.FEATURE_REFRESH_SECONDS)
        threading.Thread(
            target=_migrate_followups,
            args=(state.followups,),
            name="followups-migrate",
            daemon=True,
        ).start()
        state.runtime.start()
        state.losses.start()
        # Read an existing (possibly large) log now, not on the first GET /metrics.
        threading.Thread(target=state.metrics.refresh, name="metrics-warmup", daemon=True).start()
        try:
            yield
        finally:
            state.runtime.stop()
            state.features.stop()
            state.losses.stop()
            state.prediction_log.close()
            state.store.dispose()
            state.alerts.dispose()
            state.performance.dispose()
            state.followups.dispose()

    app = FastAPI(
        title="Passos Mágicos — Ponto de Virada",
        description=DESCRIPTION,
        version=__version__,
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    if settings.CORS_ORIGINS:
        wildcard = "*" in settings.CORS_ORIGINS
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.CORS_ORIGINS,
            allow_credentials=not wildcard,  # never `*` with credentials
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                API_TOKEN_HEADER,
                ADMIN_TOKEN_HEADER,
                "X-Request-ID",
            ],
        )
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.MAX_BODY_BYTES)
    app.add_exception_handler(RequestValidationError, errors.validation_error)
    app.add_exception_handler(HTTPException, errors.http_error)  # the framework's 404/405 too
    app.add_exception_handler(Exception, errors.internal_error)
    routers = (
        health,
        model,
        fairness,
        predict,
        students,
        features,
        metrics,
        monitoring,
        performance,
        admin,
        alerts,
        followups,
    )
    for router in routers:
        app.include_router(router.router)
    _match_predictions_first(app)
    # predict.py checks the token and the model in one dependency (one per request is cheaper).
    contract.install(app, {predict.scoring: (contract.API_TOKEN, contract.MODEL)})
    return app


def _match_predictions_first(app: FastAPI) -> None:
    """Try the prediction routes first: the router tries routes in order, and before them came
    the docs, health, model and fairness routes (~30 µs per prediction on this machine). No
    other route's path starts with /predict, so every request still reaches the same route
    (the included router keeps them too, unreached).
    The OpenAPI document keeps the declared order (same document, byte for byte)."""
    declared = list(app.router.routes)
    # The routes themselves, not the included router: FastAPI resolves an included router's
    # routes on every request (~10 µs); a route of the app's own router is matched directly.
    matching = [*predict.router.routes, *declared]
    app.router.routes[:] = matching
    generate = app.openapi

    def openapi_in_declared_order() -> dict[str, Any]:
        app.router.routes[:] = declared  # synchronous: no request is routed meanwhile
        try:
            return generate()
        finally:
            app.router.routes[:] = matching

    app.openapi = openapi_in_declared_order  # type: ignore[method-assign]
