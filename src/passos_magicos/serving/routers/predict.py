"""Predictions: one record, a batch, students by id from the online feature store, or the
roster of a cycle (scored once per model and feature-store version: serving/roster.py)."""

from __future__ import annotations

import time
from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import TypeAdapter, ValidationError

from passos_magicos.feature_store.online import (
    AmbiguousStudentError,
    FeatureSnapshot,
    StudentFeatures,
    UnknownStudentError,
)
from passos_magicos.serving.deps import AppState, model_or_503
from passos_magicos.serving.errors import field_errors, request_id
from passos_magicos.serving.roster import (
    ALL_CYCLES,
    log_view,
    profile,
    select_cycles,
    view_bodies,
)
from passos_magicos.serving.runtime import LoadedModel
from passos_magicos.serving.schemas import (
    LoteEntrada,
    Previsao,
    PrevisaoAlunos,
    PrevisaoLote,
    RegistroAluno,
)
from passos_magicos.serving.scoring import FastJSON, OrjsonRoute, score
from passos_magicos.serving.security import check_api_token

router = APIRouter(tags=["previsões"], route_class=OrjsonRoute)
RECORDS = TypeAdapter(list[RegistroAluno])


class Scoring(NamedTuple):  # built on every prediction: a tuple is the cheapest
    state: AppState
    model: LoadedModel


async def scoring(request: Request) -> Scoring:
    """Token, state and model in one dependency: on the hot path each FastAPI dependency costs
    tens of microseconds. The token is checked before the model (401/403 before 503)."""
    state: AppState = request.app.state.passos
    check_api_token(request, state.settings)
    await state.runtime.ensure_fresh()  # another worker reloaded: reload here first
    return Scoring(state, model_or_503(state))


Context = Annotated[Scoring, Depends(scoring)]

EXPLAIN = Query(description="Incluir os fatores que mais pesaram em cada previsão")
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Token de API ausente"},
    403: {"description": "Token inválido, ou nenhum token configurado (endpoint desabilitado)"},
    503: {"description": "Modelo ainda não carregado"},
}


def _started(request: Request) -> float:
    started: float = request.scope.get("state", {}).get("started", time.perf_counter())
    return started


@router.post(
    "/predict",
    response_model=Previsao,
    summary="Probabilidade de um aluno atingir o PV no próximo ciclo",
    description="Recebe o registro do aluno no ciclo *t* e devolve a probabilidade de Ponto de "
    "Virada em *t+1*, o rótulo pelo limiar do modelo e os fatores que mais pesaram. O PV do "
    "ciclo seguinte é o que se estima: enviá-lo é um erro (422).",
    responses={
        **AUTH_ERRORS,
        422: {"description": "Campos ausentes, desconhecidos ou fora de 0-10"},
    },
)
async def predict(
    body: RegistroAluno,
    request: Request,
    ctx: Context,
    explicar: Annotated[bool, EXPLAIN] = True,
) -> FastJSON:
    state, model = ctx.state, ctx.model
    bodies = score(
        model,
        [body.model_inputs()],
        request_id=request_id(request),
        endpoint="/predict",
        log=state.prediction_log,
        started=_started(request),
        ids=[body.aluno_id],
        cycles=[body.ano],
        explain=explicar,
    )
    return FastJSON(bodies[0])


@router.post(
    "/predict/batch",
    response_model=PrevisaoLote,
    summary="Previsões em lote (registros inválidos apontados por índice)",
    description="Até BATCH_LIMIT registros (padrão 1.000; mais que isso: 413). Registros válidos "
    "são pontuados; os inválidos voltam em `invalidos`, com o índice e os campos.",
    responses={**AUTH_ERRORS, 413: {"description": "Lote acima do limite"}},
)
async def predict_batch(
    body: LoteEntrada,
    request: Request,
    ctx: Context,
    explicar: Annotated[bool, EXPLAIN] = False,
) -> FastJSON:
    state, model = ctx.state, ctx.model
    limit = state.settings.BATCH_LIMIT
    if len(body.registros) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"lote com {len(body.registros)} registros; o limite é {limit}",
        )
    valid: list[RegistroAluno] = []
    invalid: list[dict[str, Any]] = []
    try:  # all valid (the usual case): one validation call for the whole list
        valid = RECORDS.validate_python(body.registros)
    except ValidationError:
        for index, record in enumerate(body.registros):
            try:
                valid.append(RegistroAluno.model_validate(record))
            except ValidationError as exc:
                invalid.append({"indice": index, "erros": field_errors(exc.errors())})
    rid = request_id(request)
    bodies = (
        score(
            model,
            [r.model_inputs() for r in valid],
            request_id=rid,
            endpoint="/predict/batch",
            log=state.prediction_log,
            started=_started(request),
            ids=[r.aluno_id for r in valid],
            cycles=[r.ano for r in valid],
            explain=explicar,
        )
        if valid
        else []
    )
    return FastJSON({"request_id": rid, "previsoes": bodies, "invalidos": invalid})


def _store_empty() -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "feature store ainda vazio: rode `passos-magicos materialize` ou um treino",
    )


def _compatible(state: AppState, model: LoadedModel) -> None:
    """Features written for other model inputs must not be fed to this model."""
    snapshot = state.features.snapshot
    if snapshot is not None and tuple(snapshot.meta.feature_columns) != model.classifier.features:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"feature store ({snapshot.meta.feature_set_version}) não corresponde às entradas "
            "do modelo em uso; rode `passos-magicos materialize`",
        )


