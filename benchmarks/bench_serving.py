"""Benchmark: the same registered model served three ways, driven by wrk at the same concurrency.

1. this API's `POST /predict` (`passos-magicos serve`, 1 worker and, at 8 connections, 2);
2. `mlflow models serve --env-manager local` (`POST /invocations`);
3. `bare_app.py`: FastAPI validating the same body and answering a constant (framework limit).

For each model (`--model auto` and `random_forest` by default) it trains and promotes in a fresh
temporary directory, then reports req/s, p50 and p99 at 1 and 8 connections, `explicar=false`
beside the default, a 1,000-student `/predict/batch`, `/predict/aluno/{id}` and the API's RSS,
then /predict and the bare endpoint again in alternated rounds (the ratio both see on the same
machine minute), and checks the targets of the serving issue; the last lines say PASS/FAIL for
"/predict vs bare at 8 connections" and "batch 1k random_forest p50". Only loopback is loaded;
every server is stopped at the end, even on failure. Usage: `make bench` or
`.venv/bin/python benchmarks/bench_serving.py [auto random_forest] [--duration 10]
[--pair-rounds 3] [--pair-duration 5]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any, Final, get_args

import httpx

from passos_magicos.serving.schemas import EXEMPLO_REGISTRO, RegistroAluno
from passos_magicos.settings import ModelKind, Settings

BENCH_DIR: Final = Path(__file__).resolve().parent
WRK_DIR: Final = BENCH_DIR / "wrk"
BIN: Final = Path(sys.executable).parent
CLI: Final = BIN / "passos-magicos"
HOST: Final = "127.0.0.1"  # loopback only: nothing here may load another machine
TOKEN: Final = "bench-serving-token"  # noqa: S105 - throwaway, loopback only
MODEL_URI: Final = "models:/passos-magicos-ponto-virada@production"
CLK_TCK: Final = os.sysconf("SC_CLK_TCK")

# Targets of the serving issue.
TARGET_VS_MLFLOW: Final = 10.0  # /predict req/s ≥ 10× MLflow's at 8 connections
TARGET_VS_BARE: Final = 0.5  # … and ≥ 50 % of the bare endpoint's
TARGET_P50_VS_BARE: Final = 2.0  # at 1 connection p50 ≤ 2× the bare endpoint's
TARGET_P99_MS: Final = 5.0  # … and p99 ≤ 5 ms
TARGET_ALUNO_VS_PREDICT: Final = 1.5  # /predict/aluno p99 within 1.5× of /predict
TARGET_BATCH_MS: Final = 50.0  # 1,000 students
TARGET_RSS_MB: Final = 400.0
BATCH_SIZE: Final = 1000
BATCH_ROUNDS: Final = 30
NOISY_CORES: Final = 0.2  # CPU taken by other processes above which a figure is flagged


class BenchError(RuntimeError):
    """One measurement failed; the table says why and the rest goes on."""


def say(text: str = "") -> None:
    print(text, flush=True)


# --- processes ---------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat from the state on (the name may hold spaces and parens)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rfind(")") + 2 :].split()


def descendants(root: int) -> list[int]:
    """root and every process below it (uvicorn workers, mlflow's uvicorn child…)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                children.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(
                    int(entry.name)
                )
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat_fields(pid)
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLK_TCK


def machine_busy_seconds() -> tuple[float, float]:
    """(user+nice+system, steal) CPU seconds of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, steal = values[0], values[1], values[2], values[7]
    return (user + nice + system) / CLK_TCK, steal / CLK_TCK


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB, from /proc/<pid>/status."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in values:
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A server in its own process group: started, probed, paused while others are measured
    (SIGSTOP, so that an idle server cannot steal CPU from a measured one) and stopped."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    ready_path: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    ready: bool = False

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log(self) -> Path:
        return self.cwd / f"{self.name.replace(' ', '_').replace('/', '_')}.log"

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*self.argv, *self._port_args()],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: killpg reaches every child
            )
        RUNNING.append(self)

    def _port_args(self) -> list[str]:
        if self.argv[1:3] == ["models", "serve"]:
            return ["-p", str(self.port), "-h", HOST]
        return ["--host", HOST, "--port", str(self.port)]

    def pids(self) -> list[int]:
        return descendants(self.proc.pid) if self.proc is not None else []

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise BenchError(f"{self.name} saiu (código {code}):\n{self.tail()}")

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None:
            return
        self._signal(signal.SIGTERM)
        self._signal(signal.SIGCONT)  # a stopped process only handles SIGTERM once resumed
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        # Whatever is left in the group (workers, mlflow's uvicorn child) goes too.
        self._signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self in RUNNING:
            RUNNING.remove(self)


RUNNING: list[Server] = []


def stop_all() -> None:
    for server in list(RUNNING):
        server.stop()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(f"interrompido pelo sinal {signum}")


def wait_ready(servers: list[Server], timeout: float) -> None:
    """Wait until each server answers its probe with 200 AND has been idle for a second (a
    second uvicorn worker may still be loading the model after the first answered), then
    pause it. Servers that fail are left out (ready stays False) and reported."""
    deadline = time.monotonic() + timeout
    pending = [s for s in servers if s.proc is not None]
    since: dict[str, tuple[float, float]] = {}  # first 200 seen: (time, CPU seconds) then
    with httpx.Client(timeout=2.0) as client:
        while pending and time.monotonic() < deadline:
            for server in list(pending):
                if server.proc is None or server.proc.poll() is not None:
                    say(f"  ✘ {server.name} saiu durante a partida:\n{server.tail()}")
                    pending.remove(server)
                    continue
                try:
                    answered = client.get(server.url + server.ready_path).status_code == 200
                except httpx.HTTPError:
                    answered = False
                if not answered:
                    since.pop(server.name, None)
                    continue
                now, cpu = time.monotonic(), cpu_seconds(server.pids())
                first = since.setdefault(server.name, (now, cpu))
                if now - first[0] < 1.0:
                    continue
                if (cpu - first[1]) / (now - first[0]) < 0.05:
                    server.ready = True
                    server.pause()
                    pending.remove(server)
                else:  # still busy (another worker loading): measure the next second
                    since[server.name] = (now, cpu)
            time.sleep(0.25)
    for server in pending:
        say(f"  ✘ {server.name} não ficou pronto em {timeout:.0f} s:\n{server.tail()}")


class CpuWatch:
    """CPU the rest of the machine used while something was measured, in cores: the machine's
    user+system+steal time minus the measured server's, this process's and its finished
    children's (wrk). The box is shared: above ~0.2 cores the figures are contaminated."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.start = time.monotonic()
        self.machine = sum(machine_busy_seconds())
        self.server_cpu = cpu_seconds(pids)
        self.ours = self._ours()

    def _ours(self) -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (
            cpu_seconds(self.pids)
            + own.ru_utime
            + own.ru_stime
            + children.ru_utime
            + children.ru_stime
        )

    def other_cores(self) -> float:
        wall = max(time.monotonic() - self.start, 1e-3)
        machine = sum(machine_busy_seconds()) - self.machine
        return max(0.0, machine - (self._ours() - self.ours)) / wall


