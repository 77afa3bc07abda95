"""Error bodies: field names and pt-BR messages for 422, a request id on every error, and
never an internal detail in a 500 (those go to the server log with the same request id).

Every error the API answers has one of two bodies, declared in the OpenAPI document
(serving/contract.py): `Erro` (`detail`, `request_id`) and, for 422, `ErroValidacao` (plus
`erros`, one item per invalid field). The framework's own refusals (unknown path, method not
allowed, a body that is not UTF-8) go through the same handlers, in Portuguese."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

logger = logging.getLogger("passos_magicos.serving")

VALIDATION_DETAIL = "requisição inválida"
# The framework's default details (the status phrase) and what the API says instead.
FRAMEWORK_DETAILS = {
    status.HTTP_404_NOT_FOUND: "recurso não encontrado: confira o caminho em /docs",
    status.HTTP_405_METHOD_NOT_ALLOWED: "método não permitido neste caminho (veja o Allow)",
}


class Erro(BaseModel):
    """Corpo de todo erro da API (exceto 422)."""

    detail: str = Field(description="O motivo, em português")
    request_id: str = Field(description="O mesmo do cabeçalho X-Request-ID (informe à equipe)")


class ErroCampo(BaseModel):
    campo: str = Field(description="Campo inválido (`corpo` quando é o corpo inteiro)")
    erro: str = Field(description="O motivo, em português")


class ErroValidacao(BaseModel):
    """Corpo do 422: um item por campo inválido."""

    detail: str = Field(description="Sempre `requisição inválida`")
    erros: list[ErroCampo] = Field(description="Um item por campo inválido")
    request_id: str = Field(description="O mesmo do cabeçalho X-Request-ID")


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


def _invalid(request: Request, errors: list[dict[str, str]]) -> JSONResponse:
    return JSONResponse(
        {"detail": VALIDATION_DETAIL, "erros": errors, "request_id": request_id(request)},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return _invalid(request, field_errors(errors))


def _route_path(request: Request) -> str:
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root + "/") else path


def allowed_methods(request: Request) -> str:
    """The methods of this path's item in the OpenAPI document: every route with the path
    template that matches (a concrete path such as /acompanhamentos/opcoes before a template
    such as /acompanhamentos/{acompanhamento_id}). Starlette's 405 names the first route's
    methods only: PATCH and DELETE on the same path would say just one."""
    path = _route_path(request)
    routes: dict[str, set[str]] = {}
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            routes.setdefault(str(route.path_format), set()).update(route.methods or ())
    concrete = [template for template in routes if "{" not in template]
    template = (concrete or list(routes) or [""])[0]
    return ", ".join(sorted(routes.get(template, ())))


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """HTTPException, ours and the framework's (Starlette's base class: unknown path, 405)."""
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    code, headers = exc.status_code, dict(exc.headers or {})
    if code == status.HTTP_400_BAD_REQUEST and exc.__cause__ is not None:
        # FastAPI's "error parsing the body" (e.g. bytes that are not UTF-8): a body that is not
        # JSON, answered like any other invalid JSON.
        return _invalid(request, [{"campo": "corpo", "erro": "JSON inválido"}])
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if code in FRAMEWORK_DETAILS and detail == HTTPStatus(code).phrase:
        detail = FRAMEWORK_DETAILS[code]
    if code == status.HTTP_405_METHOD_NOT_ALLOWED:
        headers["Allow"] = allowed_methods(request)
    body: dict[str, Any] = {"detail": detail, "request_id": request_id(request)}
    return JSONResponse(body, status_code=code, headers=headers or None)


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
