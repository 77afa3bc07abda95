#!/usr/bin/env bash
# Creates benchmarks/.venv-evidently (Python 3.11, uv) with the pinned requirements.txt of this
# folder. Only the benchmark uses it (drift_flags.py runs there as a subprocess): the product's
# .venv never gets Evidently.
#
# Idempotent: the sha256 of requirements.txt and of this script (plus the Python version) is kept
# in a marker file inside the venv; a second run with nothing changed only checks it and exits.
# Usage: benchmarks/evidently/setup_env.sh [--force]    (--force rebuilds the venv from scratch)
# Prints the venv's Python path on the last line of stdout, e.g. for $(... | tail -n1).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH_DIR="$(dirname "$HERE")"
VENV="${EVIDENTLY_VENV:-$BENCH_DIR/.venv-evidently}"
REQS="$HERE/requirements.txt"
MARKER="$VENV/.requirements.sha256"
PYTHON_VERSION="3.11"

log() { printf '[evidently-env] %s\n' "$*" >&2; }
die() {
    printf '[evidently-env] ERRO: %s\n' "$*" >&2
    exit 1
}
on_error() {
    local status=$?
    printf '[evidently-env] ERRO: falhou (código %d) na linha %s: %s\n' \
        "$status" "$1" "$2" >&2
    printf '[evidently-env] O ambiente %s ficou incompleto; rode de novo (ou com --force).\n' \
        "$VENV" >&2
    exit "$status"
}
trap 'on_error "$LINENO" "$BASH_COMMAND"' ERR

force=0
case "${1:-}" in
    "") ;;
    --force) force=1 ;;
    -h | --help)
        sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "argumento desconhecido: $1 (use --force ou --help)" ;;
esac

[ -f "$REQS" ] || die "não encontrei $REQS"

# uv from PATH, else the `uv` Python package (as the Makefile does).
if command -v uv >/dev/null 2>&1; then
    UV=(uv)
elif python3 -m uv --version >/dev/null 2>&1; then
    UV=(python3 -m uv)
else
    die "uv não encontrado: instale com 'python3 -m pip install uv' (ou rode 'make setup' antes)"
fi
# Use the machine's python3.11; never download a Python build.
export UV_PYTHON_DOWNLOADS="${UV_PYTHON_DOWNLOADS:-never}"

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        shasum -a 256 "$1" | cut -d' ' -f1
    fi
}
# The recipe (this script) is part of the marker too: changing how the env is built rebuilds it.
script_hash="$(sha256_of "${BASH_SOURCE[0]}")"
want="python=$PYTHON_VERSION requirements=$(sha256_of "$REQS") setup=$script_hash"

if [ "$force" -eq 0 ] && [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$want" ] \
    && [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    log "já pronto: $VENV (nada mudou)"
    printf '%s\n' "$VENV/bin/python"
    exit 0
fi

started=$SECONDS
if [ "$force" -eq 1 ] || [ ! -x "$VENV/bin/python" ] \
    || ! "$VENV/bin/python" -c "import sys; assert sys.version_info[:2] == (3, 11)" 2>/dev/null; then
    log "criando $VENV com Python $PYTHON_VERSION…"
    "${UV[@]}" venv --clear --quiet --python "$PYTHON_VERSION" "$VENV" \
        || die "'uv venv --python $PYTHON_VERSION' falhou: é preciso um python3.11 na máquina"
else
    log "atualizando $VENV (requirements.txt ou setup_env.sh mudou)"
fi
rm -f "$MARKER"

log "instalando $(grep -oE '^[A-Za-z0-9._-]+==' "$REQS" | sort -u | wc -l | tr -d ' ') pacotes fixados de $REQS…"
# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as on this machine) nothing would cache
# the .pyc files and every `import evidently` would recompile ~20 s of sources.
"${UV[@]}" pip sync --quiet --compile-bytecode --python "$VENV/bin/python" "$REQS" \
    || die "'uv pip sync' falhou (sem acesso ao PyPI? versão fixada indisponível?)"

log "verificando os imports…"
version="$("$VENV/bin/python" -c '
import pandas, pyarrow, evidently
from evidently import Report
from evidently.presets import DataDriftPreset
print(evidently.__version__)
')" || die "o ambiente foi criado mas 'import evidently' falhou"

printf '%s\n' "$want" >"$MARKER"
log "pronto em $((SECONDS - started)) s: evidently $version em $VENV"
printf '%s\n' "$VENV/bin/python"
