"""What model is serving, how good it was measured to be, and against which baselines; and the
registry's versions of it (for the dashboard), with the one serving now marked."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from passos_magicos.serving.deps import Model, State
from passos_magicos.serving.runtime import LoadedModel
from passos_magicos.serving.security import ApiToken
from passos_magicos.serving.versions import RegistryUnavailableError

if TYPE_CHECKING:
    from passos_magicos.registry import VersionRow

router = APIRouter(tags=["modelo"])


def _split_metrics(model: LoadedModel) -> tuple[dict[str, float], dict[str, float]]:
    """The model's own metrics and its baselines' (`*_baseline_*`)."""
    metrics: dict[str, float] = model.metadata.get("metrics", {})
    own = {k: v for k, v in metrics.items() if "_baseline_" not in k}
    return own, {k: v for k, v in metrics.items() if "_baseline_" in k}


@router.get("/model/info", summary="Modelo em uso: versão, alias, métricas, referências, limiar")
async def model_info(model: Model) -> dict[str, Any]:
    metadata = model.metadata
    own, baselines = _split_metrics(model)
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
        "metricas": own,
        "referencias": baselines,
        "compilado": model.compiled is not None,
        "diferenca_compilado": model.compile_difference,
    }


class ModeloCarregado(BaseModel):
    nome: str
    versao: str
    alias: str | None
    fonte: Literal["mlflow", "local", "fallback"] = Field(
        description="mlflow: carregado do registry; local: pasta local (MLflow desligado ou "
        "MODEL_SOURCE=local); fallback: cópia local porque o registry falhou"
    )
    tipo: str
    run_id: str | None
    treinado_em: str | None
    carregado_em: str
    metricas: dict[str, float]
    referencias: dict[str, float] = Field(description="Métricas das referências simples")


class VersaoRegistrada(BaseModel):
    versao: str
    aliases: list[str] = Field(description="Aliases que apontam para esta versão")
    criada_em: str = Field(description="Registro da versão (ISO 8601, UTC)")
    tipo: str = Field(description="Algoritmo (random_forest, logistic_regression, ...)")
    portao: Literal["aprovado", "reprovado"] | None = Field(
        description="Veredito do portão de qualidade (nulo se não houve)"
    )
    portao_resumo: str | None = Field(description="Por que passou ou não passou")
    metricas: dict[str, float] = Field(
        description="ROC-AUC fora do tempo (oot_roc_auc) e em validação cruzada (cv_roc_auc), "
        "PR-AUC (oot_pr_auc) e Brier (oot_brier), as que houver"
    )
    referencias: dict[str, float] = Field(
        description="As mesmas métricas das referências simples, quando registradas"
    )
    promovida_em: str | None = Field(description="Última promoção a produção")
    promovida_por: str | None
    run_id: str | None
    em_uso: bool = Field(description="Se é a versão que esta API está servindo agora")


class VersoesModelo(BaseModel):
    nome: str = Field(description="Nome do modelo no registry (MLFLOW_MODEL_NAME)")
    fonte: Literal["mlflow", "local"] = Field(
        description="mlflow: versões lidas do registry; local: registry desligado ou "
        "inacessível (só o modelo carregado é conhecido)"
    )
    erro: str | None = Field(description="Por que o registry não pôde ser lido (nulo se pôde)")
    alias_servido: str = Field(description="Alias que a API serve (MLFLOW_MODEL_STAGE)")
    em_uso: ModeloCarregado | None = Field(
        description="O modelo carregado agora (nulo enquanto nenhum carregou)"
    )
    versoes: list[VersaoRegistrada] = Field(description="Da mais nova à mais antiga")


GATE_VERDICTS: dict[str, Literal["aprovado", "reprovado"]] = {
    "aprovado": "aprovado",
    "reprovado": "reprovado",
}


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def _loaded(model: LoadedModel) -> ModeloCarregado:
    own, baselines = _split_metrics(model)
    run_id = model.metadata.get("run_id")
    trained_at = model.metadata.get("trained_at")
    return ModeloCarregado(
        nome=model.name,
        versao=model.version,
        alias=model.alias,
        fonte=model.source,
        tipo=model.kind,
        run_id=run_id if isinstance(run_id, str) else None,
        treinado_em=trained_at if isinstance(trained_at, str) else None,
        carregado_em=model.loaded_at,
        metricas=_finite(own),
        referencias=_finite(baselines),
    )


def serves(row: VersionRow, name: str, model: LoadedModel | None) -> bool:
    """Whether `model` is this registry version: same name and version, and (for a local copy,
    whose version number says where it was exported from) the same run when both are known."""
    if model is None or model.name != name or model.version != row.version:
        return False
    if model.source == "mlflow":
        return True
    run_id = model.metadata.get("run_id")
    return run_id is None or row.run_id is None or run_id == row.run_id


def _version(row: VersionRow, name: str, model: LoadedModel | None) -> VersaoRegistrada:
    gate = GATE_VERDICTS.get(row.gate)
    return VersaoRegistrada(
        versao=row.version,
        aliases=row.aliases,
        criada_em=row.created_at,
        tipo=row.kind,
        portao=gate,
        portao_resumo=row.gate_summary,
        metricas=row.metrics,
        referencias=row.baselines,
        promovida_em=row.promoted_at,
        promovida_por=row.promoted_by,
        run_id=row.run_id,
        em_uso=serves(row, name, model),
    )


@router.get(
    "/model/versions",
    dependencies=[ApiToken],
    response_model=VersoesModelo,
    summary="Versões registradas do modelo e qual está em uso",
    description="As versões de MLFLOW_MODEL_NAME no registry do MLflow (as mesmas de "
    "`passos-magicos models`): aliases, veredito do portão de qualidade, métricas principais "
    "e das referências, e qual delas esta API serve agora. Com o MLflow desligado ou "
    "inacessível, responde 200 com `versoes` vazia, `fonte: local`, o motivo em `erro` (se "
    "houver) e o modelo carregado em `em_uso`. Exige o token de API.",
    responses={
        401: {"description": "Token de API ausente"},
        403: {"description": "Token inválido, ou nenhum token configurado (endpoint desabilitado)"},
    },
)
async def model_versions(state: State) -> VersoesModelo:
    settings = state.settings
    name = settings.MLFLOW_MODEL_NAME
    model = state.runtime.current
    rows: list[VersionRow] = []
    error: str | None = None
    if settings.MLFLOW_ENABLED:
        try:
            rows = await state.registry.versions()
        except RegistryUnavailableError as exc:
            error = str(exc)
    return VersoesModelo(
        nome=name,
        fonte="mlflow" if settings.MLFLOW_ENABLED and error is None else "local",
        erro=error,
        alias_servido=settings.model_alias,
        em_uso=None if model is None else _loaded(model),
        versoes=[_version(row, name, model) for row in rows],
    )