# --- wrk -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    other_cpu: float  # cores used by processes other than the server and wrk (contention)
    server_cpu_ms: float = float("nan")  # the server's CPU time per request (load-robust)

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


Measure = Load | BenchError

_UNITS: Final = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise BenchError(f"latência ilegível na saída do wrk: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


# --quiet-wait (set once by main): s to wait before each run for the machine to calm down.
QUIET_WAIT = [0.0]


def wait_quiet(server: Server, limit: float) -> None:
    """On a shared machine, wait (bounded) for a second in which others use < NOISY_CORES."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        watch = CpuWatch(server.pids())
        time.sleep(1.0)
        if watch.other_cores() < NOISY_CORES:
            return


def parse_wrk(output: str, other_cpu: float) -> Load:
    def find(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, output, re.MULTILINE)

    rps = find(r"^Requests/sec:\s+([\d.]+)")
    p50, p99 = find(r"^\s+50%\s+(\S+)"), find(r"^\s+99%\s+(\S+)")
    total = find(r"^\s+(\d+) requests in")
    if rps is None or p50 is None or p99 is None or total is None:
        raise BenchError(f"saída do wrk inesperada:\n{output[-800:]}")
    non_2xx = find(r"Non-2xx or 3xx responses:\s+(\d+)")
    sockets = find(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    return Load(
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in sockets.groups()) if sockets else 0,
        other_cpu=other_cpu,
    )


def wrk(
    server: Server, path: str, connections: int, duration: float, script: str, *args: str
) -> Load:
    """One wrk run (1 thread per 4 connections, at most 2) with the machine's CPU accounted:
    whatever neither the server nor wrk used was taken by something else on the machine."""
    server.check_alive()
    threads = max(1, min(2, connections // 4))
    argv = [
        "wrk",
        "--latency",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "-s",
        str(WRK_DIR / script),
        server.url + path,
        "--",
        *args,
    ]
    wait_quiet(server, QUIET_WAIT[0])
    watch = CpuWatch(server.pids())
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration + 20, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk não terminou em {duration + 20:.0f} s") from exc
    if result.returncode != 0:
        raise BenchError(f"wrk falhou ({result.returncode}): {result.stderr.strip()[-500:]}")
    load = parse_wrk(result.stdout, watch.other_cores())
    server_cpu = cpu_seconds(watch.pids) - watch.server_cpu
    return replace(load, server_cpu_ms=server_cpu * 1000 / max(load.requests, 1))


def measure(fn: Callable[[], Load]) -> Measure:
    try:
        return fn()
    except BenchError as exc:
        return exc


# --- data, training, servers ---------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """This shell's environment without any project setting (a stray MLFLOW_TRACKING_URI or
    API_WORKERS must not leak into the run), the venv first on PATH, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env | extra


def find_data(tmp: Path) -> tuple[Path, str]:
    real = Path(os.environ.get("PEDE_DATA_DIR") or "/work/shared/data/pede")
    csv = real / "PEDE_PASSOS_DATASET_FIAP.csv"
    if csv.exists():
        return csv, "dados reais"
    synth = tmp / "pede.csv"
    say(f"  {csv} não existe: gerando dados sintéticos")
    subprocess.run(
        [str(CLI), "data", "synth", "--output", str(synth)],
        cwd=tmp,
        env=clean_env(),
        check=True,
        capture_output=True,
        timeout=120,
    )
    return synth, "dados sintéticos"


@dataclass
class Prepared:
    kind: str
    workdir: Path
    chosen: str = "?"
    error: str | None = None

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(
            DATA_DIR=str(self.workdir / "data"), MODELS_DIR=str(self.workdir / "models"), **extra
        )


