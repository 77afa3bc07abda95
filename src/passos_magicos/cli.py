"""`passos-magicos`: one subcommand per lifecycle stage. Messages are in Portuguese (users);
progress goes to stderr, results to stdout."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from passos_magicos.settings import Settings, get_settings

app = typer.Typer(
    help="Plataforma MLOps Ponto de Virada — Associação Passos Mágicos.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(
    help="Dados da PEDE: gerar sintéticos e validar arquivos.", no_args_is_help=True
)
app.add_typer(data_app, name="data")

EXIT_DATA = 2
EXIT_REGISTRY = 3
# Files and folders this tool creates hold students' records (stores, logs, histories, models):
# owner-only (0600 / 0700). Every pod of the deployment runs as the same user.
PRIVATE_UMASK = 0o077


@app.callback()
def _private_by_default() -> None:
    os.umask(PRIVATE_UMASK)


DataOption = Annotated[
    list[str] | None,
    typer.Option(
        "--data",
        help="Arquivo CSV/XLSX da PEDE (caminho local ou s3://…); repita para vários. "
        "Padrão: PEDE_DATA_PATH ou os dados sintéticos embutidos.",
    ),
]


class ModelChoice(StrEnum):
    compact_logistic = "compact_logistic"
    random_forest = "random_forest"
    logistic_regression = "logistic_regression"
    hist_gradient_boosting = "hist_gradient_boosting"
    auto = "auto"


class SynthFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"


class LaterPvChoice(StrEnum):
    vazio = "vazio"
    regra = "regra"


class AliasChoice(StrEnum):
    production = "production"
    staging = "staging"


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"erro: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Known failures become one clear line and an exit code, never a traceback."""
    from passos_magicos.data.schema import DataFormatError
    from passos_magicos.features import LeakageError

    try:
        yield
    except (DataFormatError, LeakageError) as exc:
        raise _fail(str(exc), EXIT_DATA) from None
    except Exception as exc:
        from passos_magicos.registry import RegistryError
        from passos_magicos.training.train import TrainingError

        if isinstance(exc, TrainingError):
            raise _fail(str(exc), EXIT_DATA) from None
        if isinstance(exc, RegistryError):
            raise _fail(str(exc), EXIT_REGISTRY) from None
        if type(exc).__name__ == "MlflowException" or isinstance(exc, ConnectionError):
            raise _fail(
                f"MLflow indisponível ou recusou a operação: {exc}", EXIT_REGISTRY
            ) from None
        raise


def _settings() -> Settings:
    settings = get_settings()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("passos_magicos").setLevel(settings.LOG_LEVEL)
    # MLflow's own INFO lines ("Created version…") repeat what we print in Portuguese.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    return settings


def _data_uris(settings: Settings, given: list[str] | None) -> list[str]:
    from passos_magicos.data.dataset import resolve_data_uris

    uris = resolve_data_uris(
        given,
        settings.PEDE_DATA_PATH,
        settings.DATA_DIR,
        settings.SYNTH_STUDENTS,
        settings.RANDOM_SEED,
    )
    if not given and not settings.PEDE_DATA_PATH:
        typer.echo(f"usando dados sintéticos embutidos: {', '.join(uris)}", err=True)
    return uris


# ---------------------------------------------------------------------------------------------
# data