def _snapshot(state: AppState) -> FeatureSnapshot:
    snapshot = state.features.snapshot
    if snapshot is None:
        raise _store_empty()
    return snapshot


def _student(snapshot: FeatureSnapshot, key: str) -> StudentFeatures:
    try:
        return snapshot.resolve(key)
    except UnknownStudentError as exc:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"aluno {key!r} não encontrado no feature store (último ciclo materializado)",
        ) from exc
    except AmbiguousStudentError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"número {key!r} é ambíguo: use um destes ids: {', '.join(exc.candidates)}",
        ) from exc


@router.get(
    "/predict/aluno/{aluno_id}",
    response_model=Previsao,
    summary="Previsão para um aluno já conhecido (features do feature store online)",
    description="Aceita `ALUNO-n`, `RA-n` ou só o número quando não é ambíguo. `ciclo` diz de "
    "que ciclo vêm as features.",
    responses={
        **AUTH_ERRORS,
        404: {"description": "Aluno desconhecido"},
        409: {"description": "Número ambíguo (existe ALUNO-n e RA-n)"},
    },
)
async def predict_student(
    aluno_id: Annotated[str, Path(max_length=32, description="Id do aluno no arquivo")],
    request: Request,
    ctx: Context,
    explicar: Annotated[bool, EXPLAIN] = True,
) -> FastJSON:
    state, model = ctx.state, ctx.model
    _compatible(state, model)
    snapshot = _snapshot(state)
    student = _student(snapshot, aluno_id)
    bodies = score(
        model,
        [dict(student.features)],
        request_id=request_id(request),
        endpoint="/predict/aluno",
        log=state.prediction_log,
        started=_started(request),
        ids=[student.aluno_id],
        cycles=[student.ano],
        explain=explicar,
        features_version=snapshot.meta.version,
    )
    return FastJSON(bodies[0])


@router.get(
    "/predict/alunos",
    response_model=PrevisaoAlunos,
    summary="Previsões para vários alunos do feature store",
    description="`aluno_ids=1,2,RA-3` (até ALUNOS_LIMIT ids; ids desconhecidos e ambíguos são "
    "listados sem derrubar os outros; cada um registrado no log). Sem `aluno_ids`: a lista dos "
    "alunos do ciclo mais recente do feature store, do mais provável ao menos provável de "
    "atingir o PV; `ciclo=2023` dá a lista dos alunos cujo último registro é de 2023 (que "
    "saíram do programa depois), `ciclo=todos` junta todos os ciclos. A lista é pontuada uma "
    "vez por versão do modelo e do feature store e entra no log uma só vez; consultá-la de novo "
    "não registra previsões. Cada previsão traz o `perfil` do aluno (fase, turma, pedra, "
    "gênero) para filtrar sem outra chamada.",
    responses={**AUTH_ERRORS, 413: {"description": "Ids demais"}},
)
async def predict_students(
    request: Request,
    ctx: Context,
    aluno_ids: Annotated[
        str | None,
        # The ids' own characters only: ASCII, so the URL stays under the server's 64 KiB.
        Query(
            max_length=20_000,
            pattern=r"^[A-Za-z0-9_, -]*$",
            description="Ids separados por vírgula",
        ),
    ] = None,
    explicar: Annotated[bool, EXPLAIN] = False,
    ciclo: Annotated[
        str | None,
        Query(
            pattern=rf"^(\d{{4}}|{ALL_CYCLES})$",
            description="Sem `aluno_ids`: o ciclo da lista (padrão: o mais recente), ou "
            f"`{ALL_CYCLES}`",
        ),
    ] = None,
) -> FastJSON:
    state, model = ctx.state, ctx.model
    snapshot = _snapshot(state)
    _compatible(state, model)
    rid = request_id(request)
    if aluno_ids is None:
        cycles = select_cycles(snapshot, ciclo)
        rosters = [
            state.rosters.get(model, snapshot, c, request_id=rid, log=state.prediction_log)
            for c in cycles
        ]
        bodies = view_bodies(rosters, rid, model, explicar)
        log_view(
            state.prediction_log,
            request_id=rid,
            model=model,
            snapshot=snapshot,
            cycles=cycles,
            students=len(bodies),
            started=_started(request),
        )
        return FastJSON(
            {"request_id": rid, "previsoes": bodies, "desconhecidos": [], "ambiguos": {}}
        )
    unknown: list[str] = []
    ambiguous: dict[str, list[str]] = {}
    keys = [k.strip() for k in aluno_ids.split(",") if k.strip()]
    limit = state.settings.ALUNOS_LIMIT
    if len(keys) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"{len(keys)} ids; o limite é {limit}"
        )
    students, seen = [], set()
    for key in keys:
        try:
            student = snapshot.resolve(key)
        except AmbiguousStudentError as exc:
            ambiguous[key] = list(exc.candidates)
            continue
        except UnknownStudentError:
            unknown.append(key)
            continue
        if student.aluno_id not in seen:
            seen.add(student.aluno_id)
            students.append(student)
    bodies = (
        score(
            model,
            [dict(s.features) for s in students],
            request_id=rid,
            endpoint="/predict/alunos",
            log=state.prediction_log,
            started=_started(request),
            ids=[s.aluno_id for s in students],
            cycles=[s.ano for s in students],
            explain=explicar,
            features_version=snapshot.meta.version,
        )
        if students
        else []
    )
    for body, student in zip(bodies, students, strict=True):
        body["perfil"] = profile(student)
    return FastJSON(
        {"request_id": rid, "previsoes": bodies, "desconhecidos": unknown, "ambiguos": ambiguous}
    )
