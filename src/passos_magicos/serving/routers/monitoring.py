"""Monitoring runs for charts: drift per feature and per model version, run after run.

The monitoring job (`passos-magicos monitor`) records each run's report in the shared
monitoring store; here the newest runs come back summarised (the raw report, with every
statistic of every feature, is large: `GET /monitoring/runs/{id}` returns one in full)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from passos_magicos.serving.deps import State
from passos_magicos.serving.security import ApiToken

router = APIRouter(prefix="/monitoring", tags=["monitoramento"])

VERSION_CHECKS = ("drift_features", "drift_previsoes", "taxa_positiva")
MAX_RUN_ID = 2**31 - 1


class DriftFeature(BaseModel):
    psi: float | None = Field(description="Population Stability Index frente ao treino")
    drift: bool = Field(description="Se a feature foi considerada com drift nesta execução")


class VersaoMonitorada(BaseModel):
    modelo: str
    versao: str
    n: int | None = Field(description="Previsões desta versão na janela")
    estado: str | None = Field(
        description="ok, alerta, dados_insuficientes ou sem_referencia (nulo se não informado)"
    )
    features: dict[str, DriftFeature] = Field(
        description="PSI e drift por feature (vazio quando não houve dados suficientes)"
    )
    psi_probabilidade: float | None = Field(
        description="PSI da distribuição das probabilidades previstas"
    )
    drift_probabilidade: bool | None = Field(
        description="Se a distribuição das probabilidades mudou"
    )
    probabilidade_media: float | None = Field(description="Probabilidade média prevista na janela")
    probabilidade_media_referencia: float | None = Field(
        description="Probabilidade média no treino (referência)"
    )
    taxa_positiva: float | None = Field(description="Fração das previsões que são PV na janela")
    taxa_positiva_referencia: float | None = Field(description="Fração de PV no treino")


class ResumoExecucao(BaseModel):
    id: int
    inicio: str = Field(description="Início da execução (ISO 8601, UTC)")
    fim: str | None = Field(description="Fim da execução (ISO 8601, UTC)")
    status: str = Field(description="ok, alerta ou sem_dados")
    previsoes_na_janela: int | None = Field(description="Previsões analisadas nesta execução")
    versoes: list[VersaoMonitorada] = Field(description="Uma entrada por versão do modelo")
    em_alerta: list[str] = Field(description="Chaves das verificações em alerta nesta execução")


class ExecucoesMonitoramento(BaseModel):
    execucoes: list[ResumoExecucao] = Field(description="Da mais recente à mais antiga")


class ExecucaoCompleta(BaseModel):
    id: int
    inicio: str
    fim: str | None
    status: str
    relatorio: dict[str, Any] = Field(description="O relatório como o job o gravou")


# -- summarising a report (written by monitoring/job.py; tolerant of older or partial ones) ----


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _integer(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _finite(value: Any) -> Any:
    """The report with NaN and infinities as null (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _version_of(check: dict[str, Any]) -> tuple[str, str] | None:
    """`drift_features:<modelo>:<versao>` → (modelo, versao)."""
    name, key = check.get("nome"), check.get("chave")
    if name not in VERSION_CHECKS or not isinstance(key, str):
        return None
    rest = key.removeprefix(f"{name}:")
    model, separator, version = rest.rpartition(":")
    return (model, version) if separator and model and version else None


def _blank(model: str, version: str) -> dict[str, Any]:
    return {
        "modelo": model,
        "versao": version,
        "n": None,
        "estado": None,
        "features": {},
        "psi_probabilidade": None,
        "drift_probabilidade": None,
        "probabilidade_media": None,
        "probabilidade_media_referencia": None,
        "taxa_positiva": None,
        "taxa_positiva_referencia": None,
    }


def _apply_check(entry: dict[str, Any], check: dict[str, Any]) -> None:
    data = _dict(check.get("dados"))
    if check.get("nome") == "drift_features":
        for item in _list(data.get("features")):
            feature = _dict(item)
            if isinstance(feature.get("feature"), str):
                entry["features"][feature["feature"]] = {
                    "psi": _number(feature.get("psi")),
                    "drift": feature.get("drift") is True,
                }
    elif check.get("nome") == "drift_previsoes":
        score = _dict(data.get("score"))
        entry["psi_probabilidade"] = _number(score.get("psi"))
        entry["drift_probabilidade"] = _flag(score.get("drift"))
        entry["probabilidade_media"] = _number(score.get("media_atual"))
        entry["probabilidade_media_referencia"] = _number(score.get("media_ref"))
    else:
        rate = _dict(data.get("taxa_positiva"))
        entry["taxa_positiva"] = _number(rate.get("atual"))
        entry["taxa_positiva_referencia"] = _number(rate.get("referencia"))


def summarise_run(run: dict[str, Any]) -> dict[str, Any]:
    """What the dashboard charts from one run (see `ResumoExecucao`)."""
    report = _dict(run.get("report"))
    versions: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in _list(report.get("versoes")):
        item = _dict(raw)
        model, version = item.get("modelo"), item.get("versao")
        if model is None or version is None:
            continue
        entry = versions.setdefault((str(model), str(version)), _blank(str(model), str(version)))
        entry["n"] = _integer(item.get("n"))
        entry["estado"] = item.get("estado") if isinstance(item.get("estado"), str) else None
    checks = [_dict(c) for c in _list(report.get("verificacoes"))]
    for check in checks:
        owner = _version_of(check)
        if owner is not None:
            _apply_check(versions.setdefault(owner, _blank(*owner)), check)
    started = report.get("inicio")
    return {
        "id": int(run["id"]),
        "inicio": started if isinstance(started, str) else str(run["started_at"]),
        "fim": run.get("finished_at"),
        "status": str(run["status"]),
        "previsoes_na_janela": _integer(_dict(report.get("log")).get("previsoes_na_janela")),
        "versoes": list(versions.values()),
        "em_alerta": [
            str(c["chave"]) for c in checks if c.get("estado") == "alerta" and c.get("chave")
        ],
    }


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Token de API ausente"},
    403: {"description": "Token inválido, ou nenhum token configurado (endpoint desabilitado)"},
}


