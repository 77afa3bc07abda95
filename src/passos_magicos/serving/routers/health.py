"""Liveness and readiness (the Kubernetes probes)."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse

from passos_magicos.serving.deps import State

router = APIRouter(tags=["saúde"])


@router.get("/health", summary="Liveness: o processo responde")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: 200 só com um modelo carregado (senão 503)",
    responses={503: {"description": "Modelo ainda não carregado"}},
)
async def ready(state: State) -> JSONResponse:
    await state.runtime.ensure_fresh()
    model = state.runtime.current
    snapshot = state.features.snapshot
    body: dict[str, Any] = {
        "pronto": model is not None,
        "modelo": None if model is None else {"versao": model.version, "fonte": model.source},
        "features_versao": None if snapshot is None else snapshot.meta.version,
        "erro": state.runtime.last_error,
        "processo": os.getpid(),  # which worker answered (several per replica)
    }
    code = status.HTTP_200_OK if model is not None else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(body, status_code=code)
