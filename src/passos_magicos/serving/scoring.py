"""From validated inputs to answers: compiled model → factors → prediction log → JSON body."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import numpy as np
import orjson
from fastapi import HTTPException, Request, status
from fastapi.responses import Response
from fastapi.routing import APIRoute

from passos_magicos.serving.compiled import encode_inputs
from passos_magicos.serving.explain import Factor
from passos_magicos.serving.prediction_log import PredictionLog, PredictionRecord, utc_timestamp
from passos_magicos.serving.runtime import LoadedModel


class OrjsonRequest(Request):
    """Request bodies parsed by orjson (a batch of 1,000 records parses ~3× faster)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class OrjsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_orjson(request: Request) -> Response:
            return await handler(OrjsonRequest(request.scope, request.receive))

        return with_orjson


class FastJSON(Response):
    """orjson rendering; the endpoints build plain dicts in the documented shape."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def model_block(model: LoadedModel) -> dict[str, Any]:
    return {
        "nome": model.name,
        "versao": model.version,
        "alias": model.alias,
        "fonte": model.source,
    }


def factor_dicts(factors: list[Factor]) -> list[dict[str, Any]]:
    return [
        {
            "fator": f.fator,
            "descricao": f.descricao,
            "valor": f.valor,
            "referencia": f.referencia,
            "impacto": f.impacto,
            "efeito": f.efeito,
            "texto": f.texto,
        }
        for f in factors
    ]


def score(
    model: LoadedModel,
    inputs: Sequence[dict[str, Any]],
    *,
    request_id: str,
    endpoint: str,
    log: PredictionLog,
    started: float,
    ids: Sequence[str | None] | None = None,
    cycles: Sequence[int | None] | None = None,
    explain: bool = False,
) -> list[dict[str, Any]]:
    """Score rows, log one line each, and return the `Previsao` bodies in input order."""
    raw = encode_inputs(list(inputs))
    factors: list[list[Factor]] | None = None
    if explain:
        probabilities, factors = model.predict_and_explain(raw)
    else:
        probabilities = model.predict(raw)
    labels = (probabilities >= model.threshold).tolist()
    rounded = np.round(probabilities, 6).tolist()
    latency_ms = (time.perf_counter() - started) * 1000
    ts = utc_timestamp()
    block = model_block(model)
    bodies, records = [], []
    for i, row in enumerate(inputs):
        aluno_id = ids[i] if ids is not None else None
        cycle = cycles[i] if cycles is not None else None
        probability = rounded[i]
        body: dict[str, Any] = {
            "request_id": request_id,
            "aluno_id": aluno_id,
            "ciclo": cycle,
            "probabilidade_pv": probability,
            "pv_previsto": labels[i],
            "limiar": model.threshold,
            "modelo": block,
        }
        if factors is not None:
            body["fatores"] = factor_dicts(factors[i])
        bodies.append(body)
        record: PredictionRecord = {
            "ts": ts,
            "request_id": request_id,
            "aluno_id": aluno_id,
            "ciclo": cycle,
            "endpoint": endpoint,
            "modelo": model.name,
            "versao": model.version,
            "fonte": model.source,
            "features": row,
            "probabilidade": probability,
            "pv_previsto": labels[i],
            "limiar": model.threshold,
            "latencia_ms": round(latency_ms, 3),
        }
        records.append(record)
    try:
        log.append(records)
    except OSError as exc:  # no prediction leaves without its line in the log
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "não foi possível registrar a previsão no log; tente de novo",
        ) from exc
    return bodies
