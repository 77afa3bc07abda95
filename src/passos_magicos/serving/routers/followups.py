"""Acompanhamentos: what the team did for a student after a prediction (follow-up records).

Writes need a team token (TEAM_TOKENS, whose name becomes the author); reads take a team token
or an API token. A new record's student must be in the online feature store (else 404), and
its cycle can be no later than the student's latest cycle there. The records are never model
features: nothing in training or in the feature store reads them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from passos_magicos.feature_store.online import (
    AmbiguousStudentError,
    FeatureStoreEmptyError,
    UnknownStudentError,
)
from passos_magicos.followups.schemas import (
    MAX_CYCLE,
    MIN_CYCLE,
    Acompanhamento,
    AcompanhamentosDoAluno,
    MudancaStatus,
    NovoAcompanhamento,
    OpcaoStatus,
    OpcoesAcompanhamento,
    PaginaAcompanhamentos,
    Status,
)
from passos_magicos.followups.store import STATUS_LABELS, STATUSES, Followup, FollowupStoreError
from passos_magicos.serving.deps import State
from passos_magicos.serving.errors import Erro, ErroValidacao
from passos_magicos.serving.security import FollowupReader, ReaderIsTeam, TeamMember

logger = logging.getLogger(__name__)
router = APIRouter(tags=["acompanhamentos"])
T = TypeVar("T")
MAX_ID = 2**31 - 1  # an INTEGER column on every backend


def _error(description: str) -> dict[str, Any]:
    return {"model": Erro, "description": description}


READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error("Nenhum token enviado"),
    403: _error("Token inválido, ou nenhum token configurado (TEAM_TOKENS / API_TOKENS)"),
    422: {"model": ErroValidacao, "description": "Parâmetros inválidos"},
    503: _error("Armazenamento de acompanhamentos indisponível (tente de novo)"),
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **READ_ERRORS,
    403: _error(
        "Token de API (só lê), token inválido, ou nenhum token da equipe configurado "
        "(TEAM_TOKENS): escrita desabilitada"
    ),
    422: {"model": ErroValidacao, "description": "Corpo inválido (campo e motivo em português)"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _error("Acompanhamento inexistente")}


def _invalid(field: str, message: str) -> RequestValidationError:
    """A 422 in the project's format (errors.validation_error), for checks pydantic cannot do."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", field), "msg": message, "input": None}]
    )


def _unavailable(exc: Exception) -> HTTPException:
    logger.warning("acompanhamentos: armazenamento indisponível (%s)", type(exc).__name__)
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "armazenamento de acompanhamentos indisponível; tente de novo em instantes",
        headers={"Retry-After": "5"},
    )


async def _stored(state: State, call: Callable[..., T], *args: Any) -> T:
    """Run a store call off the event loop, once the schema is at head (migrated on start)."""
    store = state.followups

    def run() -> T:
        store.ready()
        return call(*args)

    try:
        return await run_in_threadpool(run)
    except (FollowupStoreError, SQLAlchemyError) as exc:
        raise _unavailable(exc) from exc


def _body(record: Followup, team: bool = True) -> Acompanhamento:
    """The record as the API shows it; notes only to the team (never to API tokens)."""
    body = Acompanhamento.model_validate(record, from_attributes=True)
    return body if team else body.model_copy(update={"nota": None})


def _known_type(state: State, tipo: str) -> str:
    types = state.settings.FOLLOWUP_TYPES
    by_fold = {t.casefold(): t for t in types}
    found = by_fold.get(tipo.casefold())
    if found is None:
        raise _invalid("tipo", f"tipo desconhecido; use um de: {', '.join(types)}")
    return found


@router.get(
    "/acompanhamentos/opcoes",
    dependencies=[FollowupReader],
    response_model=OpcoesAcompanhamento,
    summary="Tipos e status aceitos, e se a escrita está habilitada",
    description="O que o formulário do dashboard oferece: os tipos de FOLLOWUP_TYPES, os "
    "status, se notas livres são aceitas (FOLLOWUP_NOTES_ENABLED) e se há tokens da equipe. "
    "Token da equipe ou de API.",
    responses={k: v for k, v in READ_ERRORS.items() if k in (401, 403)},
)
async def options(state: State) -> OpcoesAcompanhamento:
    settings = state.settings
    return OpcoesAcompanhamento(
        tipos=list(settings.FOLLOWUP_TYPES),
        status=[OpcaoStatus(valor=s, rotulo=STATUS_LABELS[s]) for s in STATUSES],
        notas_permitidas=settings.FOLLOWUP_NOTES_ENABLED,
        escrita_habilitada=bool(settings.team_tokens),
    )