@data_app.command("synth")
def data_synth(
    output: Annotated[Path, typer.Option("--output", "-o", help="Arquivo a escrever.")],
    students: Annotated[int, typer.Option(min=50, help="Alunos na população.")] = 1400,
    seed: Annotated[int, typer.Option(help="Semente (mesma semente, mesmo arquivo).")] = 42,
    fmt: Annotated[
        SynthFormat, typer.Option("--format", help="csv (2020-2022) ou xlsx (2022-2024).")
    ] = SynthFormat.csv,
    years: Annotated[
        list[int] | None, typer.Option("--year", help="Anos do CSV (repita); padrão 2020-2022.")
    ] = None,
    later_pv: Annotated[
        LaterPvChoice,
        typer.Option(
            "--pv-2023-2024",
            help="XLSX: 'Atingiu PV' de 2023-2024 vazio (como o arquivo real; o treino deriva "
            "o PV pela regra do IPV) ou já escrito pela regra.",
        ),
    ] = LaterPvChoice.vazio,
) -> None:
    """Gera arquivos sintéticos no formato real da PEDE, calibrados nos dados reais."""
    from passos_magicos.data.synth import render_synthetic

    content = render_synthetic(
        students=students, seed=seed, fmt=fmt.value, years=years, later_pv=later_pv.value
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(content)
    typer.echo(f"{output}: {len(content)} bytes ({fmt.value}, {students} alunos, semente {seed})")


@data_app.command("validate")
def data_validate(
    data: DataOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Relatório em JSON.")] = False,
) -> None:
    """Lê os arquivos e mostra o relatório de validação (sem treinar)."""
    from passos_magicos.data.dataset import load_dataset
    from passos_magicos.training.outcome import dump_json

    settings = _settings()
    with _user_errors():
        dataset = load_dataset(_data_uris(settings, data), settings.PV_DERIVED_LABELS)
    if as_json:
        typer.echo(dump_json(dataset.validation_report()))
        return
    for line in dataset.report.describe():
        typer.echo(line)
    typer.echo(f"dataset sha256: {dataset.digest}")
    typer.echo(
        f"ok: {len(dataset.table)} registros aluno-ano utilizáveis, "
        f"{dataset.report.total_dropped} descartados"
    )


# ---------------------------------------------------------------------------------------------
# train / predict


@app.command()
def train(
    data: DataOption = None,
    model: Annotated[ModelChoice | None, typer.Option(help="Modelo (padrão: TRAIN_MODEL).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Resumo final em JSON.")] = False,
) -> None:
    """Treina em todas as transições rotuladas, faz o backtest por ano (origem móvel), registra e
    aplica o portão de qualidade."""
    from passos_magicos.monitoring.realised import realised_stage
    from passos_magicos.training.outcome import describe, dump_json
    from passos_magicos.training.train import run_training

    settings = _settings()
    with _user_errors():
        outcome = run_training(
            settings,
            _data_uris(settings, data),
            model.value if model else None,
            on_loaded=lambda dataset, tick: realised_stage(settings, dataset, tick),
        )
    summary = describe(outcome)
    if as_json:
        typer.echo(dump_json(summary))
        return
    headline = outcome.headline
    typer.echo(
        f"modelo {outcome.kind}: ROC-AUC {headline.model['roc_auc']:.3f} "
        f"({headline.description}); versão {outcome.version or 'local'}; "
        f"portão {'aprovado' if summary['aprovado'] is not False else 'reprovado'}; "
        f"tempo total {sum(outcome.timings.values()):.1f} s"
    )
    if outcome.backtest is not None:
        from passos_magicos.training.report import newest_year_statement

        typer.echo(newest_year_statement(outcome.backtest))


@app.command()
def backtest(
    data: DataOption = None,
    model: Annotated[ModelChoice | None, typer.Option(help="Modelo (padrão: TRAIN_MODEL).")] = None,
    replicates: Annotated[
        int | None,
        typer.Option(min=100, help="Réplicas do bootstrap (padrão: BACKTEST_REPLICATES)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Tabela completa em JSON.")] = False,
    equity: Annotated[
        bool,
        typer.Option(
            "--equidade",
            help="Também a equidade por grupo (gênero, escola, fase, anos no programa) e ano.",
        ),
    ] = False,
) -> None:
    """Backtest de origem móvel: para cada ano, ajusta só no passado e avalia nele, ao lado
    das referências (INDE_t, IPV_t, regressão logística simples), com intervalos de 95%."""
    from passos_magicos.features import build_transitions
    from passos_magicos.training.fairness import fairness_report, report_text
    from passos_magicos.training.outcome import dump_json
    from passos_magicos.training.report import backtest_text, newest_year_statement
    from passos_magicos.training.train import backtest_only

    settings = _settings()
    with _user_errors():
        result, dataset = backtest_only(
            settings, _data_uris(settings, data), model.value if model else None, replicates
        )
    fairness = fairness_report(result, build_transitions(dataset.table)) if equity else None
    if as_json:
        document = result.as_dict() | {"resumo": newest_year_statement(result)}
        if fairness is not None:
            document["equidade"] = fairness.as_dict()
        typer.echo(dump_json(document))
        return
    typer.echo(backtest_text(result))
    if fairness is not None:
        typer.echo(report_text(fairness))


@app.command()
def predict(
    output: Annotated[str, typer.Option("--output", "-o", help="CSV de saída (local ou s3://).")],
    data: DataOption = None,
    model_uri: Annotated[
        str | None,
        typer.Option(
            help="models:/NOME@alias, models:/NOME/VERSÃO ou pasta local. "
            "Padrão: alias de MLFLOW_MODEL_STAGE."
        ),
    ] = None,
) -> None:
    """Pontua o ciclo mais recente do arquivo: probabilidade de PV no ciclo seguinte."""
    from passos_magicos.predict import predict_file

    settings = _settings()
    with _user_errors():
        scored, resolved, dataset = predict_file(
            settings, _data_uris(settings, data), output, model_uri
        )
    year = dataset.latest_year
    typer.echo(
        f"{len(scored)} alunos de {year} pontuados com {resolved.uri} (versão {resolved.version}); "
        f"{int(scored['pv_previsto'].sum())} com PV previsto em {year + 1} → {output}"
    )


# ---------------------------------------------------------------------------------------------
# registry


def _registry_call(action: Callable[[Settings], str]) -> None:
    settings = _settings()
    with _user_errors():
        typer.echo(action(settings))


def _export_or_refuse(settings: Settings, version: str) -> None:
    """The local fallback copy, written before an alias moves: a folder that cannot be written
    stops the promotion with a clear message (and no alias moves)."""
    from passos_magicos.registry import RegistryError
    from passos_magicos.training.packaging import export_registered

    try:
        export_registered(settings, version)
    except OSError as exc:
        raise RegistryError(
            f"não foi possível exportar a versão {version} para {settings.local_model_dir} "
            f"({exc.strerror or exc}); nenhum alias foi alterado"
        ) from exc


@app.command()
def promote(
    version: Annotated[str | None, typer.Option(help="Versão (padrão: a atual @staging).")] = None,
    to: Annotated[
        AliasChoice, typer.Option("--to", help="Alias de destino.")
    ] = AliasChoice.production,
    force: Annotated[bool, typer.Option(help="Promove mesmo reprovada no portão.")] = False,
) -> None:
    """Promove uma versão para @production (ou @staging), guardando o histórico."""
    from passos_magicos import registry

    def action(settings: Settings) -> str:
        client = registry.configure(settings)
        # Production's local copy (the serving fallback) is written before the alias moves: a
        # failed export leaves both on the previous version.
        export_first = to.value == registry.PRODUCTION
        change = registry.promote(
            client,
            settings.MLFLOW_MODEL_NAME,
            version,
            to.value,
            force,
            before_move=(lambda v: _export_or_refuse(settings, v)) if export_first else None,
        )
        if change.previous == change.version:
            return f"versão {change.version} já está em @{change.alias}; nada mudou"
        return (
            f"@{change.alias}: versão {change.previous or '—'} → {change.version} "
            f"({settings.MLFLOW_MODEL_NAME})"
        )

    _registry_call(action)


@app.command()
def rollback(
    version: Annotated[
        str | None, typer.Option(help="Versão de destino (padrão: a produção anterior).")
    ] = None,
) -> None:
    """Volta @production para a versão anterior do histórico de promoções."""
    from passos_magicos import registry

    def action(settings: Settings) -> str:
        client = registry.configure(settings)
        change = registry.rollback(
            client,
            settings.MLFLOW_MODEL_NAME,
            version,
            before_move=lambda v: _export_or_refuse(settings, v),
        )
        return f"rollback de @production: versão {change.previous or '—'} → {change.version}"

    _registry_call(action)


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Saída em JSON.")] = False,
) -> None:
    """Lista as versões registradas: aliases, métricas, portão, quando e por quem promovidas."""
    from dataclasses import asdict

    from passos_magicos import registry

    settings = _settings()
    with _user_errors():
        client = registry.configure(settings)
        rows = registry.list_versions(client, settings.MLFLOW_MODEL_NAME)
        history = registry.promotion_history(client, settings.MLFLOW_MODEL_NAME) if rows else []
    if as_json:
        payload = {"versoes": [asdict(r) for r in rows], "historico": history}
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    if not rows:
        typer.echo(f"nenhuma versão registrada de {settings.MLFLOW_MODEL_NAME}")
        return
    header = (
        f"{'versão':>6}  {'aliases':<20} {'modelo':<24} {'portão':<10} {'ROC-AUC':>8} "
        f"{'PR-AUC':>7}  {'criada em':<25} promovida (em / por)"
    )
    typer.echo(header)
    for row in rows:
        auc = row.metrics.get("oot_roc_auc", row.metrics.get("cv_roc_auc"))
        pr = row.metrics.get("oot_pr_auc")
        promoted = f"{row.promoted_at} / {row.promoted_by}" if row.promoted_at else "—"
        typer.echo(
            f"{row.version:>6}  {','.join('@' + a for a in row.aliases) or '—':<20} "
            f"{row.kind:<24} {row.gate:<10} {auc if auc is None else f'{auc:.3f}':>8} "
            f"{pr if pr is None else f'{pr:.3f}':>7}  {row.created_at:<25} {promoted}"
        )


