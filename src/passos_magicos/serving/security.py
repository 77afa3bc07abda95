"""API, admin and team tokens, fail-closed: with no token configured the endpoint refuses.

Prediction endpoints expose data about minors. Tokens are compared in constant time against
every configured token (no early exit that would leak which one matched).

Follow-up records (acompanhamentos) have a role of their own: the team's tokens (TEAM_TOKENS,
`nome:token`) read and write, and the name becomes the record's author; API tokens only read."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from passos_magicos.serving.deps import AppState, app_state
from passos_magicos.settings import Settings

API_TOKEN_HEADER = "X-API-Token"  # noqa: S105 - a header name, not a secret
ADMIN_TOKEN_HEADER = "X-Admin-Token"  # noqa: S105

# The OpenAPI security schemes (serving/contract.py attaches them to the operations that need
# them, so that Swagger's "Authorize" and generated clients send the right token). One scheme per
# credential and way of sending it; the checks below do the refusing.
API_BEARER_SCHEME = "tokenDeApi"
API_HEADER_SCHEME = "tokenDeApiNoCabecalho"
TEAM_SCHEME = "tokenDaEquipe"
ADMIN_SCHEME = "tokenAdmin"
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    API_BEARER_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "description": "Token de API (um dos API_TOKENS) em `Authorization: Bearer <token>`: "
        "previsões, alunos, monitoramento, desempenho, versões do modelo, leitura de alertas e "
        "de acompanhamentos (sem as notas). Sem API_TOKENS configurado esses endpoints ficam "
        "desabilitados (403).",
    },
    API_HEADER_SCHEME: {
        "type": "apiKey",
        "in": "header",
        "name": API_TOKEN_HEADER,
        "description": f"O mesmo token de API no cabeçalho `{API_TOKEN_HEADER}` (tem precedência "
        "sobre `Authorization`).",
    },
    TEAM_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "description": "Token da equipe (TEAM_TOKENS, `nome:token`) em `Authorization: Bearer "
        "<token>`: lê (com as notas) e registra acompanhamentos; o nome vira o autor. Também "
        f"aceito em `{API_TOKEN_HEADER}`.",
    },
    ADMIN_SCHEME: {
        "type": "apiKey",
        "in": "header",
        "name": ADMIN_TOKEN_HEADER,
        "description": "ADMIN_RELOAD_TOKEN: recarga do modelo e envio de alertas ao Slack. Sem "
        "ele configurado esses endpoints ficam desabilitados (403).",
    },
}


def _matches(candidate: str, tokens: list[str]) -> bool:
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(candidate.encode(), token.encode())
    return matched


def _presented_api_token(request: Request) -> str | None:
    header = request.headers.get(API_TOKEN_HEADER)
    if header:
        return header
    authorization = request.headers.get("Authorization", "")
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def check_api_token(request: Request, settings: Settings) -> None:
    """Raise 401/403 unless the request carries one of API_TOKENS (none configured: 403)."""
    tokens = settings.api_tokens
    if not tokens:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "endpoint desabilitado: nenhum token de API configurado (API_TOKENS)",
        )
    presented = _presented_api_token(request)
    if presented is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"token de API ausente: envie 'Authorization: Bearer <token>' ou {API_TOKEN_HEADER}",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not _matches(presented, tokens):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "token de API inválido")


async def require_api_token(
    request: Request, state: Annotated[AppState, Depends(app_state)]
) -> None:
    check_api_token(request, state.settings)


async def require_admin_token(
    request: Request, state: Annotated[AppState, Depends(app_state)]
) -> None:
    configured = state.settings.ADMIN_RELOAD_TOKEN
    if configured is None or not configured.get_secret_value():
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "endpoint desabilitado: ADMIN_RELOAD_TOKEN não configurado",
        )
    presented = request.headers.get(ADMIN_TOKEN_HEADER)
    if not presented:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, f"token de administração ausente ({ADMIN_TOKEN_HEADER})"
        )
    if not _matches(presented, [configured.get_secret_value()]):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "token de administração inválido")


ApiToken = Depends(require_api_token)
AdminToken = Depends(require_admin_token)


# -- follow-ups: team tokens (write) and API tokens (read) -------------------------------------

# Extractors only (auto_error=False: our 401/403 messages, in Portuguese); the operations'
# security requirements are SECURITY_SCHEMES, attached by serving/contract.py.
TEAM_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name=TEAM_SCHEME,
    description=SECURITY_SCHEMES[TEAM_SCHEME]["description"],
)
TOKEN_HEADER = APIKeyHeader(
    name=API_TOKEN_HEADER,
    auto_error=False,
    scheme_name=API_HEADER_SCHEME,
    description=SECURITY_SCHEMES[API_HEADER_SCHEME]["description"],
)


def _followup_token(header: str | None, bearer: HTTPAuthorizationCredentials | None) -> str | None:
    if header:
        return header
    if bearer is not None and bearer.credentials.strip():
        return bearer.credentials.strip()
    return None


def team_member(presented: str, settings: Settings) -> str | None:
    """The name of the team token `presented` is (every token compared, constant time)."""
    found: str | None = None
    for name, token in settings.team_tokens:
        if hmac.compare_digest(presented.encode(), token.encode()) and found is None:
            found = name
    return found


def _missing_token() -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "token ausente: envie 'Authorization: Bearer <token>' (token da equipe ou de API) ou "
        f"{API_TOKEN_HEADER}",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def require_followup_reader(
    state: Annotated[AppState, Depends(app_state)],
    header: Annotated[str | None, Depends(TOKEN_HEADER)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(TEAM_BEARER)],
) -> bool:
    """A team token or an API token (none configured at all: 403); True for the team."""
    settings = state.settings
    if not settings.team_tokens and not settings.api_tokens:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "acompanhamentos desabilitados: nenhum token configurado (TEAM_TOKENS ou API_TOKENS)",
        )
    presented = _followup_token(header, bearer)
    if presented is None:
        raise _missing_token()
    is_member = team_member(presented, settings) is not None
    if not (is_member | _matches(presented, settings.api_tokens)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "token inválido")
    return is_member


async def require_team_member(
    state: Annotated[AppState, Depends(app_state)],
    header: Annotated[str | None, Depends(TOKEN_HEADER)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(TEAM_BEARER)],
) -> str:
    """The author's name: only a team token writes (no TEAM_TOKENS: 403, nobody writes)."""
    settings = state.settings
    if not settings.team_tokens:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "registro de acompanhamentos desabilitado: nenhum token da equipe configurado "
            "(TEAM_TOKENS)",
        )
    presented = _followup_token(header, bearer)
    if presented is None:
        raise _missing_token()
    name = team_member(presented, settings)
    if name is not None:
        return name
    if _matches(presented, settings.api_tokens):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "o token de API só lê acompanhamentos; para registrar ou mudar, use um token da "
            "equipe (TEAM_TOKENS)",
        )
    raise HTTPException(status.HTTP_403_FORBIDDEN, "token inválido")


FollowupReader = Depends(require_followup_reader)
ReaderIsTeam = Annotated[bool, Depends(require_followup_reader)]
TeamMember = Annotated[str, Depends(require_team_member)]
