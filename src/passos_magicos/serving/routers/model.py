"""What model is serving, how good it was measured to be, and against which baselines (the
newest year of its rolling-origin backtest, and the whole backtest table); and the registry's
versions of it (for the dashboard), with the one serving now marked."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field, ValidationError

from passos_magicos.json_types import json_safe
from passos_magicos.serving.deps import Model, State
from passos_magicos.serving.runtime import LoadedModel
from passos_magicos.serving.security import ApiToken
from passos_magicos.serving.versions import RegistryUnavailableError
from passos_magicos.training.evaluation import BASELINES

if TYPE_CHECKING:
    from passos_magicos.registry import VersionRow

router = APIRouter(tags=["modelo"])
logger = logging.getLogger(__name__)


def _split_metrics(model: LoadedModel) -> tuple[dict[str, float], dict[str, float]]:
    """The model's own metrics and its baselines' (`*_baseline_*`)."""
    metrics: dict[str, float] = model.metadata.get("metrics", {})
    own = {k: v for k, v in metrics.items() if "_baseline_" not in k}
    return own, {k: v for k, v in metrics.items() if "_baseline_" in k}


METRICS_DESCRIPTION = (
    "Métricas do modelo. Com backtest (treino com três ciclos ou mais), `oot_*` são do ano mais "
    "recente do backtest (ex.: 2023→2024), com o modelo ajustado só nas transições anteriores: "
    "`oot_roc_auc`, `oot_pr_auc`, `oot_brier`, `oot_recall_top15`, `oot_recall_top25`... "
    "`oot_dif_<referência>_roc_auc` é a diferença pareada modelo − referência nesse ano, com o "
    "intervalo bootstrap de 95% em `_ic_inf` / `_ic_sup`: o modelo só supera a referência quando "
    "o intervalo exclui o zero. Modelos treinados com uma só transição trazem `cv_*` (validação "
    "cruzada agrupada por aluno). A tabela de todos os anos está em GET /model/backtest."
)
BASELINES_DESCRIPTION = (
    "As mesmas métricas das referências simples, no mesmo ano: `oot_baseline_<nome>_<métrica>` "
    "(ou `cv_baseline_*`), com nome "
    + ", ".join(f"`{name}` ({label})" for name, label in BASELINES.items())
)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


class Avaliacao(BaseModel):
    metrica: str | None = Field(
        description="Métrica que decidiu o portão de qualidade (ex.: oot_roc_auc)"
    )
    valor: float | None = Field(description="Valor dela no treino que gerou o modelo")


class InfoModelo(BaseModel):
    nome: str = Field(description="Nome do modelo no registry (MLFLOW_MODEL_NAME)")
    versao: str = Field(description="Versão no registry (`local` para um modelo só local)")
    alias: str | None = Field(description="Alias servido (production/staging), se do registry")
    fonte: Literal["mlflow", "local", "fallback"] = Field(
        description="mlflow: carregado do registry; local: pasta local; fallback: cópia local "
        "porque o registry falhou"
    )
    uri: str
    run_id: str | None = Field(description="Execução do MLflow que treinou o modelo")
    tipo: str = Field(description="Algoritmo (compact_logistic, random_forest, ...)")
    treinado_em: str | None
    carregado_em: str
    limiar: float = Field(description="Probabilidade a partir da qual `pv_previsto` é verdadeiro")
    features: list[str] = Field(description="Entradas que o modelo usa")
    avaliacao: Avaliacao
    metricas: dict[str, float] = Field(description=METRICS_DESCRIPTION)
    referencias: dict[str, float] = Field(description=BASELINES_DESCRIPTION)
    compilado: bool = Field(description="Se as previsões usam a versão compilada (mais rápida)")
    diferenca_compilado: float | None = Field(
        description="Maior diferença de probabilidade entre a versão compilada e a original"
    )


@router.get(
    "/model/info",
    response_model=InfoModelo,
    summary="Modelo em uso: versão, alias, métricas, referências, limiar",
)
async def model_info(model: Model) -> InfoModelo:
    metadata = model.metadata
    own, baselines = _split_metrics(model)
    return InfoModelo(
        nome=model.name,
        versao=model.version,
        alias=model.alias,
        fonte=model.source,
        uri=model.uri,
        run_id=_text(metadata.get("run_id")),
        tipo=model.kind,
        treinado_em=_text(metadata.get("trained_at")),
        carregado_em=model.loaded_at,
        limiar=model.threshold,
        features=list(model.classifier.features),
        avaliacao=Avaliacao(
            metrica=_text(metadata.get("eval_metric")),
            valor=_number(metadata.get("eval_value")),
        ),
        metricas=_finite(own),
        referencias=_finite(baselines),
        compilado=model.compiled is not None,
        diferenca_compilado=model.compile_difference,
    )


# -- GET /model/backtest ---------------------------------------------------------------------


class Intervalo(BaseModel):
    valor: float | None = Field(description="Valor no ano (nulo quando não pôde ser calculado)")
    ic_inf: float | None = Field(description="Limite inferior do intervalo bootstrap de 95%")
    ic_sup: float | None = Field(description="Limite superior do intervalo bootstrap de 95%")


class Diferenca(Intervalo):
    veredito: Literal["supera", "empata", "perde"] = Field(
        description="supera: o intervalo da diferença (modelo − referência) fica todo acima de "
        "zero; perde: todo abaixo; empata: inclui o zero"
    )


class PontoConfiabilidade(BaseModel):
    prob_media: float = Field(description="Probabilidade média prevista no grupo de alunos")
    taxa_real: float = Field(description="Proporção do grupo que atingiu o PV")
    n: int = Field(description="Alunos no grupo")


class AnoBacktest(BaseModel):
    ano_teste: int = Field(description="Ano do PV previsto (o ciclo t+1 da transição testada)")
    transicao: str = Field(description="Transição testada, ex.: 2023→2024")
    anos_treino: list[int] = Field(description="Anos-alvo das transições usadas no ajuste")
    n_treino: int
    n: int = Field(description="Alunos avaliados na transição testada")
    positivos: int = Field(description="Quantos deles atingiram o PV")
    taxa_real: float | None = Field(description="Proporção real de PV")
    origem_rotulos: dict[str, int] = Field(
        description="Rótulos por origem: `oficial` (planilha) ou `derivado` (regra do IPV)"
    )
    modelo_escolhido: str = Field(description="Tipo escolhido só com o passado")
    selecao: dict[str, dict[str, float | None]] | None = Field(
        default=None,
        description="ROC-AUC de cada tipo candidato por ano de validação (a escolha de `auto`)",
    )
    limiar: float | None = Field(description="Corte de probabilidade do `pv_previsto`")
    taxa_prevista: float | None = Field(description="Proporção de alunos com PV previsto")
    metricas: dict[str, dict[str, Intervalo]] = Field(
        description="Por quem prevê (`modelo` e cada referência) e métrica (roc_auc, pr_auc, "
        "brier, recall_top15, recall_top25), o valor e o intervalo de 95%"
    )
    taxa_prevista_referencias: dict[str, float | None] = Field(
        default_factory=dict, description="Proporção com PV previsto por cada referência"
    )
    comparacoes: dict[str, dict[str, Diferenca]] = Field(
        description="Por referência e métrica (roc_auc, pr_auc): modelo − referência nos mesmos "
        "alunos, com intervalo bootstrap pareado e o veredito"
    )
    estimado: dict[str, Intervalo] = Field(
        default_factory=dict,
        description="Desempenho estimado só pelas probabilidades, antes de conhecer os "
        "resultados, para comparar com o realizado em `metricas.modelo`",
    )
    confiabilidade: list[PontoConfiabilidade] = Field(
        default_factory=list,
        description="Pontos do gráfico de confiabilidade (probabilidade prevista × taxa real)",
    )


class BacktestModelo(BaseModel):
    nome: str = Field(description="Modelo em uso")
    versao: str = Field(description="Versão em uso; o backtest é o do treino que a gerou")
    resumo: str | None = Field(
        default=None, description="Em português simples: o ano mais recente contra o INDE_t sozinho"
    )
    modelo_pedido: str | None = Field(default=None, description="Tipo pedido no treino (ex.: auto)")
    modelo_final: str | None = Field(default=None, description="Tipo do modelo em uso")
    replicas_bootstrap: int | None = Field(
        default=None, description="Réplicas bootstrap dos intervalos"
    )
    regra_rotulo: str | None = Field(
        default=None, description="Como o limiar do `pv_previsto` é escolhido"
    )
    regra_escolha: str | None = Field(
        default=None, description="Como `auto` escolhe o tipo de modelo"
    )
    referencias: dict[str, str] = Field(description="Nome legível de cada referência simples")
    anos: list[AnoBacktest] = Field(description="Um item por transição testada, da mais antiga")


@router.get(
    "/model/backtest",
    response_model=BacktestModelo,
    summary="Backtest por ano do modelo em uso (modelo e referências, com intervalos)",
    description="Como o modelo em uso teria se saído em cada ciclo que dava para conferir: para "
    "cada transição testada, tudo (escolha do tipo, ajuste, calibração, limiar e as referências "
    "INDE_t sozinho, IPV_t sozinho e a regressão logística simples) foi ajustado só nas "
    "transições anteriores. Só números agregados, nenhum dado de aluno. 404 quando o modelo foi "
    "treinado com uma só transição rotulada (sem backtest).",
    responses={404: {"description": "O modelo em uso não tem backtest"}},
)
async def model_backtest(model: Model) -> BacktestModelo:
    document = model.backtest
    if document is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"o modelo em uso (v{model.version}) não tem backtest: foi treinado com uma só "
            "transição rotulada (o backtest precisa de pelo menos três ciclos com PV); a "
            "avaliação dele está em /model/info",
        )
    try:
        return BacktestModelo.model_validate(
            json_safe(document)
            | {"nome": model.name, "versao": model.version, "referencias": dict(BASELINES)}
        )
    except ValidationError as exc:
        logger.warning("backtest of v%s not understood: %s", model.version, exc)
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"o backtest do modelo em uso (v{model.version}) está num formato que esta versão "
            "da API não reconhece; treine de novo para gerá-lo",
        ) from exc


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
    metricas: dict[str, float] = Field(description=METRICS_DESCRIPTION)
    referencias: dict[str, float] = Field(description=BASELINES_DESCRIPTION)


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
        description="No ano mais recente do backtest: ROC-AUC (oot_roc_auc), PR-AUC (oot_pr_auc) "
        "e Brier (oot_brier); cv_roc_auc (validação cruzada) só em modelos treinados com uma "
        "só transição; as que houver"
    )
    referencias: dict[str, float] = Field(
        description="As mesmas métricas das referências simples (oot_baseline_<nome>_<métrica>), "
        "quando registradas"
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
