"""`passos-magicos monitor`, the 6-hourly CronJob: drift of the newest predictions against the
reference of the version that made them, the class distribution seen by `GET /metrics`, alerts.

Whatever it finds (drift, an empty log, an unreachable API or webhook) is a finding: reported,
alerted, exit 0. Only a job that cannot run (unreadable log, unusable store) is an error.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

from passos_magicos.alerts.history import AlertHistory
from passos_magicos.alerts.policy import AlertPolicy, Finding
from passos_magicos.alerts.slack import SlackSender
from passos_magicos.features import MODEL_INPUTS
from passos_magicos.monitoring.drift import (
    MIN_COHEN_H,
    FeatureDrift,
    VersionDrift,
    compare,
    positive_rate_test,
)
from passos_magicos.monitoring.reference import ReferenceProfiles
from passos_magicos.monitoring.window import VersionWindow, Window, read_window
from passos_magicos.progress import Echo, stderr_echo
from passos_magicos.settings import Settings

State = Literal["ok", "alerta", "indeterminado"]
Severity = Literal["info", "aviso", "critico"]
API_TIMEOUT_SECONDS: Final = 10.0
MAX_DETAIL_FEATURES: Final = 12


class MonitorError(RuntimeError):
    """The job itself cannot run (message in pt-BR)."""


def br(value: float | None, digits: int = 2) -> str:
    """A number the way the team reads it: `0,31`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}".replace(".", ",")


def p_text(p_value: float) -> str:
    return "p<0,001" if p_value < 0.001 else f"p={br(p_value, 3)}"


@dataclass
class Check:
    """One verification of the run: what the report, /alerts/status and Slack show."""

    nome: str
    chave: str  # dedup key of its alert
    estado: State
    severidade: Severity
    titulo: str
    resumo: str
    fatos: list[tuple[str, str]] = field(default_factory=list)
    detalhes: list[str] = field(default_factory=list)
    dados: dict[str, Any] = field(default_factory=dict)

    def finding(self) -> Finding:
        return Finding(
            key=self.chave,
            state=self.estado,
            severity=self.severidade,
            title=self.titulo,
            summary=self.resumo,
            facts=tuple(self.fatos),
            details=tuple(self.detalhes),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "nome": self.nome,
            "chave": self.chave,
            "estado": self.estado,
            "severidade": self.severidade,
            "titulo": self.titulo,
            "resumo": self.resumo,
            "fatos": [list(f) for f in self.fatos],
            "detalhes": self.detalhes,
            "dados": self.dados,
        }


def feature_line(drift: FeatureDrift) -> str:
    parts = [f"{drift.feature}: PSI {br(drift.psi)}"]
    if drift.ks_d is not None:
        parts.append(f"KS D={br(drift.ks_d)}")
    else:
        parts.append(f"V de Cramér {br(drift.cramer_v)}")
    parts.append(p_text(drift.p_valor))
    if drift.media_ref is not None and drift.media_atual is not None:
        parts.append(f"média {br(drift.media_ref)} → {br(drift.media_atual)}")
    if abs(drift.ausentes_atual - drift.ausentes_ref) >= 0.05:
        parts.append(f"ausentes {drift.ausentes_ref:.0%} → {drift.ausentes_atual:.0%}")
    return " · ".join(parts)