def _run_parallel(steps: list[tuple[Prepared, list[str]]], name: str, timeout: float) -> None:
    """Run one CLI step per model at once (training is mostly one core each)."""
    procs = []
    for prep, argv in steps:
        with (
            (prep.workdir / f"{name}.log").open("wb") as log,
            (prep.workdir / f"{name}.out").open("wb") as out,
        ):  # the child keeps its own copies of the descriptors
            proc = subprocess.Popen(argv, cwd=prep.workdir, env=prep.env(), stdout=out, stderr=log)
        procs.append((prep, proc))
    deadline = time.monotonic() + timeout
    for prep, proc in procs:
        try:
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = -9
        if code != 0:
            tail = (prep.workdir / f"{name}.log").read_text(errors="replace")[-1500:]
            prep.error = f"{name} falhou ({code}):\n{tail}"


def _trained(prep: Prepared) -> str | None:
    """The model kind a finished `train --json` chose, if this directory has one."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        chosen: str = json.loads((prep.workdir / "train.out").read_text())["modelo"]
        return chosen
    return None


def prepare(tmp: Path, kinds: list[str], csv: Path) -> list[Prepared]:
    """Train and promote each model in its own directory (own MLflow store and feature store);
    a directory kept by --workdir whose model was already promoted is reused as it is."""
    preps = [Prepared(kind, tmp / kind) for kind in kinds]
    todo = []
    for prep in preps:
        prep.workdir.mkdir(parents=True, exist_ok=True)
        if _trained(prep) is None or not (prep.workdir / "promoted").exists():
            todo.append(prep)
        else:
            say(f"  {prep.kind}: reaproveitando o modelo já treinado em {prep.workdir}")
    started = time.monotonic()
    argv = [str(CLI), "train", "--data", str(csv), "--model"]
    _run_parallel([(p, [*argv, p.kind, "--json"]) for p in todo], "train", timeout=420)
    ok = [p for p in todo if p.error is None]
    _run_parallel([(p, [str(CLI), "promote"]) for p in ok], "promote", timeout=180)
    for prep in ok:
        if prep.error is None:
            (prep.workdir / "promoted").touch()
    if todo:
        say(f"  treino e promoção: {time.monotonic() - started:.0f} s")
    for prep in preps:
        prep.chosen = _trained(prep) or "?"
        if prep.error:
            say(f"  ✘ {prep.kind}: {prep.error}")
    return preps


@dataclass
class ModelServers:
    prep: Prepared
    api1: Server
    api2: Server
    mlflow: Server


def model_servers(prep: Prepared) -> ModelServers:
    def api(workers: int) -> Server:
        log = prep.workdir / f"logs-w{workers}" / "predictions.jsonl"
        return Server(
            name=f"API {prep.kind} {workers}w",
            argv=[str(CLI), "serve"],
            env=prep.env(API_TOKENS=TOKEN, API_WORKERS=str(workers), PREDICTION_LOG_PATH=str(log)),
            cwd=prep.workdir,
            ready_path="/ready",
        )

    tracking = f"sqlite:///{prep.workdir / 'data' / 'mlflow' / 'mlflow.db'}"
    mlflow = Server(
        name=f"MLflow {prep.kind}",
        argv=[str(BIN / "mlflow"), "models", "serve", "-m", MODEL_URI, "--env-manager", "local"],
        env=prep.env(MLFLOW_TRACKING_URI=tracking),
        cwd=prep.workdir,
        ready_path="/ping",
    )
    return ModelServers(prep, api(1), api(2), mlflow)


# --- bodies --------------------------------------------------------------------------------


def model_inputs(record: dict[str, Any]) -> dict[str, Any]:
    """The pyfunc's canonical inputs (its signature wants pv as a 0/1 double)."""
    inputs = RegistroAluno.model_validate(record).model_inputs()
    return {k: float(v) if isinstance(v, bool) else v for k, v in inputs.items()}


