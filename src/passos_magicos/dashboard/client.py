"""The dashboard's only way to data: the API (`API_URL` plus a token), never model or log files.

Every failure becomes an `ApiUnavailableError` or `ApiError` with a sentence the pedagogic team can
read; the pages show it with a retry button instead of a stack trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    # A team token (DASHBOARD_TEAM_TOKEN, one of the API's TEAM_TOKENS): follow-up writes.
    team_token: str | None = field(default=None, repr=False)

    def _get(
        self, path: str, params: dict[str, Any] | None = None, token: str | None = None
    ) -> Any:
        token = token or self.token
        headers = {"X-API-Token": token} if token else {}
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

    def students(self, cycle: str | None = None) -> dict[str, Any]:
        """The students of the latest cycle (or of `cycle`: a year, or `todos`), scored and
        ranked by the API (which logs each roster once, however often it is viewed)."""
        params = {"ciclo": cycle} if cycle else None
        result: dict[str, Any] = self._get("/predict/alunos", params)
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

    def model_fairness(self) -> dict[str, Any] | None:
        """The serving model's fairness per group and backtest year; None when it has none."""
        try:
            result: dict[str, Any] = self._get("/model/fairness")
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

    # -- acompanhamentos (follow-up records) --------------------------------------------------

    def followup_options(self) -> dict[str, Any]:
        """Accepted types and statuses, whether notes are allowed and writing is enabled."""
        result: dict[str, Any] = self._get("/acompanhamentos/opcoes")
        return result

    def student_followups(self, aluno_id: str) -> list[dict[str, Any]]:
        """With the team token when there is one: notes are only shown to the team."""
        path = f"/alunos/{quote(aluno_id, safe='')}/acompanhamentos"
        try:
            result = self._get(path, token=self.team_token)
        except ApiError as exc:
            if not self.team_token or exc.status not in (401, 403):
                raise
            result = self._get(path)  # a wrong team token still lets the list show
        items: list[dict[str, Any]] = result["itens"]
        return items

    def cycle_followups(self, ciclo: int, per_page: int = 1000) -> list[dict[str, Any]]:
        """Every follow-up of one cycle, all pages."""
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            result = self._get(
                "/acompanhamentos", {"ciclo": int(ciclo), "pagina": page, "por_pagina": per_page}
            )
            items.extend(result["itens"])
            if len(items) >= int(result["total"]) or not result["itens"]:
                return items
            page += 1

    def create_followup(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._write("POST", "/acompanhamentos", body)
        return result

    def change_followup_status(self, followup_id: int, status: str) -> dict[str, Any]:
        result: dict[str, Any] = self._write(
            "PATCH", f"/acompanhamentos/{int(followup_id)}", {"status": status}
        )
        return result

    def _write(self, method: str, path: str, body: dict[str, Any]) -> Any:
        """A write with the team token; refusals explained for the team (pt-BR)."""
        if not self.team_token:
            raise ApiError(
                "Registro desabilitado neste painel: configure DASHBOARD_TEAM_TOKEN com um dos "
                "tokens da equipe (TEAM_TOKENS da API).",
                403,
            )
        url = self.base_url.rstrip("/") + path
        headers = {"Authorization": f"Bearer {self.team_token}"}
        try:
            response = httpx.request(method, url, json=body, headers=headers, timeout=self.timeout)
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
                f"A API recusou o registro: {_detail(response)} Confira DASHBOARD_TEAM_TOKEN.",
                response.status_code,
            )
        if response.status_code == 422:
            raise ApiError(_invalid_fields(response), 422)
        if response.status_code >= 400:
            raise ApiError(_detail(response), response.status_code)
        return response.json()


def _invalid_fields(response: httpx.Response) -> str:
    try:
        errors = response.json().get("erros") or []
    except (ValueError, AttributeError):
        errors = []
    parts = [f"{e.get('campo')}: {e.get('erro')}" for e in errors if isinstance(e, dict)]
    return "Dados inválidos — " + "; ".join(parts) if parts else "Dados inválidos."


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"A API recusou o pedido (erro {response.status_code})."
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    return f"A API recusou o pedido (erro {response.status_code})."