def version_checks(group: VersionWindow, drift: VersionDrift, settings: Settings) -> list[Check]:
    """Feature drift, score drift and positive rate of one version's predictions."""
    label = f"{group.model} v{group.version}"
    facts = [("Modelo", label), ("Previsões analisadas", f"{group.n:,}".replace(",", "."))]
    checks: list[Check] = []

    drifted = drift.drifted
    worst = max((f.psi for f in drifted), default=0.0)
    checks.append(
        Check(
            nome="drift_features",
            chave=f"drift_features:{group.model}:{group.version}",
            estado="alerta" if drifted else "ok",
            severidade="critico" if worst >= 2 * settings.DRIFT_THRESHOLD else "aviso",
            titulo=f"Drift nas features — {label}",
            resumo=(
                f"{len(drifted)} de {len(drift.features)} features mudaram de distribuição "
                f"(PSI ≥ {br(settings.DRIFT_THRESHOLD)} e teste significativo) em relação ao "
                "treino deste modelo."
                if drifted
                else f"Nenhuma das {len(drift.features)} features mudou de distribuição."
            ),
            fatos=[*facts, ("Features com drift", ", ".join(f.feature for f in drifted) or "—")],
            detalhes=[feature_line(f) for f in drifted[:MAX_DETAIL_FEATURES]],
            dados={"features": [f.to_dict() for f in drift.features]},
        )
    )

    score = drift.score
    if score is None:  # compare() always sets it
        raise ValueError("drift sem estatística das probabilidades")
    checks.append(
        Check(
            nome="drift_previsoes",
            chave=f"drift_previsoes:{group.model}:{group.version}",
            estado="alerta" if score.drift else "ok",
            severidade="critico",
            titulo=f"Drift nas probabilidades previstas — {label}",
            resumo=(
                "A distribuição das probabilidades mudou em relação ao treino "
                f"(PSI {br(score.psi)}, {p_text(score.p_valor)})."
                if score.drift
                else f"Distribuição das probabilidades estável (PSI {br(score.psi)})."
            ),
            fatos=facts,
            detalhes=[feature_line(score).replace("score:", "probabilidade:")],
            dados={"score": score.to_dict()},
        )
    )

    rate = drift.taxa_positiva
    if rate is not None:
        checks.append(
            Check(
                nome="taxa_positiva",
                chave=f"taxa_positiva:{group.model}:{group.version}",
                estado="alerta" if rate.drift else "ok",
                severidade="aviso",
                titulo=f"Taxa de PV prevista fora do esperado — {label}",
                resumo=(
                    f"{rate.atual:.1%} das previsões são PV; no treino eram {rate.referencia:.1%} "
                    f"(teste binomial {p_text(rate.p_valor)}, h de Cohen {br(rate.cohen_h)})."
                ),
                fatos=facts,
                dados={"taxa_positiva": rate.to_dict()},
            )
        )
    return checks


def insufficient(group: VersionWindow, settings: Settings) -> list[Check]:
    label = f"{group.model} v{group.version}"
    return [
        Check(
            nome=name,
            chave=f"{name}:{group.model}:{group.version}",
            estado="indeterminado",
            severidade="info",
            titulo=f"Dados insuficientes — {label}",
            resumo=(
                f"{group.n} previsões na janela; são necessárias ao menos "
                f"{settings.MONITOR_MIN_SAMPLES} para concluir algo."
            ),
            dados={"n": group.n, "minimo": settings.MONITOR_MIN_SAMPLES},
        )
        for name in ("drift_features", "drift_previsoes", "taxa_positiva")
    ]


def missing_reference(group: VersionWindow, reason: str) -> Check:
    label = f"{group.model} v{group.version}"
    return Check(
        nome="referencia",
        chave=f"referencia:{group.model}:{group.version}",
        estado="alerta",
        severidade="aviso",
        titulo=f"Sem perfil de referência — {label}",
        resumo=f"As previsões de {label} não podem ser monitoradas: {reason}.",
        fatos=[("Modelo", label), ("Previsões", str(group.n))],
        dados={"n": group.n, "motivo": reason},
    )


def fetch_metrics(settings: Settings) -> dict[str, Any]:
    """`GET {API_URL}/metrics`; raises OSError/ValueError with a readable message."""
    url = settings.API_URL.rstrip("/") + "/metrics"
    headers = {"Accept": "application/json"}
    token = settings.api_client_token
    if token:
        headers["X-API-Token"] = token
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - configured API URL
    try:
        with urllib.request.urlopen(request, timeout=API_TIMEOUT_SECONDS) as response:  # noqa: S310
            body: dict[str, Any] = json.loads(response.read())
            return body
    except urllib.error.HTTPError as exc:
        raise OSError(f"a API respondeu {exc.code} em /metrics") from exc
    except (urllib.error.URLError, TimeoutError) as exc:
        raise OSError(f"API inacessível em {url}: {getattr(exc, 'reason', exc)}") from exc


def api_metrics(settings: Settings) -> dict[str, Any] | OSError | ValueError:
    """`GET /metrics`, or why it could not be read."""
    try:
        return fetch_metrics(settings)
    except (OSError, ValueError) as exc:
        return exc