# ---------------------------------------------------------------------------------------------
# feature store, serving, the whole job


@app.command()
def materialize(data: DataOption = None) -> None:
    """Grava o feature store offline (Parquet) e materializa o último ciclo de cada aluno no
    online."""
    from passos_magicos.data.dataset import load_dataset
    from passos_magicos.feature_store.materialize import materialize_online, store_offline

    settings = _settings()
    with _user_errors():
        dataset = load_dataset(_data_uris(settings, data), settings.PV_DERIVED_LABELS)
        table = store_offline(settings, dataset)
        meta = materialize_online(settings, table, dataset.digest)
    typer.echo(
        f"feature store: versão {meta.version}, {meta.rows} alunos, ciclos "
        f"{dict(meta.cycles)}, origem {meta.source_digest[:12]}…"
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Padrão: API_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Padrão: API_PORT.")] = None,
    workers: Annotated[int | None, typer.Option(help="Padrão: API_WORKERS.")] = None,
) -> None:
    """Sobe a API FastAPI (uvicorn)."""
    import uvicorn

    settings = _settings()
    uvicorn.run(
        "passos_magicos.serving.app:create_app",
        factory=True,
        host=host or settings.API_HOST,
        port=port or settings.API_PORT,
        workers=workers or settings.API_WORKERS,
        log_level=settings.LOG_LEVEL.lower(),
        access_log=False,  # every prediction is already in the prediction log
        server_header=False,
    )


