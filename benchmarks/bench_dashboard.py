"""Benchmark: time to first full render of each dashboard page with 1,200 students.

Builds the stack with the real CLI in a temporary folder (synthetic data for 1,200 students,
`train` without MLflow, `serve`, one `monitor` run, `dashboard`), then opens each page in the
system Chromium (Playwright) and times from navigation to the page's content being drawn and
Streamlit idle. "Frio" is the first visit after the dashboard starts (its cache empty: the API
calls are part of the time); "quente" is a second visit. Target: ≤ 2 s per page.

Usage: `make bench`, or `.venv/bin/python benchmarks/bench_dashboard.py`.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

TARGET_SECONDS = 2.0
STUDENTS = 1200
TOKEN = secrets.token_urlsafe(16)  # a throwaway token for this run
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Page → text that only appears once its content is drawn.
PAGES = {
    "visao-geral": "Modelo em produção",
    "alunos": "O que mais pesou",
    "desempenho": "O que se espera da lista atual",
    "monitoramento": "Histórico de alertas",
    "modelos": "Em uso agora",
}
CLI = str(Path(sys.executable).with_name("passos-magicos"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} não respondeu em {timeout:.0f} s")


@contextmanager
def process(command: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    with log.open("wb") as output:
        child = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


def render_seconds(browser: object, url: str, marker: str) -> float:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page.set_default_timeout(60_000)
    start = time.perf_counter()
    page.goto(url)
    page.get_by_text(marker).first.wait_for()
    page.wait_for_selector('[data-testid="stSpinner"]', state="detached")
    elapsed = time.perf_counter() - start
    page.close()
    return elapsed


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as name:
        tmp = Path(name)
        api_port, dash_port = free_port(), free_port()
        api = f"http://127.0.0.1:{api_port}"
        env = os.environ | {
            "DATA_DIR": str(tmp / "data"),
            "MODELS_DIR": str(tmp / "models"),
            "MLFLOW_ENABLED": "false",
            "MODEL_SOURCE": "local",
            "PREDICTION_LOG_PATH": str(tmp / "logs" / "predictions.jsonl"),
            "MONITOR_REPORT_DIR": str(tmp / "logs" / "monitoring"),
            "API_TOKENS": TOKEN,
            "API_TOKEN": TOKEN,
            "API_URL": api,
            "SLACK_WEBHOOK_URL": "",
        }
        data = tmp / "pede.csv"
        print(f"Preparando {STUDENTS} alunos sintéticos e treinando…", file=sys.stderr)
        steps = (
            ["data", "synth", "--students", str(STUDENTS), "--output", str(data)],
            ["train", "--data", str(data), "--model", "compact_logistic"],
        )
        for step in steps:
            subprocess.run([CLI, *step], env=env, check=True, capture_output=True, cwd=tmp)
        with process([CLI, "serve", "--port", str(api_port)], env, tmp / "api.log"):
            wait_http(f"{api}/ready")
            roster = httpx.get(f"{api}/predict/alunos", headers={"X-API-Token": TOKEN}, timeout=60)
            students = len(roster.json()["previsoes"])
            subprocess.run([CLI, "monitor"], env=env, check=True, capture_output=True, cwd=tmp)
            command = [CLI, "dashboard", "--port", str(dash_port)]
            with process(command, env, tmp / "dashboard.log"):
                wait_http(f"http://127.0.0.1:{dash_port}/_stcore/health")
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=CHROMIUM, args=CHROMIUM_ARGS
                    )
                    results = {}
                    for page, marker in PAGES.items():
                        url = f"http://127.0.0.1:{dash_port}/?pagina={page}"
                        cold = render_seconds(browser, url, marker)
                        warm = render_seconds(browser, url, marker)
                        results[page] = (cold, warm)
                    browser.close()
    print(f"\nPrimeira renderização completa de cada página ({students} alunos no ciclo):")
    for page, (cold, warm) in results.items():
        verdict = "OK" if cold <= TARGET_SECONDS else "NÃO ATINGIDA"
        print(f"  {page:<14} frio {cold:5.2f} s · quente {warm:5.2f} s   meta ≤ 2 s: {verdict}")


if __name__ == "__main__":
    main()
