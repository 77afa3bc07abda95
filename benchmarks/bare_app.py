"""The framework's limit: a FastAPI app whose `POST /predict` validates the same request body as
the API (`RegistroAluno`) and answers a constant, served by uvicorn exactly like
`passos-magicos serve` (factory, default loop/http implementation, access log off).

Used by `bench_serving.py`; run by hand with `python benchmarks/bare_app.py --port 8001`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Response

from passos_magicos.serving.schemas import RegistroAluno

# Pre-encoded so that the answer costs nothing: what is left is routing, body parsing and
# validation, i.e. the floor any endpoint taking this body pays.
CONSTANT = b'{"probabilidade_pv":0.5,"pv_previsto":false}'


def create_app() -> FastAPI:
    app = FastAPI(title="bare", openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/predict")
    async def predict(body: RegistroAluno) -> Response:
        return Response(CONSTANT, media_type="application/json")

    @app.get("/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # Same call shape as `passos-magicos serve`: factory, no access log.
    uvicorn.run(
        "bare_app:create_app",
        factory=True,
        app_dir=str(Path(__file__).resolve().parent),
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