@app.command()
def monitor(
    window: Annotated[
        int | None,
        typer.Option(help="Previsões mais recentes a analisar. Padrão: PERFORMANCE_WINDOW."),
    ] = None,
    since_hours: Annotated[
        float | None, typer.Option(help="Só as previsões das últimas H horas (além do limite).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Relatório JSON. Padrão: MONITOR_REPORT_DIR/monitor-….json.")
    ] = None,
    alerts: Annotated[
        bool, typer.Option("--alerts/--no-alerts", help="Enviar (ou não) os alertas ao Slack.")
    ] = True,
) -> None:
    """Job de monitoramento (CronJob a cada 6 h): drift das previsões contra o perfil de
    referência de cada versão, distribuição de classes via GET /metrics, alertas no Slack.
    Sai com 0 qualquer que seja o achado; ≠0 só quando o job não consegue rodar."""
    from passos_magicos.monitoring.job import MonitorError, run_monitor

    if window is not None and window < 1:
        raise _fail("--window deve ser ao menos 1", EXIT_DATA)
    if since_hours is not None and since_hours <= 0:
        raise _fail("--since-hours deve ser positivo", EXIT_DATA)
    settings = _settings()
    try:
        report = run_monitor(
            settings,
            window_size=window,
            since_hours=since_hours,
            send_alerts=alerts,
            output=output,
        )
    except MonitorError as exc:
        raise _fail(str(exc), EXIT_DATA) from None
    alerting = [c["titulo"] for c in report["verificacoes"] if c["estado"] == "alerta"]
    typer.echo(
        f"monitoramento: {report['status']} ({report['log']['previsoes_na_janela']} previsões)"
    )
    for title in alerting:
        typer.echo(f"  alerta: {title}")
    typer.echo(f"relatório: {report['relatorio']}")


