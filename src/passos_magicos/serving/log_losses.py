"""Prediction-log lines this process could not write, shared with every replica.

When the log's volume is full (or fails), predictions are still served and their lines are
lost. `LossCounter.add` (called by `PredictionLog.on_loss`, on the request path) only bumps a
counter; a background thread writes the running count to the monitoring store
(`AlertHistory.save_log_losses`, one row per process), retrying while the store is unreachable.
`GET /metrics` on any replica and the monitoring job read the sum of every process's rows.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from typing import Final

from passos_magicos.alerts.history import AlertHistory, now_iso

logger = logging.getLogger(__name__)

RETRY_SECONDS: Final = (1.0, 2.0, 5.0, 10.0, 30.0)  # while the store is unreachable
COALESCE_SECONDS: Final = 0.2  # a burst of failed appends is written once


class LossCounter:
    def __init__(self, history: AlertHistory) -> None:
        self.history = history
        self.origin = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._lost = 0
        self._saved = 0  # the count the store holds for this process
        self._first_at: str | None = None
        self._last_at: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    @property
    def lost(self) -> int:
        """Lines this process lost."""
        return self._lost

    def add(self, lines: int) -> None:
        """Count `lines` lost now (cheap: called while answering a request)."""
        if lines <= 0:
            return
        moment = now_iso()
        with self._lock:
            self._lost += lines
            self._first_at = self._first_at or moment
            self._last_at = moment
        self._wake.set()

    def flush(self) -> bool:
        """Write this process's count to the store if it changed; False if that failed."""
        with self._lock:
            lost, first_at, last_at = self._lost, self._first_at, self._last_at
        if lost == self._saved or first_at is None or last_at is None:
            return True
        try:
            self.history.save_log_losses(self.origin, lost, first_at, last_at)
        except Exception as exc:  # store unreachable or its disk full too: retry later
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            return False
        self._saved = lost
        self.last_error = None
        return True

    def total(self) -> int:
        """Lines lost by every process (the store), plus what this one has not written yet;
        only this process's count when the store cannot be read."""
        unsaved = self._lost - self._saved
        try:
            return self.history.log_losses().total + unsaved
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            return self._lost

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="log-losses", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            self._stop.wait(COALESCE_SECONDS)
            self._wake.clear()
            if self.flush():
                failures = 0
                continue
            delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
            failures += 1
            logger.warning(
                "linhas perdidas do log não registradas no histórico (%s); nova tentativa em "
                "%.0f s",
                self.last_error,
                delay,
            )
            if self._stop.wait(delay):
                return
            self._wake.set()
