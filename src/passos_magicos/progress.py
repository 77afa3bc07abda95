"""Progress and per-stage timings for long jobs, printed to stderr (stdout stays for results)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Echo = Callable[[str], None]


def stderr_echo(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class StageTimer:
    """`with timer.stage("cv", "Validação cruzada") as tick:` prints `[3/7] …` and the time."""

    def __init__(self, total: int, echo: Echo = stderr_echo) -> None:
        self.total = total
        self.echo = echo
        self.timings: dict[str, float] = {}
        self._index = 0

    @contextmanager
    def stage(self, key: str, label: str) -> Iterator[Echo]:
        self._index += 1
        self.echo(f"[{self._index}/{self.total}] {label}…")
        start = time.perf_counter()

        def tick(message: str) -> None:
            self.echo(f"      {message}")

        yield tick
        elapsed = time.perf_counter() - start
        self.timings[key] = elapsed
        self.echo(f"      ok em {elapsed:.1f} s")

    @property
    def total_seconds(self) -> float:
        return sum(self.timings.values())