@app.command()
def dashboard(
    host: Annotated[str | None, typer.Option(help="Padrão: DASHBOARD_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Padrão: DASHBOARD_PORT (8501).")] = None,
) -> None:
    """Sobe o dashboard Streamlit da equipe pedagógica (lê tudo pela API em API_URL)."""
    # Loaded before the server starts, so that the first visitor does not wait for them (the
    # pages themselves need Streamlit's runtime, which only exists once the server runs).
    import pandas  # noqa: F401
    from streamlit.web import bootstrap

    import passos_magicos.dashboard.client  # noqa: F401

    settings = _settings()
    app_path = Path(__file__).resolve().parent / "dashboard" / "app.py"
    options = {
        "server.address": host or settings.DASHBOARD_HOST,
        "server.port": port or settings.DASHBOARD_PORT,
        "server.headless": True,
        "browser.gatherUsageStats": False,
        "client.toolbarMode": "viewer",  # no "Deploy" button for the team
    }
    typer.echo(
        f"dashboard em http://{options['server.address']}:{options['server.port']} "
        f"(API: {settings.API_URL})"
    )
    bootstrap.load_config_options(flag_options=options)
    bootstrap.run(str(app_path), False, [], options)


@app.command()
def run(data: DataOption = None) -> None:
    """O job principal (make run): treina, registra, promove na primeira vez, materializa e
    sobe a API e a UI do MLflow até Ctrl-C."""
    from passos_magicos.launcher import run_everything

    settings = _settings()
    with _user_errors():
        code = run_everything(settings, _data_uris(settings, data), typer.echo)
    raise typer.Exit(code)


# ---------------------------------------------------------------------------------------------
# evaluate: realised performance once a cycle's outcomes arrive


@app.command()
def evaluate(
    data: DataOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Resultado em JSON.")] = False,
    alerts: Annotated[
        bool, typer.Option("--alerts/--no-alerts", help="Enviar (ou não) os alertas ao Slack.")
    ] = True,
) -> None:
    """Desempenho realizado: junta as previsões feitas para os alunos do ciclo t (listas do
    `predict` e log de previsões da API, por versão do modelo) com o PV deles no ciclo t+1 dos
    arquivos; grava ROC-AUC, PR-AUC, recall top 15%/25% e Brier com intervalos de 95%, ao lado
    da estimativa de antes dos desfechos, no histórico de monitoramento; alerta quando o ROC-AUC
    realizado fica abaixo de REALISED_MIN_ROC_AUC."""
    from passos_magicos.data.dataset import load_dataset
    from passos_magicos.monitoring.realised import (
        EvaluationError,
        evaluation_text,
        run_evaluation,
    )

    settings = _settings()
    with _user_errors():
        dataset = load_dataset(_data_uris(settings, data), settings.PV_DERIVED_LABELS)
    try:
        evaluation = run_evaluation(settings, dataset, send_alerts=alerts)
    except EvaluationError as exc:
        raise _fail(str(exc), EXIT_DATA) from None
    if as_json:
        typer.echo(json.dumps(evaluation.as_dict(), ensure_ascii=False, indent=2))
        return
    typer.echo(evaluation_text(evaluation))


# ---------------------------------------------------------------------------------------------
# followups: the schema of the team's follow-up records (acompanhamentos)

followups_app = typer.Typer(
    help="Acompanhamentos da equipe: migrações do esquema (a API também as roda ao subir).",
    no_args_is_help=True,
)
app.add_typer(followups_app, name="followups")


@followups_app.command("migrate")
def followups_migrate(
    revision: Annotated[
        str, typer.Option(help="Revisão alvo (padrão: a mais recente, head).")
    ] = "head",
) -> None:
    """Atualiza as tabelas de acompanhamentos em FOLLOWUPS_STORE_URL (nunca rebaixa; com uma
    trava, então várias réplicas podem rodar ao mesmo tempo)."""
    import sqlalchemy as sa

    from passos_magicos.database import make_engine
    from passos_magicos.followups.store import current_revision, migrate

    settings = _settings()
    engine = make_engine(settings.followups_store_url)
    try:
        before = current_revision(engine)
        after = migrate(engine, revision)
    except sa.exc.SQLAlchemyError as exc:
        raise _fail(
            f"não foi possível migrar os acompanhamentos ({type(exc).__name__})", EXIT_DATA
        ) from None
    except Exception as exc:  # alembic: unknown revision and the like
        if type(exc).__module__.startswith("alembic"):
            raise _fail(f"migração recusada: {exc}", EXIT_DATA) from None
        raise
    finally:
        engine.dispose()
    typer.echo(f"acompanhamentos: revisão {before or '—'} → {after or '—'}")


