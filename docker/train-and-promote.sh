#!/bin/sh
# The one-shot `trainer` of the Compose stack (installed in the jobs image as
# /usr/local/bin/train-and-promote):
#
#   1. `passos-magicos train`: train, evaluate, register in MLflow; the new version gets
#      @staging only if it passes the quality gate;
#   2. on the first run only (no version in @production yet), `passos-magicos promote` puts that
#      @staging version in @production, so that the API has a model to serve. Later runs leave
#      @production alone: promoting is a person's decision (`passos-magicos promote`).
#
# Exits non-zero when training fails, or when the first run has nothing that passed the gate:
# the API (depends_on: service_completed_successfully) then does not start without a model.
# Arguments go to `train` (e.g. --model random_forest, --data s3://pede/arquivo.csv).
set -eu

passos-magicos train "$@"

versions="$(passos-magicos models --json)"
if printf '%s' "$versions" | python -c '
import json, sys
rows = json.load(sys.stdin)["versoes"]
sys.exit(0 if any("production" in row["aliases"] for row in rows) else 1)
'; then
    echo "já existe uma versão em @production: nada promovido (use passos-magicos promote)" >&2
else
    echo "primeira execução: promovendo a versão em @staging para @production" >&2
    passos-magicos promote
fi
