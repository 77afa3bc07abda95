"""The API's start-up threads begin only after the packages they import lazily are imported.

Two threads importing a package with internal import cycles at once can get it
half-initialised; seen in CI: the model fell back to the local copy (Alembic, imported by the
follow-ups migration and by MLflow at once) and student lookups answered 503 (SQLAlchemy's
ORM). A race is not reproducible on demand, so the test checks the order that prevents it, in
a fresh interpreter (nothing imported yet by other tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, sys, threading
from fastapi.testclient import TestClient
from passos_magicos.serving.app import create_app
from passos_magicos.settings import Settings

LAZY = ["sqlalchemy.orm", "alembic.command", "alembic.runtime.environment"]
seen = []
start = threading.Thread.start

def recording_start(self):
    if "blocking_portal" not in self.name:  # TestClient's own thread, which runs the lifespan
        seen.append([self.name, [m for m in LAZY if m not in sys.modules]])
    start(self)

root = sys.argv[1]
settings = Settings(
    DATA_DIR=f"{root}/data", MODELS_DIR=f"{root}/models",
    PREDICTION_LOG_PATH=f"{root}/logs/p.jsonl",
    MODEL_SOURCE="mlflow", MLFLOW_ENABLED=True, MLFLOW_TRACKING_URI=f"sqlite:///{root}/m.db",
    API_TOKENS="t",
)
app = create_app(settings)
print("before", json.dumps([m for m in LAZY if m in sys.modules]))
threading.Thread.start = recording_start
with TestClient(app):
    pass
print("threads", json.dumps(seen))
"""


def test_start_up_threads_begin_after_the_lazy_imports(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    # Creating the app imports none of them (the test would prove nothing otherwise).
    assert json.loads(lines["before"]) == []
    threads = json.loads(lines["threads"])
    names = {name for name, _ in threads}
    assert {"followups-migrate", "model-runtime", "feature-refresh"} <= names, names
    missing = {name: absent for name, absent in threads if absent}
    assert missing == {}, f"threads started before these imports finished: {missing}"
