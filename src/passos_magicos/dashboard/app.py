"""Painel Ponto de Virada: Streamlit, in Portuguese, for the pedagogic team.

`streamlit run app.py` (or `passos-magicos dashboard`). One script, six pages chosen in the
sidebar (or `?pagina=alunos` in the address, so that links from Slack land on the right page).
It reads everything through the API; API down or slow → a friendly message and a retry button.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

# `streamlit run` executes this file as a script: make the package importable from a checkout.
_SRC = Path(__file__).resolve().parents[2]
if str(_SRC) not in sys.path and (_SRC / "passos_magicos").is_dir():
    sys.path.insert(0, str(_SRC))

import streamlit as st  # noqa: E402

from passos_magicos.dashboard import equity, pages  # noqa: E402
from passos_magicos.dashboard.client import ApiClient, ApiError, ApiUnavailableError  # noqa: E402

PAGES: dict[str, tuple[str, Callable[[ApiClient], None]]] = {
    "visao-geral": ("Visão geral", pages.overview),
    "alunos": ("Alunos", pages.students),
    "desempenho": ("Como o modelo se saiu", pages.results),
    "monitoramento": ("Monitoramento", pages.monitoring),
    "modelos": ("Modelos", pages.models),
    "equidade": ("Equidade", equity.page),
}


def client() -> ApiClient:
    from passos_magicos.settings import Settings

    settings = Settings()
    return ApiClient(
        settings.API_URL,
        settings.api_client_token,
        settings.DASHBOARD_API_TIMEOUT,
        team_token=settings.dashboard_team_token,
    )


def main() -> None:
    st.set_page_config(page_title="Ponto de Virada — Passos Mágicos", layout="wide")
    keys = list(PAGES)
    wanted = st.query_params.get("pagina", keys[0])
    with st.sidebar:
        st.title("Ponto de Virada")
        st.caption("Associação Passos Mágicos")
        choice = st.radio(
            "Página",
            keys,
            index=keys.index(wanted) if wanted in keys else 0,
            format_func=lambda key: PAGES[key][0],
            key="pagina",
        )
    st.query_params["pagina"] = choice
    title, render = PAGES[choice]
    st.header(title)
    try:
        render(client())
    except (ApiUnavailableError, ApiError) as exc:
        st.error(f"{exc} Os dados não puderam ser carregados agora.")
        if st.button("Tentar de novo", type="primary"):
            st.cache_data.clear()
            st.rerun()


main()
