"""State of the online feature store the /predict/aluno endpoints read."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from passos_magicos.serving.deps import State

router = APIRouter(tags=["features"])


@router.get("/features/status", summary="Feature store online: versão, origem, ciclos, linhas")
async def features_status(state: State) -> dict[str, Any]:
    snapshot = state.features.snapshot
    return {
        "materializado": snapshot is not None,
        "metadados": None if snapshot is None else snapshot.meta.to_dict(),
        "verificado_em": state.features.last_checked_at,
        "erro": state.features.last_error,
        "backend": state.store.dialect,
    }
