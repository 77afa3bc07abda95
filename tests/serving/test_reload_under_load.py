"""Reloading the model under load: concurrent clients see zero failed requests through 20
reloads, and each answer comes entirely from one model version."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import (
    ADMIN,
    AUTH,
    RECORD,
    LiveServer,
    publish_local_model,
    settings_for,
)

pytestmark = pytest.mark.slow
RELOADS = 20
CLIENTS = 4


def test_zero_failed_requests_through_20_reloads(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    publish_local_model(settings, "1", "logistic_regression", seed=5)
    stop = threading.Event()
    outcomes: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    lock = threading.Lock()

    def hammer(url: str) -> None:
        with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.post("/predict", json=RECORD)
                    status = str(response.status_code)
                    version = response.json()["modelo"]["versao"] if response.is_success else ""
                except httpx.HTTPError as exc:
                    status, version = type(exc).__name__, ""
                with lock:
                    outcomes[status] += 1
                    if version:
                        versions[version] += 1

    with LiveServer(settings) as server:
        workers = [threading.Thread(target=hammer, args=(server.url,)) for _ in range(CLIENTS)]
        for worker in workers:
            worker.start()
        with httpx.Client(base_url=server.url, headers=ADMIN, timeout=60) as admin:
            for reload in range(RELOADS):
                # A new version lands in the local folder, then the API is told to reload.
                publish_local_model(
                    settings, str(2 + reload % 2), "logistic_regression", seed=6 + reload % 2
                )
                response = admin.post("/admin/reload-model")
                assert response.status_code == 200, response.text
                assert response.json()["versao"] == str(2 + reload % 2)
        stop.set()
        for worker in workers:
            worker.join(timeout=30)

    assert set(outcomes) == {"200"}, outcomes
    assert outcomes["200"] > 100  # the load was real
    assert {"2", "3"} <= set(versions)  # answers came from the reloaded versions
