"""A student's indicators in every cycle, from the offline feature store (for the dashboard)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from passos_magicos.feature_store.history import StudentHistory
from passos_magicos.feature_store.offline import (
    OfflineInfo,
    OfflineStoreCorruptError,
    OfflineStoreNotFoundError,
)
from passos_magicos.feature_store.online import AmbiguousStudentError, UnknownStudentError
from passos_magicos.serving.deps import State
from passos_magicos.serving.security import ApiToken

router = APIRouter(prefix="/alunos", tags=["alunos"])


class Ciclo(BaseModel):
    ano: int = Field(description="Ano do ciclo da PEDE")
    fase: int | None = Field(description="Fase (0 = ALFA … 8)")
    pedra: str | None = Field(description="Quartzo, Ágata, Ametista ou Topázio")
    inde: float | None = Field(description="INDE do ciclo")
    iaa: float | None = Field(description="Autoavaliação")
    ieg: float | None = Field(description="Engajamento")
    ips: float | None = Field(description="Psicossocial")
    ipp: float | None = Field(description="Psicopedagógico")
    ida: float | None = Field(description="Desempenho acadêmico")
    ipv: float | None = Field(description="Ponto de virada (indicador)")
    ian: float | None = Field(description="Adequação de nível")
    pv: bool | None = Field(description="Atingiu o Ponto de Virada neste ciclo")


class HistoricoAluno(BaseModel):
    aluno_id: str = Field(description="Id pseudônimo do aluno no arquivo (nunca o nome)")
    ciclos: list[Ciclo] = Field(description="Um item por ciclo, do mais antigo ao mais recente")
    atualizado_em: str = Field(
        description="Quando o feature store offline foi gravado (ISO 8601, UTC)"
    )


def _lookup(state: State, key: str) -> tuple[StudentHistory, OfflineInfo]:
    try:
        return state.history.resolve(key)
    except OfflineStoreNotFoundError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "histórico indisponível: o feature store offline ainda não foi gravado; rode "
            "`passos-magicos materialize` ou um treino",
        ) from exc
    except OfflineStoreCorruptError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "histórico indisponível: o feature store offline está inconsistente; rode "
            "`passos-magicos materialize` de novo",
        ) from exc
    except UnknownStudentError as exc:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"aluno {key.strip()!r} não encontrado no histórico (feature store offline)",
        ) from exc
    except AmbiguousStudentError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"número {key.strip()!r} é ambíguo: use um destes ids: {', '.join(exc.candidates)}",
        ) from exc


RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Token de API ausente"},
    403: {"description": "Token inválido, ou nenhum token configurado (endpoint desabilitado)"},
    404: {"description": "Aluno desconhecido"},
    409: {"description": "Número ambíguo (existe ALUNO-n e RA-n)"},
    503: {"description": "Feature store offline ainda não gravado"},
}


@router.get(
    "/{aluno_id}/historico",
    dependencies=[ApiToken],
    response_model=HistoricoAluno,
    summary="Indicadores de um aluno em todos os ciclos",
    description="Lê o feature store offline (todos os ciclos da PEDE, com o PV de cada ciclo já "
    "avaliado: é histórico, não previsão). Aceita `ALUNO-n`, `RA-n` ou só o número quando não "
    "é ambíguo, como `GET /predict/aluno/{aluno_id}`. Exige o token de API.",
    responses=RESPONSES,
)
async def student_history(
    aluno_id: Annotated[str, Path(max_length=32, description="Id do aluno no arquivo")],
    state: State,
) -> HistoricoAluno:
    student, info = await run_in_threadpool(_lookup, state, aluno_id)
    return HistoricoAluno(
        aluno_id=student.aluno_id,
        ciclos=[Ciclo(**cycle) for cycle in student.cycles],
        atualizado_em=info.written_at,
    )