def batch_records(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Valid, varied records: every pedra, with and without history and optional fields."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    pedras = [None, "Quartzo", "Ágata", "Ametista", "Topázio"]
    indicators = ("inde", "iaa", "ieg", "ips", "ipp", "ida", "ipv", "ian")
    records = []
    for i in range(count):
        record: dict[str, Any] = {
            "aluno_id": f"RA-{100_000 + i}",
            "ano": rng.choice([2022, 2023, 2024]),
            "fase": rng.randint(0, 7),
            "idade": rng.randint(7, 20),
            "anos_pm": rng.randint(0, 6),
            "pedra": rng.choice(pedras),
            "pv": rng.random() < 0.15,
        }
        record |= {name: round(rng.uniform(0, 10), 2) for name in indicators}
        if rng.random() < 0.7:
            previous = rng.sample(indicators, rng.randint(2, len(indicators)))
            record["anterior"] = {name: round(rng.uniform(0, 10), 2) for name in previous}
            record["anterior"]["pv"] = rng.random() < 0.15
        RegistroAluno.model_validate(record)  # a typo here must not turn into 422s
        records.append(record)
    return records


def write_json(path: Path, body: object) -> Path:
    path.write_text(json.dumps(body, ensure_ascii=False))
    return path


def check_200(
    server: Server, method: str, path: str, body: object = None, token: str | None = None
) -> Any:
    """One request before loading a server: a fast wrong answer must not become a result."""
    server.check_alive()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(
            method, server.url + path, json=body, headers=headers, timeout=30.0
        )
    except httpx.HTTPError as exc:
        raise BenchError(f"{server.name} {path}: {exc}") from exc
    if response.status_code != 200:
        raise BenchError(f"{server.name} {path}: HTTP {response.status_code} {response.text[:300]}")
    return response.json()


# --- measurements --------------------------------------------------------------------------


@dataclass(frozen=True)
class Durations:
    main: float  # the comparison runs
    short: float  # explicar=false and /predict/aluno
    warm: float
    pair: float = 5.0  # each round of the alternated /predict vs bare comparison
    pair_rounds: int = 3


@contextlib.contextmanager
def running(server: Server, keep: bool = False) -> Iterator[Server]:
    """Resume a paused server for its measurements; stop it afterwards (frees its memory), or
    with `keep` pause it again (the bare endpoint, measured again beside each API)."""
    if not server.ready:
        raise BenchError(f"{server.name} não subiu (log: {server.log})")
    server.resume()
    try:
        yield server
    finally:
        if keep:
            server.pause()
        else:
            server.stop()


def warm_up(server: Server, path: str, seconds: float, script: str, *args: str) -> None:
    load = wrk(server, path, 8, seconds, script, *args)
    if load.errors:
        raise BenchError(f"{server.name} {path}: {load.errors} erros já no aquecimento")


def at_1_and_8(
    server: Server, path: str, seconds: float, script: str, *args: str
) -> dict[int, Measure]:
    results: dict[int, Measure] = {}
    for connections in (1, 8):
        try:
            results[connections] = wrk(server, path, connections, seconds, script, *args)
        except BenchError as exc:
            results[connections] = exc
    return results


def measure_post(
    server: Server, path: str, body: Path, d: Durations, token: str = "", keep: bool = False
) -> dict[int, Measure]:
    """Check one request answers 200, warm up, then 1 and 8 connections."""
    try:
        with running(server, keep):
            check_200(server, "POST", path, json.loads(body.read_text()), token or None)
            warm_up(server, path, d.warm, "post.lua", str(body), token)
            return at_1_and_8(server, path, d.main, "post.lua", str(body), token)
    except BenchError as exc:
        return {1: exc, 8: exc}


@dataclass(frozen=True)
class Pair:
    """/predict and the bare endpoint measured in alternation (bare, API, bare, API…), so that
    both see the same machine: on a shared box the load changes from one minute to the next."""

    rounds: list[tuple[Load, Load]]  # (API, bare) per round

    @property
    def ratio(self) -> float:
        return statistics.median(a.rps / b.rps for a, b in self.rounds)

    @property
    def cpu_ratio(self) -> float:
        """bare's server CPU per request / the API's: the same ratio, without contention."""
        return statistics.median(b.server_cpu_ms / a.server_cpu_ms for a, b in self.rounds)

    @property
    def other_cpu(self) -> float:
        return max(max(a.other_cpu, b.other_cpu) for a, b in self.rounds)


def measure_pair(api: Server, bare: Server, body: Path, d: Durations) -> Pair:
    """`api` running, `bare` paused and kept: PAIR rounds at 8 connections, one at a time."""
    if not bare.ready or bare.proc is None or bare.proc.poll() is not None:
        raise BenchError("FastAPI mínimo indisponível para a comparação alternada")
    post = ("post.lua", str(body), TOKEN)
    rounds = []
    for _ in range(d.pair_rounds):
        api.pause()
        bare.resume()
        try:
            b = wrk(bare, "/predict", 8, d.pair, *post)
        finally:
            bare.pause()
            api.resume()
        a = wrk(api, "/predict", 8, d.pair, *post)
        if a.errors or b.errors:
            raise BenchError(f"respostas de erro na comparação: API {a.errors}, mínimo {b.errors}")
        rounds.append((a, b))
    return Pair(rounds)


@dataclass(frozen=True)
class Batch:
    p50_ms: float
    p95_ms: float
    max_ms: float
    other_cpu: float


@dataclass(frozen=True)
class Memory:
    rss_mb: float
    hwm_mb: float
    processes: int


@dataclass
class ModelReport:
    kind: str
    chosen: str
    info: dict[str, Any] = field(default_factory=dict)
    loads: dict[tuple[str, int], Measure] = field(default_factory=dict)
    batch: Batch | BenchError = field(default_factory=lambda: BenchError("não medido"))
    pair: Pair | BenchError = field(default_factory=lambda: BenchError("não medido"))
    memory: dict[int, Memory | BenchError] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def measure_batch(server: Server, body: dict[str, Any]) -> Batch:
    """Wall latency of /predict/batch as a client sees it (keep-alive, body already encoded)."""
    content = json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    times = []
    watch = CpuWatch(server.pids())
    with httpx.Client(base_url=server.url, headers=headers, timeout=30.0) as client:
        for i in range(3 + BATCH_ROUNDS):  # 3 warm-up rounds, then the timed ones
            started = time.perf_counter()
            response = client.post("/predict/batch", content=content)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise BenchError(f"HTTP {response.status_code} {response.text[:300]}")
            answer = response.json()
            scored, invalid = len(answer["previsoes"]), len(answer["invalidos"])
            if scored != BATCH_SIZE or invalid:
                raise BenchError(f"{scored} previsões e {invalid} inválidos para {BATCH_SIZE}")
            if i >= 3:
                times.append(elapsed)
    times.sort()
    return Batch(
        p50_ms=statistics.median(times),
        p95_ms=times[round(0.95 * (len(times) - 1))],
        max_ms=times[-1],
        other_cpu=watch.other_cores(),
    )


def measure_memory(server: Server) -> Memory:
    """RSS of the serving processes: the server itself with 1 worker; with several, the
    uvicorn workers summed (the supervisor holds no model and is left out)."""
    pids = server.pids()
    workers = [p for p in pids if "spawn_main" in cmdline(p)] or pids[:1]
    rss = hwm = 0.0
    for pid in workers:
        with contextlib.suppress(OSError):
            now, peak = memory_mb(pid)
            rss, hwm = rss + now, hwm + peak
    if not rss:
        raise BenchError(f"{server.name}: /proc sem VmRSS")
    return Memory(rss, hwm, len(workers))


def measure_api(
    servers: ModelServers,
    report: ModelReport,
    body: Path,
    tmp: Path,
    d: Durations,
    bare: Server | None = None,
) -> None:
    api, post = servers.api1, ("post.lua", str(body), TOKEN)
    try:
        with running(api):
            report.info = check_200(api, "GET", "/model/info")
            check_200(api, "POST", "/predict", EXEMPLO_REGISTRO, TOKEN)
            warm_up(api, "/predict", d.warm, *post)
            for c, load in at_1_and_8(api, "/predict", d.main, *post).items():
                report.loads["api", c] = load
            for c, load in at_1_and_8(api, "/predict?explicar=false", d.short, *post).items():
                report.loads["noexp", c] = load
            # Real ids from the online store, fetched once; wrk cycles over them.
            students = check_200(api, "GET", "/predict/alunos", token=TOKEN)["previsoes"]
            ids = tmp / f"ids-{servers.prep.kind}.txt"
            ids.write_text("\n".join(s["aluno_id"] for s in students) + "\n")
            get = ("get_ids.lua", str(ids), TOKEN, "/predict/aluno/")
            warm_up(api, "/predict/aluno/", min(d.warm, 1.0), *get)
            for c, load in at_1_and_8(api, "/predict/aluno/", d.short, *get).items():
                report.loads["aluno", c] = load
            try:
                report.batch = measure_batch(api, {"registros": batch_records(BATCH_SIZE)})
            except (BenchError, httpx.HTTPError, KeyError, ValueError) as exc:
                report.batch = BenchError(f"/predict/batch: {exc}")
            report.memory[1] = measure_memory(api)  # after the load, before stopping
            if bare is not None and d.pair_rounds:
                try:
                    report.pair = measure_pair(api, bare, body, d)
                except BenchError as exc:
                    report.pair = exc
    except BenchError as exc:
        report.errors.append(str(exc))


def measure_api2(servers: ModelServers, report: ModelReport, body: Path, d: Durations) -> None:
    api, post = servers.api2, ("post.lua", str(body), TOKEN)
    try:
        with running(api):
            check_200(api, "POST", "/predict", EXEMPLO_REGISTRO, TOKEN)
            warm_up(api, "/predict", d.warm, *post)
            report.loads["api2", 8] = measure(lambda: wrk(api, "/predict", 8, d.main, *post))
            report.memory[2] = measure_memory(api)
    except BenchError as exc:
        report.loads["api2", 8] = report.memory[2] = exc


BARE2: Final = -8  # key of the 2-worker bare endpoint at 8 connections in the bare loads


def measure_bare2(server: Server, body: Path, d: Durations) -> Measure:
    """The framework's limit with 2 workers, to compare the 2-worker API like for like."""
    post = ("post.lua", str(body), TOKEN)
    try:
        with running(server):
            check_200(server, "POST", "/predict", EXEMPLO_REGISTRO, TOKEN)
            warm_up(server, "/predict", d.warm, *post)
            return measure(lambda: wrk(server, "/predict", 8, d.main, *post))
    except BenchError as exc:
        return exc


def measure_model(
    servers: ModelServers,
    bodies: dict[str, Path],
    tmp: Path,
    d: Durations,
    bare: Server | None = None,
) -> ModelReport:
    report = ModelReport(servers.prep.kind, servers.prep.chosen)
    for c, load in measure_post(servers.mlflow, "/invocations", bodies["mlflow"], d).items():
        report.loads["mlflow", c] = load
    measure_api(servers, report, bodies["api"], tmp, d, bare)
    measure_api2(servers, report, bodies["api"], d)
    return report


# --- report --------------------------------------------------------------------------------

ROWS: Final = (
    ("bare", "FastAPI mínimo (valida, devolve constante)"),
    ("bare2", "FastAPI mínimo (2 workers)"),
    ("mlflow", "mlflow models serve  POST /invocations"),
    ("api", "API  POST /predict  (1 worker)"),
    ("noexp", "API  POST /predict?explicar=false"),
    ("api2", "API  POST /predict  (2 workers)"),
    ("aluno", "API  GET /predict/aluno/{id}"),
)


def ms(value: float) -> str:
    if value < 10:
        return f"{value:.2f} ms"
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def valid(measured: Measure | None) -> Load | None:
    """A load counts only if every answer was a 2xx and no socket failed."""
    return measured if isinstance(measured, Load) and measured.errors == 0 else None


def print_table(loads: dict[tuple[str, int], Measure]) -> None:
    say(
        f"  {'servidor / rota':<44}{'con.':>5}{'req/s':>10}{'p50':>11}{'p99':>11}"
        f"{'erros':>10}{'CPU alheia':>12}"
    )
    for key, label in ROWS:
        for connections in (1, 8):
            measured = loads.get((key, connections))
            if measured is None:
                continue
            if isinstance(measured, BenchError):
                reason = str(measured).splitlines()[0][:70]
                say(f"  {label:<44}{connections:>5}   falhou: {reason}")
                continue
            errors = f"{measured.non_2xx}+{measured.socket_errors} !" if measured.errors else "0"
            say(
                f"  {label:<44}{connections:>5}{measured.rps:>10.1f}{ms(measured.p50_ms):>11}"
                f"{ms(measured.p99_ms):>11}{errors:>10}"
                f"{measured.other_cpu:>9.2f} nc{noisy_mark(measured.other_cpu)}"
            )


def noisy_mark(cores: float) -> str:
    return " *" if cores > NOISY_CORES else ""


def noisy_note(*cores: float) -> str:
    worst = max(cores, default=0.0)
    return f" [* outros processos usavam {worst:.1f} núcleo(s)]" if worst > NOISY_CORES else ""


def verdict(label: str, ok: bool | None, detail: str) -> None:
    mark = {True: "atendida", False: "NÃO atendida", None: "sem medida"}[ok]
    say(f"  [{mark}] {label}: {detail}")


def ratio_verdict(
    label: str, num: Load | None, den: Load | None, attr: str, limit: float, fmt: str
) -> None:
    """num.attr / den.attr against limit; fmt says how to show it (× or %)."""
    if num is None or den is None:
        verdict(label, None, "medida ausente ou com respostas de erro")
        return
    a, b = getattr(num, attr), getattr(den, attr)
    ratio = a / b if b else float("inf")
    if attr == "rps":
        ok, shown = ratio >= limit, f"{a:.0f} vs {b:.0f} req/s"
    else:
        ok, shown = ratio <= limit, f"{ms(a)} vs {ms(b)}"
    meta = f"{limit:.0%}" if fmt == "%" else f"{limit:g}×"
    value = f"{ratio:.0%}" if fmt == "%" else f"{ratio:.2f}×"
    sign = "≥" if attr == "rps" else "≤"
    note = noisy_note(num.other_cpu, den.other_cpu)
    verdict(label, ok, f"{shown} = {value} (meta {sign} {meta}){note}")


def print_report(report: ModelReport, bare: dict[int, Measure]) -> None:
    info = report.info
    compiled = "?" if "compilado" not in info else ("sim" if info["compilado"] else "não")
    say(
        f"\n=== Modelo {info.get('tipo', report.chosen)} (--model {report.kind}), versão "
        f"{info.get('versao', '?')} @{info.get('alias', '?')}, compilado: {compiled} ==="
    )
    loads = dict(report.loads) | {("bare", c): m for c, m in bare.items() if c != BARE2}
    if BARE2 in bare:
        loads["bare2", 8] = bare[BARE2]
    print_table(loads)
    if isinstance(report.batch, Batch):
        b = report.batch
        say(
            f"  lote de {BATCH_SIZE} alunos (/predict/batch, {BATCH_ROUNDS}×, keep-alive): "
            f"p50 {ms(b.p50_ms)}, p95 {ms(b.p95_ms)}, máx {ms(b.max_ms)}; CPU alheia "
            f"{b.other_cpu:.2f} nc{noisy_mark(b.other_cpu)}"
        )
    else:
        say(f"  lote de {BATCH_SIZE} alunos: falhou: {report.batch}")
    if isinstance(report.pair, Pair):
        say(
            f"  /predict vs FastAPI mínimo, 8 conexões, {len(report.pair.rounds)} rodadas "
            "alternadas (mínimo, API, mínimo, API…):"
        )
        for i, (ours, floor) in enumerate(report.pair.rounds, start=1):
            other = max(ours.other_cpu, floor.other_cpu)
            say(
                f"    rodada {i}: {ours.rps:.0f} vs {floor.rps:.0f} req/s = "
                f"{ours.rps / floor.rps:.0%}; CPU do servidor por requisição "
                f"{ours.server_cpu_ms:.3f} vs {floor.server_cpu_ms:.3f} ms; CPU alheia "
                f"{other:.2f} nc{noisy_mark(other)}"
            )
        say(
            f"    mediana: {report.pair.ratio:.0%} da vazão do mínimo "
            f"(pela CPU por requisição: {report.pair.cpu_ratio:.0%})"
        )
    elif "não medido" not in str(report.pair):
        say(f"  /predict vs FastAPI mínimo alternados: falhou: {report.pair}")
    for workers, mem in sorted(report.memory.items()):
        if isinstance(mem, Memory):
            say(
                f"  memória da API com {workers} worker(s) após a carga: VmRSS "
                f"{mem.rss_mb:.0f} MB, pico (VmHWM) {mem.hwm_mb:.0f} MB "
                f"({mem.processes} processo(s) somados)"
            )
    for error in report.errors:
        say(f"  ✘ {error}")
    one, two = valid(loads.get(("api", 8))), valid(loads.get(("api2", 8)))
    if one and two:
        best = "2 workers" if two.rps > one.rps * 1.05 else "1 worker"
        say(
            f"  1 vs 2 workers a 8 conexões: {one.rps:.0f} vs {two.rps:.0f} req/s, p99 "
            f"{ms(one.p99_ms)} vs {ms(two.p99_ms)} → melhor aqui: {best}"
        )
    exp, noexp = valid(loads.get(("api", 8))), valid(loads.get(("noexp", 8)))
    if exp and noexp:
        say(
            f"  custo dos fatores (explicar=true vs false, 8 conexões): {exp.rps:.0f} vs "
            f"{noexp.rps:.0f} req/s, p50 {ms(exp.p50_ms)} vs {ms(noexp.p50_ms)}"
        )
    print_verdicts(report, loads)


def print_verdicts(report: ModelReport, loads: dict[tuple[str, int], Measure]) -> None:
    def get(key: str, connections: int) -> Load | None:
        return valid(loads.get((key, connections)))

    say("  metas:")
    api1, api8 = get("api", 1), get("api", 8)
    ratio_verdict(
        "/predict ≥ 10× MLflow, 8 conexões", api8, get("mlflow", 8), "rps", TARGET_VS_MLFLOW, "×"
    )
    if isinstance(report.pair, Pair):
        pair = report.pair
        verdict(
            "/predict ≥ 50 % do mínimo, 8 conexões (rodadas alternadas)",
            pair.ratio >= TARGET_VS_BARE,
            f"mediana {pair.ratio:.0%} (meta ≥ {TARGET_VS_BARE:.0%}; pela CPU por requisição "
            f"{pair.cpu_ratio:.0%}){noisy_note(pair.other_cpu)}",
        )
    else:
        ratio_verdict(
            "/predict ≥ 50 % do mínimo, 8 conexões",
            api8,
            get("bare", 8),
            "rps",
            TARGET_VS_BARE,
            "%",
        )
    ratio_verdict(
        "com 2 workers cada: /predict ≥ 50 % do mínimo, 8 conexões",
        get("api2", 8),
        get("bare2", 8),
        "rps",
        TARGET_VS_BARE,
        "%",
    )
    ratio_verdict(
        "p50 ≤ 2× o do mínimo, 1 conexão", api1, get("bare", 1), "p50_ms", TARGET_P50_VS_BARE, "×"
    )
    if api1 is None:
        verdict("p99 ≤ 5 ms, 1 conexão", None, "medida ausente ou com respostas de erro")
    else:
        verdict(
            "p99 ≤ 5 ms, 1 conexão",
            api1.p99_ms <= TARGET_P99_MS,
            f"{ms(api1.p99_ms)} (meta ≤ {TARGET_P99_MS:g} ms){noisy_note(api1.other_cpu)}",
        )
    for c in (8, 1):
        ratio_verdict(
            f"/predict/aluno p99 ≤ 1,5× /predict, {c} conex{'ões' if c > 1 else 'ão'}",
            get("aluno", c),
            get("api", c),
            "p99_ms",
            TARGET_ALUNO_VS_PREDICT,
            "×",
        )
    if isinstance(report.batch, Batch):
        verdict(
            f"lote de {BATCH_SIZE} ≤ 50 ms",
            report.batch.p50_ms <= TARGET_BATCH_MS,
            f"p50 {ms(report.batch.p50_ms)}, p95 {ms(report.batch.p95_ms)} (meta ≤ 50 ms)"
            + noisy_note(report.batch.other_cpu),
        )
    else:
        verdict(f"lote de {BATCH_SIZE} ≤ 50 ms", None, str(report.batch))
    mem = report.memory.get(1)
    if isinstance(mem, Memory):
        note = "" if mem.hwm_mb <= TARGET_RSS_MB else "; o pico passa da meta"
        verdict(
            "RSS ≤ 400 MB (1 worker)",
            mem.rss_mb <= TARGET_RSS_MB,
            f"{mem.rss_mb:.0f} MB, pico {mem.hwm_mb:.0f} MB{note} (meta ≤ {TARGET_RSS_MB:g} MB)",
        )
    else:
        verdict("RSS ≤ 400 MB (1 worker)", None, str(mem or "não medido"))


# --- main ----------------------------------------------------------------------------------


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit("wrk não encontrado: instale com `sudo apt-get install -y wrk` e rode de novo")
    say("wrk não encontrado: instalando com apt-get…")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "install", "-y", "wrk"], ["apt-get", "update"]):
        if argv[1] == "update" or subprocess.run(argv, env=env, check=False).returncode != 0:
            subprocess.run(argv, env=env, check=False, timeout=300)
    if subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, check=False).returncode:
        sys.exit("não foi possível instalar o wrk com apt-get")