def class_distribution_check(
    settings: Settings,
    window: Window,
    expected: float | None,
    fetched: dict[str, Any] | OSError | ValueError | None = None,
) -> Check:
    """The share of PV among the API's last predictions (`GET /metrics`, read from the shared
    log, so every replica agrees) against the rate the models' references lead to expect."""
    name = key = "distribuicao_classes"
    metrics = api_metrics(settings) if fetched is None else fetched
    if isinstance(metrics, OSError | ValueError):
        exc = metrics
        return Check(
            nome=name,
            chave=key,
            estado="alerta",
            severidade="critico",
            titulo="API inacessível para o monitoramento",
            resumo=f"Não foi possível ler a distribuição de classes: {exc}.",
            dados={"erro": str(exc)},
        )
    n = int(metrics.get("predicoes_na_janela") or 0)
    share = float((metrics.get("distribuicao_classes_janela") or {}).get("pv_sim", 0.0))
    positives = round(share * n)
    own = sum(int(v.predicted.sum()) for v in window.versions)
    data: dict[str, Any] = {
        "api": {
            "predicoes_na_janela": n,
            "taxa_pv": share,
            "total": metrics.get("total_predicoes"),
        },
        "log_do_job": {"previsoes": window.n, "taxa_pv": own / window.n if window.n else None},
        "esperado": expected,
    }
    if expected is None or n < settings.MONITOR_MIN_SAMPLES:
        return Check(
            nome=name,
            chave=key,
            estado="indeterminado",
            severidade="info",
            titulo="Distribuição de classes: dados insuficientes",
            resumo=f"{n} previsões na janela da API; sem base para comparar.",
            dados=data,
        )
    rate = positive_rate_test(positives, n, expected)
    alert = rate.p_valor < settings.MONITOR_ALPHA and rate.cohen_h >= MIN_COHEN_H
    data["teste"] = rate.to_dict()
    return Check(
        nome=name,
        chave=key,
        estado="alerta" if alert else "ok",
        severidade="aviso",
        titulo="Distribuição de classes fora do esperado",
        resumo=(
            f"Na janela da API, {share:.1%} das previsões são PV; o esperado pelos perfis dos "
            f"modelos é {expected:.1%} ({p_text(rate.p_valor)})."
        ),
        fatos=[("Previsões na janela", str(n))],
        dados=data,
    )


def log_check(window: Window, settings: Settings) -> Check:
    invalid = window.invalid_lines
    return Check(
        nome="log_previsoes",
        chave="log_previsoes",
        estado="alerta" if invalid else "ok",
        severidade="aviso",
        titulo="Linhas inválidas no log de previsões",
        resumo=(
            f"{invalid} de {window.scanned_lines} linhas lidas do log não são previsões válidas "
            "e foram ignoradas."
            if invalid
            else f"{window.scanned_lines} linhas lidas, todas válidas."
        ),
        fatos=[("Log", str(settings.PREDICTION_LOG_PATH))],
        dados={
            "linhas_lidas": window.scanned_lines,
            "linhas_invalidas": invalid,
            "consultas_lista": window.view_lines,
            "previsoes_repetidas": window.repeated_lines,
        },
    )


LOST_LINES = "log_linhas_perdidas"


def _previous_lost(history: AlertHistory) -> int | None:
    """The total of lost lines the previous run saw (None: no previous run knew it)."""
    run = history.latest_run()
    for check in ((run or {}).get("report") or {}).get("verificacoes", []):
        if check.get("chave") == LOST_LINES:
            total = (check.get("dados") or {}).get("total")
            return int(total) if isinstance(total, int) else None
    return None


def lost_lines_check(
    history: AlertHistory, metrics: dict[str, Any] | OSError | ValueError, settings: Settings
) -> Check:
    """Prediction-log lines the API could not write (full disk): every process's count in the
    monitoring store, or what `GET /metrics` reports when the store has none. Alert when lines
    were lost since the previous run; resolved once a run sees no new loss."""
    try:
        losses = history.log_losses()
        stored, last_at = losses.total, losses.last_at
    except Exception:  # an older store, or unreadable: the API's figure still counts
        stored, last_at = 0, None
    reported = metrics.get("linhas_perdidas") if isinstance(metrics, dict) else None
    total = max(stored, reported if isinstance(reported, int) else 0)
    previous = _previous_lost(history)
    new = total - previous if previous is not None else total
    data = {"total": total, "desde_a_ultima_execucao": max(new, 0), "ultima_perda_em": last_at}
    if new > 0:
        return Check(
            nome=LOST_LINES,
            chave=LOST_LINES,
            estado="alerta",
            severidade="critico",
            titulo="Linhas do log de previsões perdidas",
            resumo=(
                f"{new} linha(s) do log de previsões não puderam ser gravadas desde a última "
                f"execução ({total} no total; a última em {last_at or '—'}). As previsões "
                "continuaram sendo servidas, mas essas não entram no monitoramento nem no "
                "desempenho realizado: libere espaço no volume do log."
            ),
            fatos=[("Log", str(settings.PREDICTION_LOG_PATH)), ("Linhas perdidas", str(new))],
            dados=data,
        )
    return Check(
        nome=LOST_LINES,
        chave=LOST_LINES,
        estado="ok",
        severidade="critico",
        titulo="Log de previsões gravando normalmente",
        resumo=f"Nenhuma linha perdida desde a última execução ({total} no total).",
        dados=data,
    )


