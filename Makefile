# Passos Mágicos — Ponto de Virada. `make run` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
CLI := $(VENV)/bin/passos-magicos
PY := $(VENV)/bin/python
# uv from PATH, else the `uv` Python package (installed by the first `make` that needs it).
UV := $(or $(shell command -v uv 2>/dev/null),python3 -m uv)
export UV_PYTHON_DOWNLOADS := never
# Installed packages as bytecode: this machine sets PYTHONDONTWRITEBYTECODE, so without it every
# process (CLI, job, test) would recompile pandas, sklearn and MLflow from source at import.
export UV_COMPILE_BYTECODE := 1
export MLFLOW_DISABLE_TELEMETRY := true
PEDE_DATA_DIR ?= $(abspath ../shared/data/pede)

.PHONY: help setup run train predict materialize api monitor dashboard test test-cov lint format bench docker-up docker-down clean

help: ## Lista os alvos
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv \
		|| python3 -m pip install --quiet --user uv \
		|| python3 -m pip install --quiet --break-system-packages uv
	$(UV) sync --frozen --all-extras --python python3.11
	@touch $@

setup: $(VENV)/.synced ## Cria o ambiente .venv com todas as dependências (uv.lock)

run: setup ## Job principal: treina, registra, promove na 1ª vez, materializa, sobe API e MLflow UI
	$(CLI) run

train: setup ## Treina com PEDE_DATA_PATH (ou dados sintéticos) e registra no MLflow
	$(CLI) train

predict: setup ## Pontua o ciclo mais recente com o modelo do alias de MLFLOW_MODEL_STAGE
	$(CLI) predict --output data/previsoes.csv

materialize: setup ## Grava o feature store offline e materializa o online
	$(CLI) materialize

api: setup ## API FastAPI em API_HOST:API_PORT (precisa de API_TOKENS para previsões)
	$(CLI) serve

monitor: setup ## Job de monitoramento (drift, distribuição de classes, alertas no Slack)
	$(CLI) monitor

dashboard: setup ## Dashboard Streamlit em DASHBOARD_PORT (8501), lendo a API em API_URL
	$(CLI) dashboard

test: setup ## Testes (sobe PostgreSQL; S3 e MLflow server sobem nos próprios testes)
	scripts/provision-services.sh
	PEDE_DATA_DIR="$(PEDE_DATA_DIR)" $(VENV)/bin/pytest

test-cov: setup ## Testes com cobertura (mínimo 90%)
	scripts/provision-services.sh
	PEDE_DATA_DIR="$(PEDE_DATA_DIR)" $(VENV)/bin/pytest --cov --cov-report=term --cov-fail-under=90

lint: setup ## ruff (lint e formato) e mypy estrito
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup ## Formata e corrige o que o ruff sabe corrigir
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup ## Benchmarks: treino, modelos e backtest, serving (wrk), monitoramento (+ Evidently), dashboard
	PEDE_DATA_DIR="$(PEDE_DATA_DIR)" $(PY) benchmarks/bench_train.py auto random_forest
	PEDE_DATA_DIR="$(PEDE_DATA_DIR)" $(PY) benchmarks/bench_models.py
	PEDE_DATA_DIR="$(PEDE_DATA_DIR)" $(PY) benchmarks/bench_backtest.py
	PEDE_DATA_DIR="$(PEDE_DATA_DIR)" $(PY) benchmarks/bench_design.py
	PEDE_DATA_DIR="$(PEDE_DATA_DIR)" $(PY) benchmarks/bench_serving.py
	benchmarks/evidently/setup_env.sh
	$(PY) benchmarks/bench_monitoring.py
	$(PY) benchmarks/bench_dashboard.py

# `docker compose` (the v2 plugin), never the old `docker-compose`: the file uses
# `depends_on: condition: service_completed_successfully`, which only v2 understands.
COMPOSE_CHECK = docker compose version >/dev/null 2>&1 || { \
	echo "erro: 'docker compose' (plugin Compose v2 do Docker) não encontrado; instale-o" \
		"(pacote docker-compose-plugin) e tente de novo" >&2; exit 1; }

docker-up: ## Stack Docker Compose: PostgreSQL, S3, MLflow :5000, treino, API :8000, dashboard :8501
	@$(COMPOSE_CHECK)
	docker compose up -d --build
	@echo "API: http://localhost:8000/docs  Dashboard: http://localhost:8501  MLflow: http://localhost:5000"
	@echo "token da API: API_TOKENS do .env (sem .env: dev-only-api-token, só para desenvolvimento)"

docker-down: ## Derruba a stack Docker Compose (mantém os volumes; apague-os com docker compose down -v)
	@$(COMPOSE_CHECK)
	docker compose down

clean: ## Apaga artefatos locais (data/, models/, mlruns/)
	rm -rf data models mlruns
