"""What every request can depend on: the app's shared state and the model being served."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from passos_magicos.alerts.history import AlertHistory
from passos_magicos.alerts.slack import SlackSender
from passos_magicos.feature_store.history import OfflineHistory
from passos_magicos.feature_store.online import CachedOnlineFeatures, OnlineStore
from passos_magicos.followups.store import FollowupStore
from passos_magicos.performance_history import PerformanceHistory
from passos_magicos.serving.cohort import CohortEstimates
from passos_magicos.serving.log_losses import LossCounter
from passos_magicos.serving.metrics import SharedLogMetrics
from passos_magicos.serving.prediction_log import PredictionLog
from passos_magicos.serving.roster import RosterCache
from passos_magicos.serving.runtime import LoadedModel, ModelRuntime
from passos_magicos.serving.versions import RegistryReader
from passos_magicos.settings import Settings


@dataclass
class AppState:
    settings: Settings
    runtime: ModelRuntime
    store: OnlineStore
    features: CachedOnlineFeatures
    prediction_log: PredictionLog
    losses: LossCounter  # prediction-log lines lost (full disk), shared through the store
    metrics: SharedLogMetrics
    alerts: AlertHistory
    slack: SlackSender
    history: OfflineHistory  # every cycle of every student (offline store), for the dashboard
    registry: RegistryReader  # the registry's versions (bounded, cached, never blocking)
    performance: PerformanceHistory  # scored rosters and realised performance (monitoring store)
    followups: FollowupStore  # the team's follow-up records (acompanhamentos), migrated on start
    cohort: CohortEstimates = field(default_factory=CohortEstimates)  # GET /model/performance
    rosters: RosterCache = field(default_factory=RosterCache)  # GET /predict/alunos
    started_at: float = field(default_factory=time.time)


# Dependencies are `async def`: a plain `def` would cost a thread-pool round trip per request.
async def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.passos
    return state


def model_or_503(state: AppState) -> LoadedModel:
    model = state.runtime.current
    if model is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "modelo ainda não carregado; tente de novo em instantes",
            headers={"Retry-After": "5"},
        )
    return model


async def current_model(state: Annotated[AppState, Depends(app_state)]) -> LoadedModel:
    await state.runtime.ensure_fresh()  # another worker reloaded: reload here first
    return model_or_503(state)


State = Annotated[AppState, Depends(app_state)]
Model = Annotated[LoadedModel, Depends(current_model)]
