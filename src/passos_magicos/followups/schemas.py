"""Request and response bodies of the follow-up endpoints and of the outcome report, with pt-BR
descriptions and examples for /docs."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from passos_magicos.json_types import Integer

Status = Literal["planejado", "em_andamento", "concluido", "cancelado"]
STATUS_DESCRIPTION = (
    "planejado, em_andamento, concluido ou cancelado (no relatório de desfechos, só "
    "em_andamento e concluido contam como acompanhamento feito)"
)
ID_PATTERN = r"^[A-Za-z0-9_-]+$"
MIN_CYCLE, MAX_CYCLE = 2000, 2100
NOTE_CHARS = 500

EXEMPLO_NOVO: dict[str, Any] = {
    "aluno_id": "RA-123",
    "ciclo": 2024,
    "tipo": "reforço escolar",
    "data": "2025-03-10",
    "status": "planejado",
}


class NovoAcompanhamento(BaseModel):
    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [EXEMPLO_NOVO]}
    )
    aluno_id: str = Field(
        min_length=1,
        max_length=32,
        pattern=ID_PATTERN,
        description="Id pseudônimo do aluno no arquivo (`RA-n`, `ALUNO-n`; nunca o nome)",
    )
    ciclo: Integer = Field(
        ge=MIN_CYCLE,
        le=MAX_CYCLE,
        description="Ciclo t da PEDE cuja previsão motivou o acompanhamento (o desfecho é o PV "
        "de t+1); no máximo o ciclo mais recente do aluno no feature store",
    )
    tipo: str = Field(
        min_length=1,
        max_length=60,
        description="Um dos tipos configurados em FOLLOWUP_TYPES (veja `GET "
        "/acompanhamentos/opcoes`)",
    )
    data: date = Field(
        ge=date(MIN_CYCLE, 1, 1),
        le=date(MAX_CYCLE, 12, 31),
        description="Data da ação, feita ou planejada (AAAA-MM-DD)",
    )
    status: Status = Field(default="planejado", description=STATUS_DESCRIPTION)
    nota: str | None = Field(
        default=None,
        max_length=NOTE_CHARS,
        description="Texto livre, só aceito com FOLLOWUP_NOTES_ENABLED=true (desligado por "
        "padrão: pode conter detalhes sensíveis sobre um menor); nunca vai para os logs",
    )


class MudancaStatus(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"status": "concluido"}]}
    )
    status: Status = Field(description=STATUS_DESCRIPTION)


class Acompanhamento(BaseModel):
    id: int
    aluno_id: str = Field(description="Id pseudônimo do aluno")
    ciclo: int = Field(description="Ciclo t da previsão que motivou o acompanhamento")
    tipo: str
    data: date
    status: Status
    autor: str = Field(description="Nome do token da equipe que registrou (TEAM_TOKENS)")
    criado_em: str = Field(description="ISO 8601, UTC")
    atualizado_em: str = Field(description="ISO 8601, UTC")
    atualizado_por: str = Field(description="Nome do token da equipe que mudou por último")
    nota: str | None = Field(
        description="Nota livre: só para tokens da equipe (nula para tokens de API e quando as "
        "notas estão desligadas)"
    )


class AcompanhamentosDoAluno(BaseModel):
    aluno_id: str
    itens: list[Acompanhamento] = Field(
        description="Do ciclo mais recente ao mais antigo; no ciclo, da data mais recente"
    )


class PaginaAcompanhamentos(BaseModel):
    itens: list[Acompanhamento] = Field(description="Em ordem de registro (id)")
    total: int = Field(description="Registros que atendem ao filtro")
    pagina: int
    por_pagina: int


class OpcaoStatus(BaseModel):
    valor: Status
    rotulo: str = Field(description="Como mostrar ao usuário")


class OpcoesAcompanhamento(BaseModel):
    tipos: list[str] = Field(description="Tipos aceitos (FOLLOWUP_TYPES)")
    status: list[OpcaoStatus]
    notas_permitidas: bool = Field(description="FOLLOWUP_NOTES_ENABLED")
    escrita_habilitada: bool = Field(
        description="Se há tokens da equipe configurados (TEAM_TOKENS); sem eles, só leitura"
    )


# -- the outcome report (stored with the realised record) -----------------------------------


class TaxaComIntervalo(BaseModel):
    valor: float | None = Field(description="Nulo quando o grupo está vazio")
    ic_inf: float | None = Field(description="Limite inferior do intervalo de 95%")
    ic_sup: float | None = Field(description="Limite superior do intervalo de 95%")


class GrupoDesfecho(BaseModel):
    n: int = Field(description="Alunos sinalizados com PV conhecido em t+1 no grupo")
    atingiram_pv: int
    taxa: TaxaComIntervalo = Field(description="Taxa de PV em t+1 (intervalo de Wilson)")


class GrupoPorTipo(GrupoDesfecho):
    tipo: str
    diferenca_vs_sem: TaxaComIntervalo = Field(
        description="Taxa deste tipo − taxa de quem não teve acompanhamento (Newcombe)"
    )


class RelatorioAcompanhamentos(BaseModel):
    estado: Literal["ok", "indisponivel"] = Field(
        description="indisponivel: os acompanhamentos não puderam ser lidos na avaliação"
    )
    motivo: str | None
    descritivo: bool = Field(description="Sempre verdadeiro: o relatório não é causal")
    aviso: str = Field(description="Por que a comparação não mede o efeito do acompanhamento")
    metodo: str
    ciclo: int
    ciclo_desfecho: int
    sinalizados: int | None = Field(description="Alunos com PV previsto na lista do ciclo t")
    sinalizados_sem_desfecho: int | None = Field(description="Desses, sem PV conhecido em t+1")
    registros: int | None = Field(description="Acompanhamentos registrados para o ciclo t")
    alunos_com_registro: int | None
    registros_de_nao_sinalizados: int | None = Field(
        description="Registros de alunos que o modelo não sinalizou (fora da comparação)"
    )
    so_planejados_ou_cancelados: int | None = Field(
        description="Sinalizados com registros, mas nenhum em andamento ou concluído (contam "
        "como sem acompanhamento)"
    )
    com_acompanhamento: GrupoDesfecho | None
    sem_acompanhamento: GrupoDesfecho | None
    diferenca: TaxaComIntervalo | None = Field(
        description="Taxa com − taxa sem acompanhamento (intervalo de Newcombe)"
    )
    por_tipo: list[GrupoPorTipo] = Field(
        description="Um grupo por tipo feito (um aluno pode estar em mais de um)"
    )
