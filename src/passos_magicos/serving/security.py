"""API and admin tokens, fail-closed: with no token configured the endpoint refuses.

Prediction endpoints expose data about minors. Tokens are compared in constant time against
every configured token (no early exit that would leak which one matched)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from passos_magicos.serving.deps import AppState, app_state
from passos_magicos.settings import Settings

API_TOKEN_HEADER = "X-API-Token"  # noqa: S105 - a header name, not a secret
ADMIN_TOKEN_HEADER = "X-Admin-Token"  # noqa: S105


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