@router.get(
    "/runs",
    dependencies=[ApiToken],
    response_model=ExecucoesMonitoramento,
    summary="Execuções recentes do monitoramento, resumidas para gráficos",
    description="As `limite` execuções mais recentes do job de monitoramento (da mais nova à "
    "mais antiga): para cada versão do modelo, o PSI e o drift de cada feature, o PSI e a média "
    "das probabilidades previstas e a taxa de PV prevista. O relatório completo de uma execução "
    "está em `GET /monitoring/runs/{id}`. Exige o token de API.",
    responses=AUTH_ERRORS,
)
async def monitoring_runs(
    state: State,
    limite: Annotated[int, Query(ge=1, le=500, description="Quantas execuções (até 500)")] = 30,
) -> ExecucoesMonitoramento:
    runs = await run_in_threadpool(state.alerts.runs, limite)
    return ExecucoesMonitoramento.model_validate({"execucoes": [summarise_run(r) for r in runs]})


@router.get(
    "/runs/{execucao_id}",
    dependencies=[ApiToken],
    response_model=ExecucaoCompleta,
    summary="Relatório completo de uma execução do monitoramento",
    description="O relatório como o job o gravou (configuração, janela, versões, todas as "
    "verificações com suas estatísticas e os alertas decididos). Exige o token de API.",
    responses={**AUTH_ERRORS, 404: {"description": "Execução desconhecida"}},
)
async def monitoring_run(
    state: State,
    execucao_id: Annotated[int, Path(ge=1, le=MAX_RUN_ID, description="Id da execução")],
) -> ExecucaoCompleta:
    run = await run_in_threadpool(state.alerts.run, execucao_id)
    if run is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"execução {execucao_id} do monitoramento não encontrada"
        )
    return ExecucaoCompleta(
        id=run["id"],
        inicio=run["started_at"],
        fim=run["finished_at"],
        status=run["status"],
        relatorio=_finite(run["report"]),
    )