@router.post(
    "/acompanhamentos",
    status_code=status.HTTP_201_CREATED,
    response_model=Acompanhamento,
    summary="Registra um acompanhamento",
    description="Registra o que a equipe fez (ou planeja fazer) por um aluno: tipo, data e "
    "status, para o ciclo t da previsão. O autor é o nome do token da equipe usado. O aluno "
    "precisa estar no feature store online (senão 404) e o ciclo não pode passar do mais "
    "recente dele. Notas livres só com FOLLOWUP_NOTES_ENABLED=true. Exige um token da equipe "
    "(TEAM_TOKENS); um token de API recebe 403.",
    responses={
        201: {"description": "Registrado; `Location` aponta para o aluno"},
        **WRITE_ERRORS,
        404: _error("Aluno desconhecido no feature store online"),
        409: _error("Número ambíguo (existe ALUNO-n e RA-n)"),
    },
)
async def create(
    body: NovoAcompanhamento, state: State, autor: TeamMember, response: Response
) -> Acompanhamento:
    tipo = _known_type(state, body.tipo)
    if body.nota and not state.settings.FOLLOWUP_NOTES_ENABLED:
        raise _invalid(
            "nota",
            "notas livres desabilitadas (FOLLOWUP_NOTES_ENABLED=false): registre só tipo, data "
            "e status",
        )
    try:
        student = state.features.resolve(body.aluno_id)
    except FeatureStoreEmptyError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "feature store ainda vazio: rode `passos-magicos materialize` ou um treino",
        ) from exc
    except UnknownStudentError as exc:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"aluno {body.aluno_id!r} não encontrado no feature store online",
        ) from exc
    except AmbiguousStudentError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"número {body.aluno_id!r} é ambíguo: use um destes ids: {', '.join(exc.candidates)}",
        ) from exc
    if body.ciclo > student.ano:
        raise _invalid(
            "ciclo",
            f"o aluno {student.aluno_id} tem registros até o ciclo {student.ano}; o "
            "acompanhamento é do ciclo da previsão que o motivou",
        )
    record = await _stored(
        state,
        lambda: state.followups.create(
            aluno_id=student.aluno_id,
            ciclo=body.ciclo,
            tipo=tipo,
            data=body.data,
            status=body.status,
            autor=autor,
            nota=body.nota or None,
        ),
    )
    # Ids only: never the author's name or a note.
    logger.info("acompanhamento %d registrado (ciclo %d)", record.id, record.ciclo)
    response.headers["Location"] = f"/alunos/{student.aluno_id}/acompanhamentos"
    return _body(record)


@router.get(
    "/alunos/{aluno_id}/acompanhamentos",
    response_model=AcompanhamentosDoAluno,
    summary="Acompanhamentos de um aluno",
    description="Todos os acompanhamentos do aluno, do ciclo mais recente ao mais antigo. "
    "Aceita `ALUNO-n`, `RA-n` ou só o número quando não é ambíguo (resolvidos pelo feature "
    "store online); um id que o feature store não conhece é procurado como foi escrito (lista "
    "vazia se não houver registros). Token da equipe ou de API (notas só para a equipe).",
    responses={**READ_ERRORS, 409: _error("Número ambíguo (existe ALUNO-n e RA-n)")},
)
async def of_student(
    aluno_id: Annotated[
        str, Path(max_length=32, pattern=r"^[A-Za-z0-9_ -]+$", description="Id do aluno")
    ],
    state: State,
    team: ReaderIsTeam,
) -> AcompanhamentosDoAluno:
    key = aluno_id.strip()
    try:
        key = state.features.resolve(aluno_id).aluno_id
    except (FeatureStoreEmptyError, UnknownStudentError):
        pass
    except AmbiguousStudentError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"número {key!r} é ambíguo: use um destes ids: {', '.join(exc.candidates)}",
        ) from exc
    records = await _stored(state, state.followups.for_student, key)
    return AcompanhamentosDoAluno(aluno_id=key, itens=[_body(r, team) for r in records])


@router.get(
    "/acompanhamentos",
    response_model=PaginaAcompanhamentos,
    summary="Acompanhamentos de um ciclo (paginado)",
    description="Os acompanhamentos registrados, em ordem de registro, filtrados por ciclo "
    "e/ou status. Token da equipe ou de API (notas só para a equipe).",
    responses=READ_ERRORS,
)
async def listing(
    state: State,
    team: ReaderIsTeam,
    ciclo: Annotated[
        int | None, Query(ge=MIN_CYCLE, le=MAX_CYCLE, description="Ciclo t da previsão")
    ] = None,
    status_: Annotated[Status | None, Query(alias="status", description="Filtra por status")] = (
        None
    ),
    pagina: Annotated[int, Query(ge=1, le=100_000, description="Página (a partir de 1)")] = 1,
    por_pagina: Annotated[int, Query(ge=1, le=1000, description="Registros por página")] = 100,
) -> PaginaAcompanhamentos:
    records, total = await _stored(
        state, state.followups.page, ciclo, status_, por_pagina, (pagina - 1) * por_pagina
    )
    return PaginaAcompanhamentos(
        itens=[_body(r, team) for r in records], total=total, pagina=pagina, por_pagina=por_pagina
    )


FollowupId = Annotated[int, Path(ge=1, le=MAX_ID, description="Id do acompanhamento")]


@router.patch(
    "/acompanhamentos/{acompanhamento_id}",
    response_model=Acompanhamento,
    summary="Muda o status de um acompanhamento",
    description="Só o status muda (planejado → em_andamento → concluido, ou cancelado); fica "
    "registrado quem mudou (`atualizado_por`) e quando. Exige um token da equipe.",
    responses={**WRITE_ERRORS, **NOT_FOUND},
)
async def change_status(
    acompanhamento_id: FollowupId, body: MudancaStatus, state: State, autor: TeamMember
) -> Acompanhamento:
    record = await _stored(
        state, state.followups.update_status, acompanhamento_id, body.status, autor
    )
    if record is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"acompanhamento {acompanhamento_id} não existe"
        )
    logger.info("acompanhamento %d: status %s", record.id, record.status)
    return _body(record)


@router.delete(
    "/acompanhamentos/{acompanhamento_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Exclui um acompanhamento",
    description="Apaga o registro de vez (um registro feito por engano; uma ação que não "
    "aconteceu fica melhor como `cancelado`). Exige um token da equipe.",
    responses={204: {"description": "Excluído"}, **WRITE_ERRORS, **NOT_FOUND},
)
async def delete(acompanhamento_id: FollowupId, state: State, autor: TeamMember) -> Response:
    del autor  # only the role matters here
    if not await _stored(state, state.followups.delete, acompanhamento_id):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"acompanhamento {acompanhamento_id} não existe"
        )
    logger.info("acompanhamento %d excluído", acompanhamento_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
