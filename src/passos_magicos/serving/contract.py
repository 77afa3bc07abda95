"""The OpenAPI contract: every response of every operation, and the token each one needs.

FastAPI documents what a route returns when it succeeds. What it answers otherwise comes from
its dependencies (a token check answers 401/403, the model runtime 503) and from errors.py (the
project's pt-BR bodies, 422 included). Both are derived here, once, from each route's
dependency tree: a new route that depends on `ApiToken` is documented like the others without
a list to keep in step by hand. Schemathesis checks the result against a live server
(tests/serving/test_openapi_fuzz.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from starlette.routing import BaseRoute

from passos_magicos.serving.deps import current_model
from passos_magicos.serving.errors import Erro, ErroValidacao
from passos_magicos.serving.security import (
    ADMIN_SCHEME,
    API_BEARER_SCHEME,
    API_HEADER_SCHEME,
    SECURITY_SCHEMES,
    TEAM_SCHEME,
    require_admin_token,
    require_api_token,
    require_followup_reader,
    require_team_member,
)

REF = "#/components/schemas/{model}"
ERROR_MODELS: tuple[type[BaseModel], ...] = (Erro, ErroValidacao)
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
REQUEST_ID_HEADER = {
    "X-Request-ID": {
        "description": "Id da requisição (o enviado, se válido, ou um novo): está nos logs do "
        "servidor e no corpo dos erros",
        "required": True,
        "schema": {"type": "string"},
    }
}
BEARER_CHALLENGE = {
    "WWW-Authenticate": {
        "description": "`Bearer`: como enviar o token",
        "required": True,
        "schema": {"type": "string"},
    }
}
# Responses an endpoint writes itself, with its success body (not through errors.py).
SAME_BODY_AS_SUCCESS = {("/ready", "get", "503")}


@dataclass(frozen=True)
class Guard:
    """What a dependency can refuse with: security requirements (alternatives: any one of the
    schemes) and the statuses it answers, with a description for routes that give none."""

    schemes: tuple[str, ...] = ()
    responses: Mapping[int, str] = field(default_factory=dict)
    challenge: bool = False  # its 401 carries `WWW-Authenticate: Bearer`


API_TOKEN = Guard(
    (API_BEARER_SCHEME, API_HEADER_SCHEME),
    {
        401: "Token de API ausente",
        403: "Token de API inválido, ou nenhum configurado (API_TOKENS): endpoint desabilitado",
    },
    challenge=True,
)
ADMIN_TOKEN = Guard(
    (ADMIN_SCHEME,),
    {
        401: "X-Admin-Token ausente",
        403: "Token de administração inválido, ou ADMIN_RELOAD_TOKEN não configurado: endpoint "
        "desabilitado",
    },
)
FOLLOWUP_READER = Guard(
    (API_BEARER_SCHEME, API_HEADER_SCHEME, TEAM_SCHEME),
    {
        401: "Nenhum token enviado",
        403: "Token inválido, ou nenhum token configurado (TEAM_TOKENS / API_TOKENS)",
    },
    challenge=True,
)
TEAM_MEMBER = Guard(
    (TEAM_SCHEME,),
    {
        401: "Nenhum token enviado",
        403: "Token de API (só lê), token inválido, ou nenhum token da equipe configurado "
        "(TEAM_TOKENS): escrita desabilitada",
    },
    challenge=True,
)
MODEL = Guard(responses={503: "Modelo ainda não carregado (tente de novo; veja Retry-After)"})

GUARDS: dict[Callable[..., Any], tuple[Guard, ...]] = {
    require_api_token: (API_TOKEN,),
    require_admin_token: (ADMIN_TOKEN,),
    require_followup_reader: (FOLLOWUP_READER,),
    require_team_member: (TEAM_MEMBER,),
    current_model: (MODEL,),
}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def route_guards(
    route: APIRoute, guards: Mapping[Callable[..., Any], Sequence[Guard]]
) -> list[Guard]:
    """The guards of every dependency of `route` (route-level ones included), in order."""
    found: list[Guard] = []
    for call in _calls(route.dependant):
        found.extend(g for g in guards.get(call, ()) if g not in found)
    return found


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}


def _add_models(schemas: dict[str, Any]) -> None:
    for model in ERROR_MODELS:
        document = model.model_json_schema(ref_template=REF)
        schemas.update(document.pop("$defs", {}))
        schemas[model.__name__] = document


def _security(guards: Sequence[Guard]) -> list[dict[str, list[str]]]:
    security: list[dict[str, list[str]]] = []
    for guard in guards:
        for name in guard.schemes:
            if {name: []} not in security:
                security.append({name: []})
    return security


def _describe_operation(
    operation: dict[str, Any], key: tuple[str, str], guards: Sequence[Guard], has_body: bool
) -> None:
    if security := _security(guards):
        operation["security"] = security
    else:
        operation.pop("security", None)
    responses: dict[str, dict[str, Any]] = operation.setdefault("responses", {})
    for guard in guards:
        for status, description in guard.responses.items():
            response = responses.setdefault(str(status), {"description": description})
            if guard.challenge and status == 401:
                response.setdefault("headers", {}).update(BEARER_CHALLENGE)
    if has_body:
        responses.setdefault("413", {"description": "Corpo acima de MAX_BODY_BYTES"})
    for code, response in responses.items():
        if code == "422":
            if response.get("description") == "Validation Error":  # FastAPI's default
                response["description"] = "Requisição inválida: cada campo e o motivo"
            response["content"] = _ref(ErroValidacao)
        elif (*key, code) in SAME_BODY_AS_SUCCESS and "200" in responses:
            response["content"] = responses["200"].get("content", {})
        elif code[0] in "45" and not response.get("content"):
            response["content"] = _ref(Erro)
        response.setdefault("headers", {}).update(REQUEST_ID_HEADER)


def _referenced(document: Any, name: str) -> bool:
    if isinstance(document, dict):
        return document.get("$ref") == REF.format(model=name) or any(
            _referenced(v, name) for v in document.values()
        )
    if isinstance(document, list):
        return any(_referenced(v, name) for v in document)
    return False


def describe(
    schema: dict[str, Any],
    routes: Sequence[BaseRoute],
    guards: Mapping[Callable[..., Any], Sequence[Guard]] = GUARDS,
) -> None:
    """Complete `schema` (FastAPI's document for `routes`) in place."""
    components = schema.setdefault("components", {})
    _add_models(components.setdefault("schemas", {}))
    components["securitySchemes"] = {name: dict(s) for name, s in SECURITY_SCHEMES.items()}
    paths: dict[str, dict[str, Any]] = schema.get("paths", {})
    for context in iter_route_contexts(routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        found = route_guards(route, guards)
        for method in sorted(context.methods or ()):
            operation = paths.get(str(context.path_format), {}).get(method.lower())
            if operation is not None:
                key = (str(context.path_format), method.lower())
                _describe_operation(operation, key, found, route.body_field is not None)
    for name in FASTAPI_VALIDATION_SCHEMAS:
        if not _referenced(paths, name) and not _referenced(components["schemas"], name):
            components["schemas"].pop(name, None)


def install(
    app: FastAPI, guards: Mapping[Callable[..., Any], Sequence[Guard]] | None = None
) -> None:
    """Serve `app`'s OpenAPI document completed by `describe` (`guards`: dependencies defined
    outside security.py and deps.py, e.g. a router's own token-and-model dependency)."""
    table = {**GUARDS, **(guards or {})}
    generate = app.openapi
    described: list[dict[str, Any]] = []  # the document last completed (FastAPI caches it)

    def openapi() -> dict[str, Any]:
        schema = generate()
        if not described or described[0] is not schema:
            describe(schema, app.routes, table)
            described[:] = [schema]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
