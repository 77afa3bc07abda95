# syntax=docker/dockerfile:1.7
# Images of Passos Mágicos — Ponto de Virada (one build context, three targets):
#
#   docker build --target api    -t passos-magicos-api .     # FastAPI: base + `serve` extra only
#   docker build --target jobs   -t passos-magicos-jobs .    # train, monitor, promote, …: base +
#                                                            #   `train` + `serve` extras
#   docker build --target mlflow -t passos-magicos-mlflow .  # `mlflow server` (the jobs venv:
#                                                            #   full MLflow, psycopg2, boto3)
#
# Dependencies come from uv.lock (`uv sync --frozen`), so every image has the exact versions CI
# tested. The builder stages are what tests/deploy/test_images.py replays outside Docker (same
# commands, same flags) before it runs each target's ENTRYPOINT/CMD and HEALTHCHECK.

# ---------------------------------------------------------------------------------------------
# Builder: uv, the lock and the sources. Nothing from here reaches a runtime image but /opt/venv.
FROM python:3.11-slim-bookworm AS build-base
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
COPY pyproject.toml uv.lock ./

# The API: base dependencies + `serve` (no MLflow server, no matplotlib, no training extras).
# First the dependencies alone (a layer that survives source changes), then the project itself,
# installed as a wheel (--no-editable): the runtime image has no /src.
FROM build-base AS build-api
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project --extra serve
COPY README.md LICENSE ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --extra serve

# The jobs (training, monitoring, registry commands) and the MLflow server: everything but dev.
FROM build-base AS build-jobs
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project --extra train --extra serve
COPY README.md LICENSE ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --extra train --extra serve

# ---------------------------------------------------------------------------------------------
# Runtime base: the same slim Python (the venv's interpreter path must exist), a fixed non-root
# user, and the writable folders the settings point at (volumes in Compose, PVCs in Kubernetes).
FROM python:3.11-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/app \
    DATA_DIR=/app/data \
    MODELS_DIR=/app/models \
    PREDICTION_LOG_PATH=/app/logs/predictions.jsonl \
    MONITOR_REPORT_DIR=/app/logs/monitoring \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true
RUN groupadd --system --gid 10001 passos \
    && useradd --system --uid 10001 --gid passos --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin passos \
    && mkdir -p /app/data /app/models /app/logs \
    && chown -R 10001:10001 /app
WORKDIR /app
VOLUME ["/app/data", "/app/models", "/app/logs"]

# ---------------------------------------------------------------------------------------------
FROM runtime AS api
COPY --from=build-api /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8000
# Readiness, not liveness: 200 only once a model is loaded (503 before), so `depends_on:
# service_healthy` waits for a serving API. No curl in slim images: Python's urllib.
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4)"]
ENTRYPOINT ["passos-magicos"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

# ---------------------------------------------------------------------------------------------
FROM runtime AS jobs
# matplotlib (training plots) needs a writable config folder and no display.
ENV MPLCONFIGDIR=/tmp/matplotlib \
    MPLBACKEND=Agg
COPY --from=build-jobs /opt/venv /opt/venv
# Compose helpers: the one-shot trainer (train, then promote on the first run) and the bucket
# creation of the S3-compatible store.
COPY --chmod=0755 docker/train-and-promote.sh /usr/local/bin/train-and-promote
COPY --chmod=0644 docker/create_buckets.py /usr/local/lib/passos-magicos/create_buckets.py
USER 10001:10001
ENTRYPOINT ["passos-magicos"]
CMD ["train"]

# ---------------------------------------------------------------------------------------------
# The official MLflow image has neither psycopg2 nor boto3: this one is the jobs venv (the exact
# MLflow version the project logs with) running `mlflow server`.
FROM runtime AS mlflow
COPY --from=build-jobs /opt/venv /opt/venv
ENV MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
USER 10001:10001
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4)"]
ENTRYPOINT ["mlflow"]
CMD ["server", "--host", "0.0.0.0", "--port", "5000", "--workers", "1"]
