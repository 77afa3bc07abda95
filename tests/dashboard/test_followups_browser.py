"""The follow-up form in a real browser (system Chromium via Playwright), against a running
API and a running `passos-magicos dashboard` with DASHBOARD_TEAM_TOKEN.

On Alunos, "só sinalizados sem acompanhamento" picks a flagged student with no follow-up; the
form is filled in and submitted; the count of flagged students without a follow-up goes down
by one and the record exists in the API with the team token's name as author. Then the
student is chosen again from the whole list, the record is on their page (the status form
offers it) and its status is changed through that form."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.dashboard.conftest import TEAM_NAME, LiveApi
from tests.dashboard.test_browser import _open, _settled, _shot

pytestmark = pytest.mark.slow
MISSING = re.compile(r"(\d+) de (\d+) sinalizados sem acompanhamento")
ONLY_MISSING = "Só sinalizados sem acompanhamento"
ROWS = (
    "([op, n]) => { const grid = document.querySelector("
    '\'[data-testid="stDataFrame"] [role="grid"]\');'
    " if (!grid) return false; const rows = Number(grid.getAttribute('aria-rowcount'));"
    " return op === 'le' ? rows <= n : rows > n; }"
)


def _missing(page: Any) -> int:
    match = MISSING.search(page.get_by_text(MISSING).inner_text())
    assert match
    return int(match.group(1))


def _student(page: Any) -> str:
    heading = page.get_by_role("heading", name=re.compile(r"^Aluno "))
    text: str = heading.first.inner_text()
    return text.rsplit(maxsplit=1)[-1]


def _choose(page: Any, scope: Any, label: str, option: Any) -> None:
    """Open a select and pick `option` (retried: a rerun can close the popup)."""
    box = scope.get_by_role("combobox", name=label)
    wanted = page.get_by_role("option", name=option, exact=isinstance(option, str)).first
    for _ in range(5):
        box.click()
        try:
            wanted.wait_for(timeout=3000)
        except PlaywrightTimeoutError:  # the popup closed under a rerun: try again
            page.keyboard.press("Escape")
            continue
        wanted.click()
        return
    raise AssertionError(f"a opção {option!r} de {label!r} não apareceu")


def test_follow_up_form_in_a_real_browser(
    browser: Any, dashboard_url: str, live_api: LiveApi
) -> None:
    read = {"X-API-Token": live_api.token}
    page = _open(browser, f"{dashboard_url}/?pagina=alunos")
    page.get_by_text(MISSING).wait_for()
    _settled(page)
    missing = _missing(page)
    assert missing > 0

    page.get_by_text(ONLY_MISSING).click()
    page.wait_for_function(ROWS, arg=["le", missing + 1])  # the header is a row too
    _settled(page)
    aluno_id = _student(page)
    url = f"{live_api.url}/alunos/{aluno_id}/acompanhamentos"
    assert httpx.get(f"{live_api.url}/predict/aluno/{aluno_id}", headers=read).json()["pv_previsto"]
    before = httpx.get(url, headers=read, timeout=30).json()["itens"]

    form = page.locator('[data-testid="stForm"]').filter(has_text="Registrar um acompanhamento")
    _choose(page, form, "Tipo", "reforço escolar")
    _choose(page, form, "Status", "em andamento")
    form.get_by_role("button", name="Registrar acompanhamento").click()
    page.get_by_text(f"Acompanhamento registrado para {aluno_id}: reforço escolar").wait_for()
    _settled(page)
    assert _missing(page) == missing - 1

    after = httpx.get(url, headers=read, timeout=30).json()["itens"]
    [new] = [r for r in after if r["id"] not in {b["id"] for b in before}]
    assert (new["tipo"], new["status"], new["autor"]) == (
        "reforço escolar",
        "em_andamento",
        TEAM_NAME,
    )

    # Back to the whole list, the same student: the record is on their page.
    page.get_by_text(ONLY_MISSING).click()
    page.wait_for_function(ROWS, arg=["gt", missing + 1])
    _settled(page)
    chooser = page.get_by_role("combobox", name="Ver um aluno")
    chooser.click()
    chooser.fill(aluno_id)
    page.get_by_role("option", name=aluno_id, exact=True).click()
    page.get_by_role("heading", name=f"Aluno {aluno_id}").wait_for()
    _settled(page)
    status = page.locator('[data-testid="stForm"]').filter(has_text="Mudar o status")
    _choose(page, status, "Acompanhamento", re.compile(r"^reforço escolar — .*\(em andamento\)$"))
    _choose(page, status, "Novo status", "concluído")
    status.get_by_role("button", name="Mudar status").click()
    page.get_by_text(f"Status atualizado para {aluno_id}: reforço escolar").wait_for()
    _settled(page)
    changed = next(
        r for r in httpx.get(url, headers=read, timeout=30).json()["itens"] if r["id"] == new["id"]
    )
    assert changed["status"] == "concluido" and changed["atualizado_por"] == TEAM_NAME
    _shot(page, "acompanhamentos")
    page.close()
