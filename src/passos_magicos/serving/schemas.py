"""Request and response bodies of the API, with pt-BR descriptions and examples for /docs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from passos_magicos.features import CATEGORICAL, CURRENT_NUMERIC, HISTORY_FIELDS
from passos_magicos.json_types import INTEGRAL, Boolean, Integer, Number

# Keys that mean "the answer": PV of the next cycle is what the API predicts, never an input.
LABEL_KEYS = frozenset(
    {"pv_proximo", "pv_t1", "pv_seguinte", "atingiu_pv_proximo", "ponto_virada_proximo"}
)

CURRENT_INPUT_FIELDS = (*CURRENT_NUMERIC, *CATEGORICAL)
HISTORY_INPUT_FIELDS = HISTORY_FIELDS

EXEMPLO_REGISTRO: dict[str, Any] = {
    "aluno_id": "RA-123",
    "ano": 2024,
    "fase": 3,
    "idade": 13,
    "anos_pm": 2,
    "pedra": "Ametista",
    "inde": 7.6,
    "iaa": 8.5,
    "ieg": 8.2,
    "ips": 7.5,
    "ipp": 7.3,
    "ida": 6.9,
    "ipv": 8.1,
    "ian": 5.0,
    "pv": False,
    "anterior": {"inde": 7.1, "ipv": 7.6, "ida": 6.2, "ieg": 7.9, "pv": False},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_label(cls, data: Any) -> Any:
        if isinstance(data, dict) and (sent := LABEL_KEYS.intersection(data)):
            raise ValueError(
                f"{', '.join(sorted(sent))}: é o rótulo (PV do ciclo seguinte) e não pode ser "
                "enviado; a API é que estima essa probabilidade"
            )
        return data


class CicloAnterior(_Strict):
    """Indicadores do mesmo aluno no ciclo anterior (t−1), se houver."""

    inde: Number | None = Field(default=None, ge=0, le=10, description="INDE em t−1")
    iaa: Number | None = Field(default=None, ge=0, le=10)
    ieg: Number | None = Field(default=None, ge=0, le=10)
    ips: Number | None = Field(default=None, ge=0, le=10)
    ipp: Number | None = Field(default=None, ge=0, le=10)
    ida: Number | None = Field(default=None, ge=0, le=10)
    ipv: Number | None = Field(default=None, ge=0, le=10)
    ian: Number | None = Field(default=None, ge=0, le=10)
    pv: Boolean | None = Field(default=None, description="Atingiu o PV em t−1")


class RegistroAluno(_Strict):
    """O registro de um aluno no ciclo *t* da PEDE (só o que se sabe em *t*)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXEMPLO_REGISTRO]})

    aluno_id: str | None = Field(
        default=None,
        max_length=32,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Id pseudônimo do próprio arquivo (ALUNO-n ou RA-n). Nunca o nome.",
    )
    ano: Annotated[int, Field(strict=True, ge=2000, le=2100), INTEGRAL] | None = Field(
        default=None, description="Ciclo t do registro"
    )
    fase: Integer = Field(ge=0, le=7, description="Fase (0 = ALFA … 7). A fase 8 não tem PV.")
    idade: Number | None = Field(default=None, ge=4, le=40)
    anos_pm: Annotated[int, Field(strict=True, ge=0, le=30), INTEGRAL] | None = Field(
        default=None, description="Anos no programa"
    )
    pedra: Literal["Quartzo", "Ágata", "Ametista", "Topázio"] | None = None
    genero: Literal["Feminino", "Masculino"] | None = Field(
        default=None, description="Aceito e validado, mas não usado pelo modelo"
    )
    turma: str | None = Field(default=None, max_length=40)
    inde: Number = Field(ge=0, le=10, description="INDE do ciclo t")
    iaa: Number = Field(ge=0, le=10, description="Autoavaliação")
    ieg: Number = Field(ge=0, le=10, description="Engajamento")
    ips: Number = Field(ge=0, le=10, description="Psicossocial")
    ipp: Number = Field(ge=0, le=10, description="Psicopedagógico")
    ida: Number = Field(ge=0, le=10, description="Desempenho acadêmico")
    ipv: Number = Field(ge=0, le=10, description="Ponto de virada (indicador)")
    ian: Number = Field(ge=0, le=10, description="Adequação de nível")
    pv: Boolean | None = Field(default=None, description="Atingiu o PV no próprio ciclo t")
    anterior: CicloAnterior | None = None

    @field_validator("pedra", mode="before")
    @classmethod
    def _accent(cls, value: Any) -> Any:
        return "Ágata" if isinstance(value, str) and value.lower() == "agata" else value

    def model_inputs(self) -> dict[str, Any]:
        """Canonical field names the model takes (history as `<x>_anterior`).

        Reads the validated attributes directly: `model_dump` costs more than the model."""
        values = self.__dict__
        inputs = {name: values[name] for name in CURRENT_INPUT_FIELDS}
        if self.anterior is not None:
            previous = self.anterior.__dict__
            for name in HISTORY_INPUT_FIELDS:
                inputs[f"{name}_anterior"] = previous[name]
        # PV as a number, as the feature store gives it: one type per field in the log.
        for name in ("pv", "pv_anterior"):
            if type(inputs.get(name)) is bool:
                inputs[name] = float(inputs[name])
        return inputs


class Fator(BaseModel):
    fator: str = Field(description="Entrada do modelo (ou 'historico')")
    descricao: str
    valor: float | str | None
    referencia: float | str | None = Field(description="Valor típico (mediana do treino)")
    impacto: float = Field(description="Quanto mudou a probabilidade (0-1) frente ao típico")
    efeito: Literal["aumenta", "diminui"]
    texto: str = Field(description="A mesma informação em uma frase")


class ModeloUsado(BaseModel):
    nome: str
    versao: str
    alias: str | None
    fonte: Literal["mlflow", "local", "fallback"]


class Previsao(BaseModel):
    request_id: str
    aluno_id: str | None = None
    ciclo: int | None = Field(default=None, description="Ciclo t de onde vêm as entradas")
    probabilidade_pv: float = Field(description="Probabilidade de atingir o PV no ciclo t+1")
    pv_previsto: bool = Field(description="probabilidade_pv ≥ limiar")
    limiar: float
    modelo: ModeloUsado
    fatores: list[Fator] | None = Field(default=None, description="O que mais pesou, até 5")


class LoteEntrada(BaseModel):
    model_config = ConfigDict(extra="forbid")
    registros: list[dict[str, Any]] = Field(
        description="Registros no formato de POST /predict; inválidos são apontados por índice",
        json_schema_extra={"examples": [[EXEMPLO_REGISTRO]]},
    )


class ErroDeLinha(BaseModel):
    indice: int
    erros: list[dict[str, str]]


class PrevisaoLote(BaseModel):
    request_id: str
    previsoes: list[Previsao]
    invalidos: list[ErroDeLinha]


class PerfilAluno(BaseModel):
    """Contexto do aluno no ciclo das features (nulo quando não informado)."""

    fase: int | None = Field(description="Fase no ciclo das features (0 = ALFA)")
    turma: str | None
    pedra: str | None = Field(description="Quartzo, Ágata, Ametista ou Topázio")
    genero: str | None


class PrevisaoDeAluno(Previsao):
    perfil: PerfilAluno = Field(description="Fase, turma, pedra e gênero, para filtrar")


class PrevisaoAlunos(BaseModel):
    request_id: str
    previsoes: list[PrevisaoDeAluno]
    desconhecidos: list[str]
    ambiguos: dict[str, list[str]]
