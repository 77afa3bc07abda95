"""Performance of the model: realised (once a cycle's outcomes arrived, recorded by
`passos-magicos evaluate`) and estimated (the cohort being scored now, before its outcomes)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from passos_magicos.followups.schemas import RelatorioAcompanhamentos
from passos_magicos.performance import intervals_as_dict
from passos_magicos.serving.cohort import IncompatibleFeaturesError
from passos_magicos.serving.deps import State, model_or_503
from passos_magicos.serving.schemas import ModeloUsado
from passos_magicos.serving.scoring import model_block
from passos_magicos.serving.security import ApiToken

router = APIRouter(tags=["desempenho"])

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Token de API ausente"},
    403: {"description": "Token inválido, ou nenhum token configurado (endpoint desabilitado)"},
}
MIN_CYCLE, MAX_CYCLE = 2000, 2100


class Intervalo(BaseModel):
    valor: float | None = Field(description="O valor (nulo quando indefinido)")
    ic_inf: float | None = Field(description="Limite inferior do intervalo de 95% (bootstrap)")
    ic_sup: float | None = Field(description="Limite superior do intervalo de 95%")


class Figuras(BaseModel):
    roc_auc: Intervalo
    pr_auc: Intervalo
    recall_top15: Intervalo = Field(
        description="Fração dos que atingiram o PV entre os 15% mais prováveis"
    )
    recall_top25: Intervalo = Field(description="Idem entre os 25% mais prováveis")
    brier: Intervalo = Field(
        description="Erro quadrático médio das probabilidades (menor é melhor)"
    )


class Taxas(BaseModel):
    prevista: float | None = Field(description="Fração com `pv_previsto` (probabilidade ≥ limiar)")
    esperada: float | None = Field(description="Média das probabilidades: a taxa de PV esperada")
    real: float | None = Field(description="Fração que atingiu o PV no ciclo seguinte")


class MatrizConfusao(BaseModel):
    previstos_e_atingiram: int
    previstos_e_nao_atingiram: int
    nao_previstos_e_atingiram: int
    nao_previstos_e_nao_atingiram: int


class DecisaoAlerta(BaseModel):
    acao: str = Field(description="O que a política de alertas fez (alerta, nenhuma, suprimido…)")
    entregue: bool = Field(description="Se uma mensagem chegou ao Slack")
    motivo: str | None


class RegistroRealizado(BaseModel):
    modelo: str
    versao: str
    ciclo: int = Field(description="Ciclo t dos registros pontuados")
    ciclo_desfecho: int = Field(description="Ciclo t+1, de onde vem o PV real")
    avaliado_em: str = Field(description="Quando a avaliação rodou (ISO 8601, UTC)")
    estado: Literal["ok", "alerta", "indeterminado"]
    motivo: str | None = Field(description="Por que é indeterminado (nulo nos outros casos)")
    piso_roc_auc: float = Field(description="REALISED_MIN_ROC_AUC no momento da avaliação")
    previsoes: int = Field(description="Alunos do ciclo t com previsão desta versão")
    n: int = Field(description="Desses, os que têm PV conhecido em t+1 (entram nas métricas)")
    positivos: int = Field(description="Os que atingiram o PV em t+1")
    sem_registro: int = Field(description="Sem registro em t+1 (saíram ou não estão nos arquivos)")
    sem_rotulo: int = Field(description="Com registro em t+1, mas sem PV")
    origem_rotulos: dict[str, int] = Field(description="oficial / derivado (regra do IPV)")
    fontes: dict[str, int] = Field(description="lista_pontuada (predict) / log_de_previsoes (API)")
    limiar: float | None = Field(description="Limiar de `pv_previsto` do modelo")
    realizado: Figuras = Field(description="Métricas com os desfechos reais")
    estimado: Figuras = Field(
        description="O que se esperava antes dos desfechos, pelas mesmas probabilidades"
    )
    erro_estimativa: dict[str, float | None] = Field(description="estimado − realizado")
    taxas: Taxas
    matriz_confusao: MatrizConfusao = Field(description="pv_previsto × PV real, com desfecho")
    replicas: int = Field(description="Réplicas do bootstrap")
    alerta: DecisaoAlerta | None = Field(description="Nulo quando rodou com --no-alerts")
    verificacao: dict[str, Any] = Field(
        description="A verificação como em `GET /alerts/status` (`desempenho_realizado`)"
    )
    acompanhamentos: RelatorioAcompanhamentos | None = Field(
        default=None,
        description="Da ação ao desfecho (descritivo, não causal): taxa de PV em t+1 dos "
        "sinalizados com e sem acompanhamento, e por tipo, com contagens e intervalos de 95%; "
        "nulo nas avaliações gravadas antes deste relatório existir",
    )


class DesempenhoRealizado(BaseModel):
    registros: list[RegistroRealizado] = Field(
        description="Um por (modelo, versão, ciclo), do ciclo mais recente ao mais antigo"
    )


class AlunoAvaliado(BaseModel):
    posicao: int = Field(description="1 = o mais provável de atingir o PV segundo o modelo")
    aluno_id: str
    probabilidade_pv: float
    pv_previsto: bool
    pv_real: bool | None = Field(description="Atingiu o PV em t+1 (nulo: sem desfecho)")
    pv_origem: str | None = Field(description="oficial ou derivado (regra do IPV)")
    fonte: str = Field(description="lista_pontuada ou log_de_previsoes")


class ComoSeSaiu(BaseModel):
    modelo: str
    versao: str
    ciclo: int
    ciclo_desfecho: int
    avaliado_em: str
    total: int = Field(description="Alunos na lista (com e sem desfecho)")
    pagina: int
    por_pagina: int
    matriz_confusao: MatrizConfusao
    alunos: list[AlunoAvaliado] = Field(description="Do mais provável ao menos provável")


class DesempenhoEstimado(BaseModel):
    modelo: ModeloUsado
    feature_store_versao: int = Field(description="Versão do feature store online pontuada")
    ciclo: int = Field(description="Ciclo t mais recente do feature store (a turma pontuada)")
    ciclo_alvo: int = Field(description="Ciclo t+1 cujo PV se estima")
    n: int = Field(description="Alunos do ciclo t no feature store")
    estimado: Figuras = Field(
        description="Métricas esperadas se as probabilidades estiverem calibradas (intervalo: "
        "variação quando os desfechos são sorteados dessas probabilidades)"
    )
    taxa_pv_esperada: float | None = Field(description="Média das probabilidades")
    taxa_pv_prevista: float | None = Field(description="Fração com probabilidade ≥ limiar")
    limiar: float
    replicas: int
    calculado_em: str = Field(description="Quando a estimativa foi calculada (ISO 8601, UTC)")
    realizado: RegistroRealizado | None = Field(
        description="O desempenho realizado desta versão neste ciclo, quando já avaliado"
    )


def _modelo(state: State, modelo: str | None) -> str:
    if modelo is not None:
        return modelo
    current = state.runtime.current
    return current.name if current is not None else state.settings.MLFLOW_MODEL_NAME


ModeloQuery = Annotated[
    str | None,
    Query(max_length=200, description="Nome do modelo (padrão: o modelo em uso)"),
]


@router.get(
    "/monitoring/realised",
    dependencies=[ApiToken],
    response_model=DesempenhoRealizado,
    summary="Desempenho realizado por versão e ciclo",
    description="Gravado por `passos-magicos evaluate` (ou pelo treino) quando chegam os "
    "desfechos do ciclo t+1: para as previsões feitas para os alunos do ciclo t, ROC-AUC, "
    "PR-AUC, recall entre os 15% e 25% mais prováveis e Brier com intervalos de 95%, ao lado "
    "da estimativa que existia antes dos desfechos; taxas de PV prevista e real; origem dos "
    "rótulos; e o relatório da ação ao desfecho (`acompanhamentos`: taxa de PV dos sinalizados "
    "com e sem acompanhamento, descritivo, não causal). Exige o token de API.",
    responses=AUTH_ERRORS,
)
async def realised(
    state: State,
    modelo: Annotated[str | None, Query(max_length=200, description="Filtra por modelo")] = None,
    versao: Annotated[str | None, Query(max_length=40, description="Filtra por versão")] = None,
    ciclo: Annotated[
        int | None, Query(ge=MIN_CYCLE, le=MAX_CYCLE, description="Filtra pelo ciclo t")
    ] = None,
) -> DesempenhoRealizado:
    records = await run_in_threadpool(state.performance.realised_records, modelo, versao, ciclo)
    return DesempenhoRealizado.model_validate({"registros": records})


@router.get(
    "/monitoring/realised/{versao}/{ciclo}/alunos",
    dependencies=[ApiToken],
    response_model=ComoSeSaiu,
    summary="Como o modelo se saiu: a lista do ciclo ao lado de quem atingiu o PV",
    description="A lista pontuada dos alunos do ciclo t por esta versão, do mais provável ao "
    "menos provável de atingir o PV, com o desfecho real em t+1 (e a origem do rótulo). "
    "Paginada. Só ids pseudônimos, nunca nomes. Exige o token de API.",
    responses={**AUTH_ERRORS, 404: {"description": "Versão e ciclo ainda não avaliados"}},
)
async def realised_students(
    state: State,
    versao: Annotated[str, Path(max_length=40, description="Versão do modelo")],
    ciclo: Annotated[int, Path(ge=MIN_CYCLE, le=MAX_CYCLE, description="Ciclo t")],
    modelo: ModeloQuery = None,
    pagina: Annotated[int, Query(ge=1, le=100_000, description="Página (a partir de 1)")] = 1,
    por_pagina: Annotated[int, Query(ge=1, le=1000, description="Alunos por página")] = 200,
) -> ComoSeSaiu:
    name = _modelo(state, modelo)
    record = await run_in_threadpool(state.performance.realised_record, name, versao, ciclo)
    if record is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"{name} v{versao} ainda não foi avaliado no ciclo {ciclo}: rode `passos-magicos "
            f"evaluate` com o arquivo do ciclo {ciclo + 1}",
        )
    students, total = await run_in_threadpool(
        state.performance.realised_students,
        name,
        versao,
        ciclo,
        por_pagina,
        (pagina - 1) * por_pagina,
    )
    return ComoSeSaiu(
        modelo=name,
        versao=versao,
        ciclo=ciclo,
        ciclo_desfecho=ciclo + 1,
        avaliado_em=record["avaliado_em"],
        total=total,
        pagina=pagina,
        por_pagina=por_pagina,
        matriz_confusao=MatrizConfusao.model_validate(record["matriz_confusao"]),
        alunos=[
            AlunoAvaliado(
                posicao=s.posicao,
                aluno_id=s.aluno_id,
                probabilidade_pv=s.probabilidade,
                pv_previsto=s.pv_previsto,
                pv_real=s.pv_real,
                pv_origem=s.pv_origem,
                fonte=s.fonte,
            )
            for s in students
        ],
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@router.get(
    "/model/performance",
    dependencies=[ApiToken],
    response_model=DesempenhoEstimado,
    summary="Desempenho esperado da turma pontuada agora (antes dos desfechos)",
    description="Pontua os alunos do ciclo mais recente do feature store online com o modelo em "
    "uso e, a partir das probabilidades calibradas, estima o ROC-AUC, o PR-AUC, o recall entre "
    "os 15% e 25% mais prováveis e a taxa de PV esperados (no espírito do CBPE do NannyML). "
    "Calculado uma vez por versão do modelo e do feature store. Traz também o desempenho "
    "realizado desta versão neste ciclo, quando os desfechos já foram avaliados. Exige o "
    "token de API.",
    responses={
        **AUTH_ERRORS,
        503: {"description": "Modelo não carregado, ou feature store vazio ou incompatível"},
    },
)
async def model_performance(state: State) -> DesempenhoEstimado:
    model = model_or_503(state)  # after the token (a route dependency): 401/403 before 503
    snapshot = state.features.snapshot
    if snapshot is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "feature store ainda vazio: rode `passos-magicos materialize` ou um treino",
        )
    settings = state.settings
    try:
        estimate = await run_in_threadpool(
            state.cohort.get, model, snapshot, settings.BACKTEST_REPLICATES, settings.RANDOM_SEED
        )
    except IncompatibleFeaturesError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    record = await run_in_threadpool(
        state.performance.realised_record, model.name, model.version, estimate.ciclo
    )
    return DesempenhoEstimado.model_validate(
        {
            "modelo": model_block(model),
            "feature_store_versao": snapshot.meta.version,
            "ciclo": estimate.ciclo,
            "ciclo_alvo": estimate.ciclo + 1,
            "n": estimate.n,
            "estimado": intervals_as_dict(estimate.figures),
            "taxa_pv_esperada": _finite(estimate.expected_rate),
            "taxa_pv_prevista": _finite(estimate.predicted_rate),
            "limiar": estimate.threshold,
            "replicas": estimate.replicates,
            "calculado_em": estimate.computed_at,
            "realizado": record,
        }
    )