def _check_paths(settings: Settings) -> None:
    path = settings.PREDICTION_LOG_PATH
    if path.is_dir():
        raise MonitorError(f"PREDICTION_LOG_PATH aponta para uma pasta: {path}")
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise MonitorError(f"a pasta do log não é uma pasta: {folder}")
    if path.exists():
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise MonitorError(f"não foi possível ler o log de previsões {path}: {exc}") from exc
    try:
        settings.MONITOR_REPORT_DIR.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MonitorError(
            f"não foi possível criar a pasta de relatórios {settings.MONITOR_REPORT_DIR}: {exc}"
        ) from exc


def _open_history(settings: Settings) -> AlertHistory:
    try:
        return AlertHistory(settings.monitoring_store_url)
    except Exception as exc:  # SQLAlchemy errors vary by backend; all mean "cannot run"
        raise MonitorError(f"histórico de monitoramento inutilizável: {exc}") from exc


def _since(started: datetime, since_hours: float | None) -> str | None:
    if since_hours is None:
        return None
    moment = started - timedelta(hours=since_hours)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")  # the log's format


@dataclass
class _VersionResults:
    checks: list[Check] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    expected_positive: float = 0.0
    weight: int = 0

    @property
    def expected_rate(self) -> float | None:
        """The positive rate the references lead to expect, weighted by predictions."""
        return self.expected_positive / self.weight if self.weight else None


def _check_versions(settings: Settings, window: Window, echo: Echo) -> _VersionResults:
    references = ReferenceProfiles(settings)
    results = _VersionResults()
    for group in window.versions:
        entry: dict[str, Any] = {"modelo": group.model, "versao": group.version, "n": group.n}
        profile = references.get(group.model, group.version)
        if profile is None:
            reason = references.errors.get((group.model, group.version), "perfil não encontrado")
            results.checks.append(missing_reference(group, reason))
            entry["estado"] = "sem_referencia"
        else:
            if profile.get("taxa_positiva") is not None:
                results.expected_positive += profile["taxa_positiva"] * group.n
                results.weight += group.n
            if group.n < settings.MONITOR_MIN_SAMPLES:
                results.checks.extend(insufficient(group, settings))
                entry["estado"] = "dados_insuficientes"
            else:
                drift = compare(
                    profile,
                    group.features,
                    group.scores,
                    group.predicted,
                    settings.DRIFT_THRESHOLD,
                    settings.MONITOR_ALPHA,
                )
                found = version_checks(group, drift, settings)
                results.checks.extend(found)
                entry["estado"] = "alerta" if any(c.estado == "alerta" for c in found) else "ok"
                entry["features_com_drift"] = [f.feature for f in drift.drifted]
        echo(f"      {group.model} v{group.version}: {group.n} previsões → {entry['estado']}")
        results.versions.append(entry)
    if not window.versions:
        results.checks.append(
            Check(
                nome="janela",
                chave="janela",
                estado="indeterminado",
                severidade="info",
                titulo="Nenhuma previsão para monitorar",
                resumo=f"O log {settings.PREDICTION_LOG_PATH} não tem previsões na janela.",
            )
        )
    return results


VERSION_CHECKS = ("drift_features", "drift_previsoes", "taxa_positiva", "referencia")


def retired_version_checks(
    history: AlertHistory, window: Window, checks: list[Check]
) -> list[Check]:
    """Resolve the active per-version alerts of versions that no longer predict.

    Such an alert gets no finding once its version leaves the window (replaced, rolled back
    or deleted), so it would stay active forever. When the window holds other versions'
    predictions, a version absent from it is out of use and its alerts end; with no
    predictions at all nothing can be said, and nothing is resolved."""
    if not window.versions:
        return []
    live = {(group.model, group.version) for group in window.versions}
    judged = {check.chave for check in checks}
    resolved = []
    for state in history.active_alerts():
        name, _, rest = state.dedup_key.partition(":")
        model, _, version = rest.rpartition(":")
        if name not in VERSION_CHECKS or not model or state.dedup_key in judged:
            continue
        if (model, version) in live:
            continue
        resolved.append(
            Check(
                nome=name,
                chave=state.dedup_key,
                estado="ok",
                severidade="info",
                titulo=f"Versão fora de uso — {model} v{version}",
                resumo=(
                    f"{model} v{version} não fez nenhuma das {window.n} previsões da janela "
                    "(foi substituída, revertida ou removida): o alerta dessa versão foi encerrado."
                ),
                dados={"versoes_na_janela": sorted(f"{m} v{v}" for m, v in live)},
            )
        )
    return resolved