def print_environment() -> None:
    from importlib.metadata import PackageNotFoundError, version

    def ver(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "ausente"

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    load = Path("/proc/loadavg").read_text().split()[:3]
    say("Ambiente:")
    say(f"  CPUs: {os.cpu_count()} ({len(os.sched_getaffinity(0))} disponíveis), {cpu}")
    say(f"  carga média no início (1/5/15 min): {' / '.join(load)}")
    say(
        f"  Python {platform.python_version()}, numpy {ver('numpy')}, scikit-learn "
        f"{ver('scikit-learn')}, fastapi {ver('fastapi')}, pydantic {ver('pydantic')}, "
        f"uvicorn {ver('uvicorn')} (uvloop {ver('uvloop')}, httptools {ver('httptools')}), "
        f"mlflow {ver('mlflow')}"
    )
    say(f"  {(wrk_version.stdout or wrk_version.stderr).splitlines()[0]}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "models",
        nargs="*",
        help=f"--model de cada treino, entre {', '.join(get_args(ModelKind))} "
        "(padrão: auto random_forest)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="s por rodada principal")
    parser.add_argument("--short", type=float, default=5.0, help="s: explicar=false, /aluno")
    parser.add_argument("--warm", type=float, default=2.0, help="s de aquecimento por servidor")
    parser.add_argument(
        "--pair-rounds",
        type=int,
        default=3,
        help="rodadas alternadas de /predict e do FastAPI mínimo a 8 conexões (0: nenhuma)",
    )
    parser.add_argument("--pair-duration", type=float, default=5.0, help="s por rodada alternada")
    parser.add_argument("--startup-timeout", type=float, default=240.0)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="s a esperar, antes de cada rodada, que outros processos soltem a CPU",
    )
    parser.add_argument(
        "--workdir", type=Path, help="pasta mantida (e reaproveitada: treino já feito é pulado)"
    )
    args = parser.parse_args()
    # Checked here: argparse (3.11) rejects a list default of a nargs="*" with choices.
    args.models = args.models or ["auto", "random_forest"]
    if unknown := set(args.models) - set(get_args(ModelKind)):
        parser.error(f"modelo(s) desconhecido(s): {', '.join(sorted(unknown))}")
    return args


def print_summary(reports: list[ModelReport]) -> None:
    """The two figures of the serving issue's item 7, PASS/FAIL against their targets."""
    say("\nItem 7 da issue 12 (metas):")
    first = reports[0] if reports else None
    if first is not None and isinstance(first.pair, Pair):
        pair = first.pair
        mark = "PASS" if pair.ratio >= TARGET_VS_BARE else "FAIL"
        say(
            f"  /predict vs bare at 8 connections: {pair.ratio:.0%} — {mark} (target ≥ "
            f"{TARGET_VS_BARE:.0%}; --model {first.kind}, median of {len(pair.rounds)} alternated "
            f"rounds; by server CPU per request: {pair.cpu_ratio:.0%})" + noisy_note(pair.other_cpu)
        )
    else:
        reason: object = first.pair if first is not None else "nenhum modelo medido"
        say(f"  /predict vs bare at 8 connections: not measured — FAIL ({reason})")
    forest = next((r for r in reports if r.chosen == "random_forest"), None)
    if forest is not None and isinstance(forest.batch, Batch):
        batch = forest.batch
        mark = "PASS" if batch.p50_ms <= TARGET_BATCH_MS else "FAIL"
        say(
            f"  batch 1k random_forest p50: {batch.p50_ms:.1f} ms — {mark} (target ≤ "
            f"{TARGET_BATCH_MS:g} ms; p95 {batch.p95_ms:.1f} ms)" + noisy_note(batch.other_cpu)
        )
    else:
        reason = forest.batch if forest is not None else "random_forest fora da lista"
        say(f"  batch 1k random_forest p50: not measured — FAIL ({reason})")


def failures(report: ModelReport) -> int:
    measured: list[object] = [*report.loads.values(), report.batch, *report.memory.values()]
    return len(report.errors) + sum(isinstance(m, BenchError) for m in measured)


def run(tmp: Path, args: argparse.Namespace, d: Durations) -> int:
    """Everything; returns how many things failed (not: how many targets were missed)."""
    csv, origin = find_data(tmp)
    say(f"\nDados: {csv} ({origin}); pasta de trabalho {tmp}")
    say(f"Treinando e promovendo {', '.join(args.models)} (em paralelo)…")
    preps = prepare(tmp, args.models, csv)
    bodies = {
        "api": write_json(tmp / "predict.json", EXEMPLO_REGISTRO),
        "mlflow": write_json(
            tmp / "invocations.json", {"dataframe_records": [model_inputs(EXEMPLO_REGISTRO)]}
        ),
    }
    bare = Server(
        "FastAPI mínimo",
        [sys.executable, str(BENCH_DIR / "bare_app.py")],
        clean_env(),
        tmp,
        "/ready",
    )
    bare2 = Server(
        "FastAPI mínimo 2w",
        [sys.executable, str(BENCH_DIR / "bare_app.py"), "--workers", "2"],
        clean_env(),
        tmp,
        "/ready",
    )
    groups = [model_servers(p) for p in preps if p.error is None]
    servers = [bare, bare2, *(s for g in groups for s in (g.api1, g.api2, g.mlflow))]
    # All start at once (startup is not measured) and each is paused as soon as it is ready
    # and idle; afterwards exactly one server runs at a time.
    started = time.monotonic()
    say(f"Subindo {len(servers)} servidores…")
    for server in servers:
        server.start()
    wait_ready(servers, args.startup_timeout)
    say(f"  prontos em {time.monotonic() - started:.0f} s")
    say(
        f"Carga: wrk --latency -t1 -c1 e -t2 -c8, {d.main:g} s por rodada ({d.short:g} s para "
        f"explicar=false e /predict/aluno), {d.warm:g} s de aquecimento por servidor"
    )
    bare_loads = measure_post(bare, "/predict", bodies["api"], d, keep=True)  # paired later
    bare_loads[BARE2] = measure_bare2(bare2, bodies["api"], d)
    failed = sum(p.error is not None for p in preps)
    failed += sum(isinstance(m, BenchError) for m in bare_loads.values())
    if not groups:
        say("\n=== Só o FastAPI mínimo (nenhum modelo treinado) ===")
        print_table({("bare", c): m for c, m in bare_loads.items()})
    reports = []
    for group in groups:
        say(f"Medindo {group.prep.kind}…")
        report = measure_model(group, bodies, tmp, d, bare)
        print_report(report, bare_loads)
        failed += failures(report)
        reports.append(report)
    bare.stop()
    print_summary(reports)
    say(
        f"\nnc = núcleos de CPU usados por outros processos da máquina durante a rodada (nem o "
        f"servidor medido nem o wrk); * = acima de {NOISY_CORES:g}: número contaminado. "
        "erros = respostas não-2xx + erros de socket do wrk (! = rodada inválida para as metas)."
    )
    return failed


def main() -> None:
    args = parse_args()
    d = Durations(args.duration, args.short, args.warm, args.pair_duration, args.pair_rounds)
    QUIET_WAIT[0] = args.quiet_wait
    ensure_wrk()
    # SIGTERM/SIGHUP become SystemExit so that `finally` stops every server.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    started = time.monotonic()
    print_environment()
    with contextlib.ExitStack() as stack:
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            tmp = args.workdir.resolve()
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-serving-")))
        try:
            failed = run(tmp, args, d)
        finally:
            stop_all()
    say(f"\nTempo total: {time.monotonic() - started:.0f} s")
    if failed:
        sys.exit(f"{failed} medida(s) ou preparo(s) falharam: veja acima")


if __name__ == "__main__":
    main()