# ---------------------------------------------------------------------------------------------
# gitops: the manifest edits of the GitOps pull requests (cd.yml, deploy-model.yml)

gitops_app = typer.Typer(
    help="Edita os manifestos do Kubernetes no lugar (tag das imagens, anotações do rollout), "
    "preservando comentários e formatação: usado pelos PRs GitOps.",
    no_args_is_help=True,
)
app.add_typer(gitops_app, name="gitops")

ManifestDirOption = Annotated[
    Path, typer.Option("--dir", help="Pasta dos manifestos (todos os .yaml/.yml, recursivo).")
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Mostra o diff unificado sem gravar nada.")
]
DeploymentOption = Annotated[str, typer.Option("--deployment", help="Deployment da API.")]


@contextmanager
def _gitops_errors() -> Iterator[None]:
    from passos_magicos.gitops import EditCheckError, GitOpsError

    try:
        yield
    except EditCheckError as exc:  # a bug of ours, not of the manifests: nothing was written
        raise _fail(str(exc), 1) from None
    except GitOpsError as exc:
        raise _fail(str(exc), EXIT_DATA) from None


def _gitops_report(output: str, dry_run: bool) -> None:
    typer.echo(output, nl=False)
    if dry_run:
        typer.echo("dry-run: nenhum arquivo foi gravado", err=True)


@gitops_app.command("set-image")
def gitops_set_image(
    tag: Annotated[str, typer.Option("--tag", help="Tag nova das imagens (ex.: v1.2.0).")],
    directory: ManifestDirOption = Path("k8s"),
    images: Annotated[
        list[str] | None,
        typer.Option(
            "--image",
            help="Imagem a atualizar (nome base ou repositório completo); repita. "
            "Padrão: passos-magicos-api, -jobs e -dashboard (cada uma precisa existir).",
        ),
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry", help="Move as imagens para este prefixo (ex.: docker.io/passosmagicos)."
        ),
    ] = None,
    dry_run: DryRunOption = False,
) -> None:
    """Troca a tag de toda imagem nossa nos contêineres e initContainers (Deployments,
    CronJobs, arquivos com vários documentos)."""
    from passos_magicos import gitops

    names = images or list(gitops.IMAGE_NAMES)
    with _gitops_errors():
        output = gitops.set_image(directory, tag, names, registry).apply(dry_run)
    _gitops_report(output, dry_run)


@gitops_app.command("bump-reload")
def gitops_bump_reload(
    at: Annotated[
        str | None,
        typer.Option("--at", help="Data/hora ISO 8601 (padrão: agora, UTC; sem fuso = UTC)."),
    ] = None,
    directory: ManifestDirOption = Path("k8s"),
    deployment: DeploymentOption = "passos-magicos-api",
    dry_run: DryRunOption = False,
) -> None:
    """Grava mlops.passos-magicos/reload-at no template de pods da API: o Kubernetes refaz os
    pods (rollout) e eles carregam o modelo do alias."""
    from passos_magicos import gitops

    with _gitops_errors():
        moment = gitops.parse_moment(at) if at is not None else None
        output = gitops.bump_reload(directory, moment, deployment).apply(dry_run)
    _gitops_report(output, dry_run)


@gitops_app.command("set-model-version")
def gitops_set_model_version(
    version: Annotated[str, typer.Option("--version", help="Versão do modelo no registro.")],
    directory: ManifestDirOption = Path("k8s"),
    deployment: DeploymentOption = "passos-magicos-api",
    dry_run: DryRunOption = False,
) -> None:
    """Registra mlops.passos-magicos/model-version (a versão servida) no template de pods da
    API."""
    from passos_magicos import gitops

    with _gitops_errors():
        output = gitops.set_model_version(directory, version, deployment).apply(dry_run)
    _gitops_report(output, dry_run)


def main() -> None:  # pragma: no cover - console script entry
    app(prog_name="passos-magicos")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
