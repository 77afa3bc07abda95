"""`passos-magicos run` (what `make run` does): train on the embedded defaults, promote on the
first run, then serve the API, the dashboard and the MLflow UI until Ctrl-C, printing where
they are. Ctrl-C or SIGTERM stops all of them."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from passos_magicos import registry
from passos_magicos.monitoring.realised import realised_stage
from passos_magicos.progress import Echo
from passos_magicos.settings import Settings
from passos_magicos.training.packaging import export_registered
from passos_magicos.training.train import run_training

MLFLOW_UI_PORT = 5000


def local_secret(path: Path) -> str:
    """A token kept in DATA_DIR (mode 0600), created on first use: stable across runs."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token


def port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) != 0


def wait_ready(url: str, timeout: float, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our URL
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def promote_first_run(settings: Settings, version: str | None, echo: Echo) -> None:
    if not settings.MLFLOW_ENABLED or version is None:
        return
    client = registry.configure(settings)
    name = settings.MLFLOW_MODEL_NAME
    if registry.version_for_alias(client, name, registry.PRODUCTION) is not None:
        echo("já existe uma versão em @production: nada promovido (use `passos-magicos promote`)")
        return
    if registry.version_for_alias(client, name, registry.STAGING) != version:
        echo("a versão nova não passou no portão: nada promovido")
        return
    registry.promote(
        client,
        name,
        version,
        registry.PRODUCTION,
        by="make run",
        before_move=lambda v: export_registered(settings, v),
    )
    echo(f"primeira execução: versão {version} promovida para @production")


def start_mlflow_ui(settings: Settings, echo: Echo) -> subprocess.Popen[bytes] | None:
    """The MLflow UI over the embedded store (a lean server: one worker, no job runner)."""
    if not port_free("127.0.0.1", MLFLOW_UI_PORT):
        echo(f"porta {MLFLOW_UI_PORT} ocupada: MLflow UI não iniciada")
        return None
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri"]
    command += [settings.tracking_uri, "--host", "127.0.0.1", "--port", str(MLFLOW_UI_PORT)]
    return subprocess.Popen(
        [*command, "--workers", "1"],
        env=os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def announce(
    settings: Settings,
    base: str,
    dashboard: bool,
    mlflow_url: str | None,
    api_token: str,
    echo: Echo,
) -> None:
    echo("")
    echo(f"API:        {base}   (documentação: {base}/docs)")
    if dashboard:
        echo(f"Dashboard:  http://127.0.0.1:{settings.DASHBOARD_PORT}")
    if mlflow_url:
        echo(f"MLflow:     {mlflow_url}")
    echo(f"token:      {api_token}   (guardado em {settings.DATA_DIR / 'api-token'})")
    echo(f"exemplo:    curl -H 'Authorization: Bearer {api_token}' {base}/predict/alunos")


def start_dashboard(
    settings: Settings, cli: list[str], api_url: str, token: str, echo: Echo
) -> subprocess.Popen[bytes] | None:
    """The Streamlit dashboard, reading the API just started (its own token as a client)."""
    if not port_free(settings.DASHBOARD_HOST, settings.DASHBOARD_PORT):
        echo(f"porta {settings.DASHBOARD_PORT} ocupada: dashboard não iniciado")
        return None
    return subprocess.Popen(
        [*cli, "dashboard"],
        env=os.environ | {"API_URL": api_url, "API_TOKEN": token},
        stdout=subprocess.DEVNULL,
    )


def first_monitoring_pass(settings: Settings, base: str, token: str, echo: Echo) -> None:
    """Score the newest cycle's roster once (what the dashboard's Alunos page asks for) and run
    the monitoring job once, so the Monitoramento page has a first point instead of nothing."""
    from passos_magicos.monitoring.job import MonitorError, run_monitor

    request = urllib.request.Request(  # noqa: S310 - the API we just started
        f"{base}/predict/alunos", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            response.read()
        report = run_monitor(settings.model_copy(update={"API_URL": base}), echo=lambda _line: None)
    except (OSError, MonitorError) as exc:
        echo(f"aviso: primeira execução do monitoramento não concluída ({exc})")
        return
    seen = report["log"]["previsoes_na_janela"]
    echo(f"monitoramento: primeira execução {report['status']} ({seen} previsões)")


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM (a container stop, `kill`) ends the run like Ctrl-C, so the children it started
    are stopped too instead of being left behind."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_everything(settings: Settings, data_uris: list[str], echo: Echo) -> int:
    with stop_on_sigterm():
        return _run_everything(settings, data_uris, echo)


def _run_everything(settings: Settings, data_uris: list[str], echo: Echo) -> int:
    api_token = os.environ.get("API_TOKENS") or local_secret(settings.DATA_DIR / "api-token")
    admin_token = os.environ.get("ADMIN_RELOAD_TOKEN") or local_secret(
        settings.DATA_DIR / "admin-token"
    )
    outcome = run_training(
        settings,
        data_uris,
        echo=echo,
        on_loaded=lambda dataset, tick: realised_stage(settings, dataset, tick),
    )
    promote_first_run(settings, outcome.version, echo)

    children: list[subprocess.Popen[bytes]] = []
    cli = [sys.executable, "-m", "passos_magicos.cli"]
    mlflow_url = settings.MLFLOW_TRACKING_URI
    if settings.MLFLOW_ENABLED and mlflow_url is None:
        ui = start_mlflow_ui(settings, echo)
        if ui is not None:
            children.append(ui)
            mlflow_url = f"http://127.0.0.1:{MLFLOW_UI_PORT}"
    host, port = settings.API_HOST, settings.API_PORT
    if not port_free(host if host != "0.0.0.0" else "127.0.0.1", port):  # noqa: S104
        echo(f"erro: a porta {port} já está em uso; defina API_PORT")
        return 1
    api = subprocess.Popen(
        [*cli, "serve"],
        env=os.environ | {"API_TOKENS": api_token, "ADMIN_RELOAD_TOKEN": admin_token},
    )
    children.append(api)
    base = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"  # noqa: S104
    try:
        if not wait_ready(f"{base}/ready", 120, api):
            echo("erro: a API não ficou pronta; veja as mensagens acima")
            return 1
        if len(children) > 1 and not wait_ready(f"{mlflow_url}/health", 60, children[0]):
            echo("aviso: a UI do MLflow ainda não respondeu")
        first_monitoring_pass(settings, base, api_token.split(",")[0], echo)
        dashboard = start_dashboard(settings, cli, base, api_token.split(",")[0], echo)
        if dashboard is not None:
            children.append(dashboard)
        announce(settings, base, dashboard is not None, mlflow_url, api_token, echo)
        echo("Ctrl-C encerra tudo.")
        api.wait()
        return api.returncode or 0
    except KeyboardInterrupt:
        echo("\nencerrando…")
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
