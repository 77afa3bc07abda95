"""GET /model/fairness: does the serving model serve every group of students equally well?
The fairness table of the training run that produced it (training/fairness.py), per backtest
year and group — aggregate figures only, never a student's record."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field, ValidationError

from passos_magicos.json_types import json_safe
from passos_magicos.serving.deps import Model

router = APIRouter(tags=["modelo"])
logger = logging.getLogger(__name__)


class IntervaloGrupo(BaseModel):
    valor: float | None = Field(description="Valor no grupo (nulo quando não pôde ser calculado)")
    ic_inf: float | None = Field(description="Limite inferior do intervalo bootstrap de 95%")
    ic_sup: float | None = Field(description="Limite superior do intervalo bootstrap de 95%")


class DiferencaGrupo(IntervaloGrupo):
    """Group minus the rest of its grouping."""

    demais: float | None = Field(description="Valor no restante do agrupamento")
    ep: float | None = Field(description="Erro-padrão da diferença usado na regra")
    ic_ajustado_inf: float | None = Field(
        description="Diferença − z × erro-padrão, com z corrigido (Bonferroni) para todas as "
        "comparações do ano"
    )
    ic_ajustado_sup: float | None = Field(description="Diferença + z × erro-padrão")
    testada: bool = Field(description="Se a comparação entrou na regra (grupos grandes o bastante)")
    sinalizada: bool = Field(
        description="Se o intervalo ajustado mostra que o modelo atende pior este grupo"
    )


class GrupoEquidade(BaseModel):
    agrupamento: str = Field(description="genero, escola, fase ou anos_programa")
    grupo: str = Field(description="Ex.: feminino, pública, privada/parceira, fase 3")
    n: int = Field(description="Alunos do grupo no ano testado")
    positivos: int = Field(description="Quantos deles atingiram o PV")
    comparado: bool = Field(description="Se o grupo foi comparado com o restante")
    motivo: str | None = Field(description="Por que não foi comparado (nulo se foi)")
    metricas: dict[str, IntervaloGrupo] = Field(
        description="taxa_real, taxa_prevista, recall_rotulo, falsos_positivos_rotulo, "
        "recall_top15, recall_top25, roc_auc, prob_media, calibracao — com intervalos de 95%"
    )
    diferencas: dict[str, DiferencaGrupo] = Field(
        description="Grupo − restante do agrupamento, nas métricas que podem ser sinalizadas"
    )


class LacunaSinalizada(BaseModel):
    codigo: str = Field(description="agrupamento:grupo:métrica")
    transicao: str
    agrupamento: str
    grupo: str
    metrica: str
    texto: str = Field(description="A lacuna em português simples, com os números")


class AnoEquidade(BaseModel):
    ano_teste: int = Field(description="Ano do PV previsto (o ciclo t+1 da transição testada)")
    transicao: str = Field(description="Transição testada, ex.: 2023→2024")
    n: int
    positivos: int
    limiar: float | None = Field(description="Corte de probabilidade do `pv_previsto` no ano")
    comparacoes: int = Field(description="Comparações grupo × métrica feitas no ano (m)")
    z_critico: float | None = Field(description="z dos intervalos ajustados (Bonferroni, m)")
    grupos: list[GrupoEquidade]
    sinalizadas: list[LacunaSinalizada] = Field(description="Diferenças sinalizadas no ano")


class EquidadeModelo(BaseModel):
    nome: str = Field(description="Modelo em uso")
    versao: str = Field(description="Versão em uso; o relatório é o do treino que a gerou")
    resumo: str = Field(description="Em português simples: o ano mais recente")
    regra: str = Field(description="Quando uma diferença é sinalizada")
    alfa: float
    n_minimo: int
    positivos_minimos: int
    negativos_minimos: int
    diferenca_minima: float
    replicas_bootstrap: int
    agrupamentos: dict[str, str] = Field(description="Nome legível de cada agrupamento")
    metricas: dict[str, str] = Field(description="Nome legível de cada métrica")
    sentido_ruim: dict[str, str] = Field(
        description="Para cada métrica sinalizável, o sentido que indica pior atendimento"
    )
    anos: list[AnoEquidade] = Field(description="Um item por ano do backtest, do mais antigo")


@router.get(
    "/model/fairness",
    response_model=EquidadeModelo,
    summary="Equidade do modelo em uso por grupo de alunos e ano do backtest",
    description="O modelo atende igualmente bem cada grupo — gênero, tipo de escola (pública × "
    "privada/parceira), fase e anos no programa? Para cada ano do backtest e grupo: taxa real "
    "e prevista de PV, recall e falsos positivos do `pv_previsto`, recall nos 15%/25% mais "
    "prováveis, ROC-AUC dentro do grupo e calibração, com intervalos de 95%; e a diferença para "
    "o restante do agrupamento, sinalizada só quando o intervalo ajustado (Bonferroni) mostra "
    "que é real. Só números agregados, nenhum dado de aluno. 404 quando o modelo não tem "
    "relatório de equidade (treinado com uma só transição, ou antes deste relatório).",
    responses={404: {"description": "O modelo em uso não tem relatório de equidade"}},
)
async def model_fairness(model: Model) -> EquidadeModelo:
    document = model.fairness
    if document is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"o modelo em uso (v{model.version}) não tem relatório de equidade: ele sai do "
            "backtest, que precisa de pelo menos três ciclos com PV (ou o modelo foi treinado "
            "antes deste relatório); treine de novo para gerá-lo",
        )
    try:
        return EquidadeModelo.model_validate(
            json_safe(document) | {"nome": model.name, "versao": model.version}
        )
    except ValidationError as exc:
        logger.warning("fairness report of v%s not understood: %s", model.version, exc)
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"o relatório de equidade do modelo em uso (v{model.version}) está num formato que "
            "esta versão da API não reconhece; treine de novo para gerá-lo",
        ) from exc
