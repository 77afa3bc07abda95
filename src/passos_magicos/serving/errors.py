"""Error bodies: field names and pt-BR messages for 422, a request id on every error, and
never an internal detail in a 500 (those go to the server log with the same request id)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import Request, status
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse

logger = logging.getLogger("passos_magicos.serving")


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


def _message(error: dict[str, Any]) -> str:
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    messages = {
        "missing": "campo obrigatório ausente",
        "extra_forbidden": "campo desconhecido",
        "float_parsing": "deve ser um número",
        "float_type": "deve ser um número",
        "int_parsing": "deve ser um número inteiro",
        "int_type": "deve ser um número inteiro",
        "int_from_float": "deve ser um número inteiro",
        "bool_parsing": "deve ser true ou false",
        "bool_type": "deve ser true ou false",
        "string_type": "deve ser texto",
        "string_pattern_mismatch": "formato inválido (use o id do arquivo, ex.: RA-123)",
        "string_too_long": f"texto longo demais (máximo {ctx.get('max_length')})",
        "json_invalid": "JSON inválido",
        "model_attributes_type": "deve ser um objeto JSON",
        "dict_type": "deve ser um objeto JSON",
        "list_type": "deve ser uma lista",
        "date_type": "deve ser uma data (AAAA-MM-DD)",
        "date_parsing": "deve ser uma data (AAAA-MM-DD)",
        "date_from_datetime_parsing": "deve ser uma data (AAAA-MM-DD)",
        "date_from_datetime_inexact": "deve ser uma data, sem hora (AAAA-MM-DD)",
        "string_too_short": "não pode ser vazio",
    }
    if kind in ("less_than_equal", "less_than"):
        return f"deve ser ≤ {ctx.get('le', ctx.get('lt'))}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"deve ser ≥ {ctx.get('ge', ctx.get('gt'))}"
    if kind == "literal_error":
        return f"valor inválido; use um de: {ctx.get('expected')}"
    if kind == "value_error":
        return str(error.get("msg", "")).removeprefix("Value error, ")
    return messages.get(kind, str(error.get("msg", "valor inválido")))


def field_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    out = []
    for error in errors:
        location = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        out.append({"campo": ".".join(location) or "corpo", "erro": _message(error)})
    return out


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse(
        {
            "detail": "requisição inválida",
            "erros": field_errors(errors),
            "request_id": request_id(request),
        },
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    body: dict[str, Any] = {"detail": exc.detail, "request_id": request_id(request)}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    rid = request_id(request)
    logger.error(
        "erro interno request_id=%s %s %s", rid, request.method, request.url.path, exc_info=exc
    )
    # Sent by Starlette's outermost error middleware, past ours: set the header here.
    return JSONResponse(
        {"detail": "erro interno; informe o request_id à equipe", "request_id": rid},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        headers={"X-Request-ID": rid},
    )
