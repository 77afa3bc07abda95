"""The dashboard's only way to data: the API (`API_URL` plus a token), never model or log files.

Every failure becomes an `ApiUnavailableError` or `ApiError` with a sentence the pedagogic team can
read; the pages show it with a retry button instead of a stack trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import httpx

DEFAULT_TIMEOUT: Final = 15.0


class ApiUnavailableError(RuntimeError):
    """The API is down, slow or broken (message in pt-BR)."""


class ApiError(RuntimeError):
    """The API answered with a refusal we can explain (message in pt-BR)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ApiClient:
    base_url: str
    token: str | None
    timeout: float = DEFAULT_TIMEOUT

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        headers = {"X-API-Token": self.token} if self.token else {}
        url = self.base_url.rstrip("/") + path
        try:
            response = httpx.get(url, params=params, headers=headers, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise ApiUnavailableError(
                f"A API demorou mais de {self.timeout:.0f} s para responder."
            ) from exc
        except httpx.HTTPError as exc:
            raise ApiUnavailableError(
                f"Não foi possível falar com a API em {self.base_url}."
            ) from exc
        if response.status_code >= 500:
            raise ApiUnavailableError(f"A API está com problemas (erro {response.status_code}).")
        if response.status_code in (401, 403):
            raise ApiError(
                "A API recusou o acesso: confira o token do dashboard (API_TOKEN).",
                response.status_code,
            )
        if response.status_code >= 400:
            raise ApiError(_detail(response), response.status_code)
        return response.json()

    def model_info(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("/model/info")
        return result

    def metrics(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("/metrics")
        return result

    def alerts_status(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("/alerts/status")
        return result

    def alerts_history(self, per_page: int = 100) -> dict[str, Any]:
        result: dict[str, Any] = self._get("/alerts/history", {"por_pagina": per_page})
        return result

    def students(self) -> dict[str, Any]:
        """Every student of the latest cycle, scored and ranked by the API."""
        result: dict[str, Any] = self._get("/predict/alunos")
        return result

    def student(self, aluno_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(
            f"/predict/aluno/{quote(aluno_id, safe='')}", {"explicar": "true"}
        )
        return result

    def history(self, aluno_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"/alunos/{quote(aluno_id, safe='')}/historico")
        return result

    def monitoring_runs(self, limit: int = 30) -> dict[str, Any]:
        result: dict[str, Any] = self._get("/monitoring/runs", {"limite": limit})
        return result

    def model_versions(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("/model/versions")
        return result

    def model_backtest(self) -> dict[str, Any] | None:
        """The serving model's backtest per year; None when it has none (one transition)."""
        try:
            result: dict[str, Any] = self._get("/model/backtest")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def model_performance(self) -> dict[str, Any]:
        """Expected performance of the cohort being scored now (and its realised one, if any)."""
        result: dict[str, Any] = self._get("/model/performance")
        return result

    def realised(self) -> dict[str, Any]:
        """Every realised evaluation (model, version, cycle), newest cycle first."""
        result: dict[str, Any] = self._get("/monitoring/realised")
        return result

    def realised_students(
        self, modelo: str, versao: str, ciclo: int, page: int = 1, per_page: int = 1000
    ) -> dict[str, Any]:
        """One page of an evaluated roster, most likely first, with the outcome in t+1."""
        result: dict[str, Any] = self._get(
            f"/monitoring/realised/{quote(versao, safe='')}/{int(ciclo)}/alunos",
            {"modelo": modelo, "pagina": page, "por_pagina": per_page},
        )
        return result


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"A API recusou o pedido (erro {response.status_code})."
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    return f"A API recusou o pedido (erro {response.status_code})."
