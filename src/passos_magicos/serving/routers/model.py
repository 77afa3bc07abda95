"""What model is serving, how good it was measured to be, and against which baselines."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from passos_magicos.serving.deps import Model

router = APIRouter(tags=["modelo"])


@router.get("/model/info", summary="Modelo em uso: versão, alias, métricas, referências, limiar")
async def model_info(model: Model) -> dict[str, Any]:
    metadata = model.metadata
    metrics: dict[str, float] = metadata.get("metrics", {})
    return {
        "nome": model.name,
        "versao": model.version,
        "alias": model.alias,
        "fonte": model.source,
        "uri": model.uri,
        "run_id": metadata.get("run_id"),
        "tipo": model.kind,
        "treinado_em": metadata.get("trained_at"),
        "carregado_em": model.loaded_at,
        "limiar": model.threshold,
        "features": list(model.classifier.features),
        "avaliacao": {
            "metrica": metadata.get("eval_metric"),
            "valor": metadata.get("eval_value"),
        },
        "metricas": {k: v for k, v in metrics.items() if "_baseline_" not in k},
        "referencias": {k: v for k, v in metrics.items() if "_baseline_" in k},
        "compilado": model.compiled is not None,
        "diferenca_compilado": model.compile_difference,
    }
