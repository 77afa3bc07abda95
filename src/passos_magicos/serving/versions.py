"""The registry's versions of the served model, read without ever blocking or failing the API.

Registry calls block (HTTP to the MLflow server, or the embedded SQLite store) and a dead server
can hang them for tens of seconds. Each read runs in its own daemon thread (a stuck one never
delays shutdown), the request waits at most `timeout` seconds, at most `max_in_flight` reads run
at once, and the last answer (or failure) is reused for `ttl` seconds so that a dashboard
refreshing its pages does not hammer a slow server.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from passos_magicos.settings import Settings

if TYPE_CHECKING:
    from passos_magicos.registry import VersionRow

REGISTRY_TIMEOUT_SECONDS: Final = 5.0
REGISTRY_CACHE_SECONDS: Final = 10.0
MAX_IN_FLIGHT: Final = 2


class RegistryUnavailableError(RuntimeError):
    """The registry could not be read now; the message (pt-BR) says why."""


def read_versions(settings: Settings) -> list[VersionRow]:
    """What `passos-magicos models` lists: every version of MLFLOW_MODEL_NAME."""
    from passos_magicos import registry

    client = registry.client_for(settings)  # read from the API's threads: no global state
    return registry.list_versions(client, settings.MLFLOW_MODEL_NAME)


@dataclass(frozen=True)
class _Answer:
    at: float
    rows: list[VersionRow] | None
    error: str | None


class RegistryReader:
    def __init__(
        self,
        settings: Settings,
        *,
        timeout: float = REGISTRY_TIMEOUT_SECONDS,
        ttl: float = REGISTRY_CACHE_SECONDS,
        max_in_flight: int = MAX_IN_FLIGHT,
        read: Callable[[Settings], list[VersionRow]] = read_versions,
    ) -> None:
        self.settings = settings
        self.timeout = timeout
        self.ttl = ttl
        self._read = read
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._last: _Answer | None = None

    async def versions(self) -> list[VersionRow]:
        """The versions, newest first; RegistryUnavailableError when they cannot be read."""
        last = self._last
        if last is None or time.monotonic() - last.at > self.ttl:
            last = await self._fetch()
            self._last = last
        if last.rows is None:
            raise RegistryUnavailableError(last.error or "registry indisponível")
        return last.rows

    async def _fetch(self) -> _Answer:
        if not self._slots.acquire(blocking=False):
            return _Answer(
                time.monotonic(),
                None,
                "o registry do MLflow está lento: consultas anteriores ainda não terminaram",
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[VersionRow]] = loop.create_future()

        def settle(rows: list[VersionRow] | None, error: Exception | None) -> None:
            if future.done():  # the request gave up waiting
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(rows or [])

        def work() -> None:
            rows: list[VersionRow] | None = None
            error: Exception | None = None
            try:
                rows = self._read(self.settings)
            except Exception as exc:
                error = exc
            finally:
                self._slots.release()
            with contextlib.suppress(RuntimeError):  # the event loop is gone (app stopped)
                loop.call_soon_threadsafe(settle, rows, error)

        threading.Thread(target=work, name="registry-read", daemon=True).start()
        try:
            rows = await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            error = f"o registry do MLflow não respondeu em {self.timeout:g} s"
            return _Answer(time.monotonic(), None, error)
        except Exception as exc:  # unreachable server, missing model, bad credentials...
            detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            error = f"não foi possível ler o registry do MLflow: {detail}"[:500]
            return _Answer(time.monotonic(), None, error)
        return _Answer(time.monotonic(), rows, None)
