"""Schemathesis against a live server: the OpenAPI document is the API's contract.

`st run` (the same CLI and config file as the README's longer run) against a real uvicorn server,
with the API, team and admin tokens, so that the secured operations are exercised past their
401/403. Every built-in check is on — among them not_a_server_error,
status_code_conformance, content_type_conformance, response_headers_conformance,
response_schema_conformance, negative_data_rejection, positive_data_acceptance, ignored_auth
and unsupported_method — and the run must report zero failures.

Two runs: a fixed seed (the same cases every time: a failure here is a regression) and a random
one (new cases on every CI run), whose seed the failure message prints so that it can be
replayed with `--seed`."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving.conftest import ADMIN_TOKEN, API_TOKEN, LiveServer, settings_for

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).with_name("schemathesis.toml")
TEAM_TOKEN = "token-equipe-fuzz"
FIXED_SEED = 20_260_101
EXAMPLES = 12  # per operation and phase; the README's run by hand uses more
TIMEOUT = 100  # seconds per run, a bound far above its usual time (see the README)
OPERATIONS = 30  # every operation of the contract is in the document


@pytest.fixture(scope="module")
def live(served_root: Path) -> Iterator[LiveServer]:
    settings = settings_for(
        served_root,
        BATCH_LIMIT=50,  # keeps fuzzed batches (and the prediction log) small
        TEAM_TOKENS=f"equipe-fuzz:{TEAM_TOKEN}",
        # Stores of its own: the fuzzer's follow-ups and alerts stay out of the other tests' way.
        FOLLOWUPS_STORE_URL=f"sqlite:///{served_root / 'logs' / 'fuzz-followups.db'}",
        MONITORING_STORE_URL=f"sqlite:///{served_root / 'logs' / 'fuzz-monitoring.db'}",
    )
    with LiveServer(settings) as server:
        yield server


def schemathesis(url: str, seed: int) -> subprocess.CompletedProcess[str]:
    st = Path(sys.executable).with_name("st")
    command = [
        str(st),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{url}/openapi.json",
        "--seed",
        str(seed),
        "--max-examples",
        str(EXAMPLES),
        # One worker: with two, schemathesis's own threads hit a CPython 3.11 AST thread-safety
        # bug ("AST constructor recursion depth mismatch") that fails the run client-side.
        "--workers",
        "1",
        "--generation-database",
        "none",
    ]
    tokens = {"ST_API_TOKEN": API_TOKEN, "ST_TEAM_TOKEN": TEAM_TOKEN, "ST_ADMIN_TOKEN": ADMIN_TOKEN}
    return subprocess.run(
        command,
        env={**os.environ, **tokens},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def summary(output: str) -> tuple[int, int, str]:
    """(test cases generated, unique failures, "selected/total operations") from the summary."""
    cases = re.search(r"(\d+) generated", output)
    failures = re.search(r"found (\d+) unique failures?", output)
    selected = re.search(r"Selected: (\d+/\d+)", output)
    return (
        int(cases.group(1)) if cases else 0,
        int(failures.group(1)) if failures else 0,
        selected.group(1) if selected else "?",
    )


def report(output: str, limit: int = 8000) -> str:
    """The failures (each with a curl to reproduce), errors and the summary, bounded."""
    lines = [line[:400] for line in output.splitlines()]  # a fuzzed URL can be huge
    start = next((i for i, line in enumerate(lines) if re.match(r"=+ (FAILURES|ERRORS)", line)), 0)
    text = "\n".join(lines[start:])
    return text if len(text) <= limit else f"{text[: limit // 2]}\n[...]\n{text[-limit // 2 :]}"


@pytest.mark.parametrize("seed", ["fixed", "random"])
def test_schemathesis_finds_no_failure(live: LiveServer, seed: str) -> None:
    value = FIXED_SEED if seed == "fixed" else random.SystemRandom().randrange(2**31)
    started = time.monotonic()
    result = schemathesis(live.url, value)
    took = time.monotonic() - started
    cases, failures, selected = summary(result.stdout)
    replay = (
        f"schemathesis, {seed} seed {value}: {failures} failures in {cases} cases. Replay against "
        "a server started as in the README ('Contrato (OpenAPI) e schemathesis'), same seed: "
        f"st --config-file tests/serving/schemathesis.toml run <url>/openapi.json --seed {value} "
        f"--max-examples {EXAMPLES}"
    )
    tail = report(result.stdout)
    assert result.returncode == 0 and failures == 0, f"{replay}\n{tail}\n{result.stderr[-2000:]}"
    total = int(selected.split("/")[-1]) if "/" in selected else 0
    assert selected == f"{total}/{total}" and total >= OPERATIONS, f"{replay}\n{tail}"
    assert cases > 20 * total, f"{replay}: too few cases\n{tail}"  # the run really ran
    print(f"{replay.split('. Replay', maxsplit=1)[0]}, {selected} operations, {took:.1f} s")
