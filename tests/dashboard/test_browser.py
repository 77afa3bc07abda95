"""Every page of the dashboard in a real browser (system Chromium via Playwright), against a
running API and a running `passos-magicos dashboard`; a screenshot of each page goes to
build/screenshots/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
pytestmark = pytest.mark.slow


def _open(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(url)
    return page


def _settled(page: Any) -> None:
    """Streamlit has finished the script run: no spinner, the app is not running."""
    page.wait_for_selector('[data-testid="stSpinner"]', state="detached")
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !/Running|Executando/.test(document.querySelector("
        "'[data-testid=\"stStatusWidget\"]').innerText)"
    )


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def test_every_page_in_a_real_browser(browser: Any, dashboard_url: str) -> None:
    page = _open(browser, f"{dashboard_url}/?pagina=visao-geral")
    page.get_by_text("Modelo em produção").wait_for()
    page.locator('[data-testid="stMetricValue"]', has_text="v1").wait_for()
    page.get_by_text("O modelo é melhor do que regras simples?").wait_for()
    page.get_by_text(re.compile(r"No ano mais recente que dá para conferir")).wait_for()
    page.locator('[data-testid="stDataFrame"]').first.wait_for()  # model vs baselines
    page.get_by_text("Última verificação").wait_for()
    _settled(page)
    _shot(page, "visao-geral")

    page.goto(f"{dashboard_url}/?pagina=alunos")
    page.get_by_text(re.compile(r"\d+ alunos do ciclo \d{4}")).wait_for()
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.wait_for()
    rows = int(grid.locator('[role="grid"]').first.get_attribute("aria-rowcount") or 0)
    assert rows > 100, f"a lista de alunos deveria ter linhas, tem {rows}"
    page.get_by_text("O que mais pesou").wait_for()
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()  # indicators over cycles
    _settled(page)
    _shot(page, "alunos")

    page.goto(f"{dashboard_url}/?pagina=desempenho")
    page.get_by_text("A lista de 2022 ao lado de quem atingiu o PV em 2023").wait_for()
    page.get_by_text("Dentro do esperado.").wait_for()
    page.locator('[data-testid="stDataFrame"]').first.wait_for()  # the list
    page.locator('[data-testid="stTable"]').nth(1).wait_for()  # realised, then expected
    _settled(page)
    _shot(page, "desempenho")

    page.goto(f"{dashboard_url}/?pagina=monitoramento")
    page.get_by_text("Drift por feature (PSI)").wait_for()
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
    _settled(page)
    _shot(page, "monitoramento")

    page.goto(f"{dashboard_url}/?pagina=modelos")
    page.get_by_text(re.compile(r"Em uso agora: v1")).wait_for()
    page.locator('[data-testid="stDataFrame"]').first.wait_for()
    page.get_by_text("Backtest: como o modelo em uso teria se saído em cada ano").wait_for()
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    charts.nth(3).wait_for()  # ROC-AUC per year, PV rates, estimated × realised, reliability
    _settled(page)
    _shot(page, "modelos")
    page.close()
