"""Model reload: admin token required; the swap is atomic for requests in flight, and every
other worker and replica reloads before its next answer (runtime.ReloadMarker)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from starlette.concurrency import run_in_threadpool

from passos_magicos.serving.deps import State
from passos_magicos.serving.security import AdminToken

router = APIRouter(tags=["administração"], dependencies=[AdminToken])


@router.post(
    "/admin/reload-model",
    summary="Recarrega o modelo do alias configurado (ou da pasta local)",
    description="Exige o cabeçalho `X-Admin-Token`. Sem ADMIN_RELOAD_TOKEN configurado o "
    "endpoint fica desabilitado (403). Requisições em andamento terminam com o modelo antigo. "
    "Quando a resposta chega, nenhum worker desta réplica (nem das outras, que compartilham o "
    "volume do log) responde mais com o modelo antigo: cada um recarrega antes da próxima "
    "resposta (`propagada: false` se o aviso aos outros não pôde ser gravado; eles seguem o "
    "alias em até MODEL_POLL_SECONDS).",
    responses={
        401: {"description": "Token ausente"},
        403: {"description": "Token inválido ou endpoint desabilitado"},
        503: {"description": "Não foi possível carregar o modelo; o atual continua servindo"},
    },
)
async def reload_model(state: State) -> dict[str, Any]:
    try:
        previous, model, propagated = await run_in_threadpool(state.runtime.reload_everywhere)
    except Exception as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"recarga falhou; o modelo atual continua servindo ({type(exc).__name__})",
        ) from exc
    return {
        "versao_anterior": None if previous is None else previous.version,
        "versao": model.version,
        "fonte": model.source,
        "carregado_em": model.loaded_at,
        "propagada": propagated,
    }