def _deliver(
    settings: Settings, history: AlertHistory, checks: list[Check], echo: Echo
) -> list[dict[str, Any]]:
    policy = AlertPolicy(
        history,
        SlackSender.from_settings(settings),
        cooldown_seconds=settings.ALERT_COOLDOWN_MINUTES * 60,
        dashboard_url=settings.DASHBOARD_URL,
    )
    decisions = []
    for decision in policy.apply([c.finding() for c in checks]):
        decisions.append(
            {
                "chave": decision.key,
                "acao": decision.action,
                "entregue": decision.delivered,
                "motivo": decision.reason,
            }
        )
        echo(f"      {decision.key}: {decision.action}" + _reason(decision.reason))
    return decisions


def run_monitor(
    settings: Settings,
    *,
    window_size: int | None = None,
    since_hours: float | None = None,
    send_alerts: bool = True,
    output: Path | None = None,
    echo: Echo = stderr_echo,
) -> dict[str, Any]:
    """Run every check once; returns the report (also written to disk and to the history)."""
    started = datetime.now(UTC)
    clock = time.perf_counter()
    _check_paths(settings)
    history = _open_history(settings)
    limit = window_size or settings.PERFORMANCE_WINDOW
    since = _since(started, since_hours)

    echo(f"[1/4] Lendo as últimas {limit} previsões de {settings.PREDICTION_LOG_PATH}…")
    try:
        window = read_window(settings.PREDICTION_LOG_PATH, MODEL_INPUTS, limit, since)
    except OSError as exc:
        raise MonitorError(f"não foi possível ler o log de previsões: {exc}") from exc
    echo(
        f"      {window.n} previsões de {len(window.versions)} versão(ões); "
        f"{window.invalid_lines} linha(s) inválida(s) ignorada(s)"
    )

    echo("[2/4] Drift por versão do modelo (contra o perfil de referência de cada uma)…")
    results = _check_versions(settings, window, echo)
    checks = [*results.checks, log_check(window, settings)]

    echo(f"[3/4] Distribuição de classes via {settings.API_URL.rstrip('/')}/metrics…")
    metrics = api_metrics(settings)
    api_check = class_distribution_check(settings, window, results.expected_rate, metrics)
    checks.append(api_check)
    echo(f"      {api_check.estado}: {api_check.resumo}")
    lost = lost_lines_check(history, metrics, settings)
    checks.append(lost)
    echo(f"      linhas perdidas: {lost.resumo}")

    echo("[4/4] Alertas…")
    checks += retired_version_checks(history, window, checks)
    decisions = _deliver(settings, history, checks, echo) if send_alerts else []
    if not send_alerts:
        echo("      desligados (--no-alerts)")

    alerting = any(c.estado == "alerta" for c in checks)
    status = "alerta" if alerting else ("ok" if window.versions else "sem_dados")
    report: dict[str, Any] = {
        "inicio": started.isoformat(timespec="seconds"),
        "duracao_s": round(time.perf_counter() - clock, 3),
        "status": status,
        "configuracao": {
            "janela": limit,
            "desde": since,
            "drift_threshold": settings.DRIFT_THRESHOLD,
            "min_amostras": settings.MONITOR_MIN_SAMPLES,
            "alpha": settings.MONITOR_ALPHA,
            "log": str(settings.PREDICTION_LOG_PATH),
            "api_url": settings.API_URL,
        },
        "log": {
            "linhas_lidas": window.scanned_lines,
            "linhas_invalidas": window.invalid_lines,
            "consultas_lista": window.view_lines,
            "previsoes_repetidas": window.repeated_lines,
            "previsoes_na_janela": window.n,
            "primeira_previsao": window.first_ts,
            "ultima_previsao": window.last_ts,
        },
        "versoes": results.versions,
        "verificacoes": [c.to_dict() for c in checks],
        "alertas": decisions,
    }
    path = output or settings.MONITOR_REPORT_DIR / f"monitor-{started:%Y%m%dT%H%M%SZ}.json"
    report["relatorio"] = str(path)
    started_at = started.isoformat(timespec="seconds")
    report["execucao_id"] = history.record_run(started_at, status, report)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Whole or absent: a job killed mid-write (kill -9, OOM) leaves no truncated report.
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            partial.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str))
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
    except OSError as exc:
        raise MonitorError(f"não foi possível gravar o relatório {path}: {exc}") from exc
    return report


def _reason(reason: str | None) -> str:
    return f" ({reason})" if reason else ""
