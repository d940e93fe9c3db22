"""Live test harness for the reference ktrdr service: a real PostgreSQL server and real uvicorn
processes on loopback. No mocks.

Other suites reuse it::

    sys.path.insert(0, "<repo>/deploy/reference/tests")
    pytest_plugins = ["stack"]          # in the suite's top conftest.py (or `from stack import *`)

Fixtures: ``pg`` (session PostgreSQL), ``data_dir`` (generated once per session), and per test
module ``strategies_dir``, ``models_dir``, ``database`` (fresh DB at alembic head), ``backend``,
``training_worker``, ``backtest_worker``. Helpers: ``ServiceProcess``, ``migrate``,
``start_backend``, ``start_worker``, ``wait_for_operation``, ``wait_registered``, ``api``.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

REFERENCE_DIR = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TERMINAL = ("completed", "failed", "cancelled")
DB_USER = "ktrdr"
DB_PASSWORD = "s3cret@p:ss/word"  # URL-special characters on purpose: the services must encode them
SUPERUSER_PASSWORD = "postgres-test"
# Fast loops so tests wait seconds, not the production defaults' tens of seconds.
FAST = {"KTRDR_WORKER_HEALTH_CHECK_INTERVAL": "1", "KTRDR_WORKER_REREGISTRATION_INTERVAL": "1",
        "KTRDR_WORKER_REREGISTRATION_TIMEOUT": "3"}

if str(REFERENCE_DIR) not in sys.path:  # tests may import ktrdr's pure helpers directly
    sys.path.insert(0, str(REFERENCE_DIR))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base_url: str, timeout: float = 30.0) -> httpx.Client:
    """httpx client for a backend: ``api(backend.url).get("/health")`` hits /api/v1/health."""
    return httpx.Client(base_url=f"{base_url}/api/v1", timeout=timeout)


# --- PostgreSQL ---------------------------------------------------------------------------

def pg_bin_dir() -> Path:
    override = os.environ.get("KTRDR_PG_BIN")
    candidates = [Path(override)] if override else []
    candidates += sorted((Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
                         key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).parent)
    for c in candidates:
        if (c / "initdb").is_file() and (c / "pg_ctl").is_file():
            return c
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or "
                       "on PATH. Run `sudo bash scripts/ensure-postgres.sh` (installs Debian's postgresql-15) "
                       "or point KTRDR_PG_BIN at the bin directory.")


@dataclass
class Database:
    name: str
    env: dict[str, str]  # KTRDR_DB_* for services and alembic


class PostgresServer:
    """A throwaway cluster in a temp dir (run as `postgres` when we are root: initdb refuses root)."""

    def __init__(self) -> None:
        self.bin = pg_bin_dir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="ktrdr-pg-"))
        self.data, self.log = self.root / "data", self.root / "postgres.log"
        self.as_root = os.geteuid() == 0
        self._count = 0

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = (["runuser", "-u", "postgres", "--"] if self.as_root else []) + list(args)
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root, check=False)
        if proc.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr or proc.stdout}\n{log}")
        return proc

    def start(self) -> "PostgresServer":
        pwfile = self.root / "pwfile"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--no-sync",
                  "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}")
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "start")
        self.psql(f"CREATE ROLE {DB_USER} LOGIN PASSWORD '{DB_PASSWORD}'")
        return self

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def psql(self, sql: str, database: str = "postgres", user: str = "postgres") -> str:
        password = SUPERUSER_PASSWORD if user == "postgres" else DB_PASSWORD
        proc = subprocess.run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", user,
                               "-d", database, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
                              capture_output=True, text=True, env={**os.environ, "PGPASSWORD": password}, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed: {proc.stderr.strip()} (SQL: {sql})")
        return proc.stdout.strip()

    def create_database(self, name: str | None = None) -> Database:
        self._count += 1
        name = name or f"ktrdr_test_{self._count}_{uuid.uuid4().hex[:6]}"
        self.psql(f"CREATE DATABASE {name} OWNER {DB_USER}")
        return Database(name, {"KTRDR_DB_HOST": "127.0.0.1", "KTRDR_DB_PORT": str(self.port),
                               "KTRDR_DB_NAME": name, "KTRDR_DB_USER": DB_USER, "KTRDR_DB_PASSWORD": DB_PASSWORD})


# --- processes ------------------------------------------------------------------------------

def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The parent's environment minus anything ktrdr reads, plus ``extra``."""
    drop = ("KTRDR_", "DB_", "WORKER_", "STRATEGIES_DIR", "DATA_DIR", "MODELS_DIR", "CHECKPOINT_DIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(PYTHONPATH=str(REFERENCE_DIR), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def migrate(db_env: dict[str, str], revision: str = "head", command: str = "upgrade",
            check: bool = True) -> subprocess.CompletedProcess:
    """``python -m alembic <command> <revision>`` from deploy/reference, like the images run it."""
    args = [command] + ([revision] if revision else [])
    proc = subprocess.run([PYTHON, "-m", "alembic", *args], cwd=REFERENCE_DIR,
                          env=clean_env(db_env), capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"alembic {command} {revision} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


class ServiceProcess:
    """One uvicorn app (``module:app``) on 127.0.0.1, logging to ``log_path``."""

    def __init__(self, name: str, module: str, env: dict[str, str], cwd: Path, port: int | None = None,
                 health_path: str = "/health", log_dir: Path | None = None):
        self.name, self.module, self.env, self.cwd = name, module, env, Path(cwd)
        self.port = port or free_port()
        self.health_path = health_path
        self.log_path = Path(log_dir or cwd) / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True, timeout: float = 60.0) -> "ServiceProcess":
        log = self.log_path.open("a")
        log.write(f"\n===== start {time.strftime('%H:%M:%S')} =====\n")
        log.flush()
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "uvicorn", f"{self.module}:app", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.cwd, env=clean_env(self.env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        if wait:
            self.wait_healthy(timeout)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode if self.proc else '?'}:\n"
                                   f"{self.log_tail()}")
            try:
                if httpx.get(self.url + self.health_path, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not healthy at {self.url}{self.health_path} after {timeout}s:\n"
                           f"{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (graceful, runs the lifespan shutdown), SIGKILL if it hangs."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.running():
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, wait: bool = True) -> "ServiceProcess":
        self.stop()
        return self.start(wait)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else "(no log)"


def backend_env(db: Database, strategies_dir: Path, models_dir: Path, **extra: str) -> dict[str, str]:
    return {**db.env, **FAST, "STRATEGIES_DIR": str(strategies_dir), "KTRDR_DATA_MODELS_DIR": str(models_dir),
            "KTRDR_API_ENVIRONMENT": "development", **extra}


def start_backend(db: Database, cwd: Path, strategies_dir: Path, models_dir: Path, port: int | None = None,
                  wait: bool = True, name: str = "backend", **extra: str) -> ServiceProcess:
    """Backend with CWD ``cwd`` (its ``strategies/`` is what list/validate read)."""
    proc = ServiceProcess(name, "ktrdr.api.main", backend_env(db, strategies_dir, models_dir, **extra), cwd, port,
                          health_path="/api/v1/health")
    return proc.start(wait)


def start_worker(kind: str, db: Database, backend_url: str, data_dir: Path, models_dir: Path, cwd: Path,
                 worker_id: str | None = None, port: int | None = None, wait: bool = True, **extra: str
                 ) -> ServiceProcess:
    module = {"training": "ktrdr.training.training_worker", "backtesting": "ktrdr.backtesting.backtest_worker"}[kind]
    port = port or free_port()
    worker_id = worker_id or f"{kind}-test-{port}"
    env = {**db.env, **FAST, "KTRDR_API_CLIENT_BASE_URL": f"{backend_url}/api/v1", "KTRDR_WORKER_ID": worker_id,
           "KTRDR_WORKER_PORT": str(port), "KTRDR_WORKER_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
           "KTRDR_DATA_DIR": str(data_dir), "KTRDR_DATA_MODELS_DIR": str(models_dir),
           "KTRDR_CHECKPOINT_DIR": str(cwd / "checkpoints"), **extra}
    proc = ServiceProcess(worker_id, module, env, cwd, port)
    proc.worker_id = worker_id
    return proc.start(wait)


def wait_registered(backend_url: str, worker_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with api(backend_url) as c:
        while time.monotonic() < deadline:
            try:
                r = c.get(f"/workers/{worker_id}")
                if r.status_code == 200:
                    return r.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    raise TimeoutError(f"worker {worker_id} did not register with {backend_url} within {timeout}s")


def wait_for_operation(backend_url: str, operation_id: str, statuses: tuple[str, ...] = TERMINAL,
                       timeout: float = 120.0, until=None) -> dict[str, Any]:
    """Poll GET /operations/{id} until its status is in ``statuses`` (or ``until(data)`` holds).
    A 404 right after a start is tolerated (ktrdr's workers insert the row asynchronously)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    with api(backend_url) as c:
        while time.monotonic() < deadline:
            r = c.get(f"/operations/{operation_id}")
            if r.status_code == 200:
                last = r.json()["data"]
                if (until(last) if until else last["status"] in statuses):
                    return last
            elif r.status_code != 404:
                raise AssertionError(f"GET /operations/{operation_id}: {r.status_code} {r.text}")
            time.sleep(0.25)
    raise TimeoutError(f"operation {operation_id} did not reach {statuses} within {timeout}s; last: {last}")


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data")
    subprocess.run([PYTHON, "-m", "ktrdr.data.generate", "--data-dir", str(path)], cwd=REFERENCE_DIR,
                   env=clean_env({}), check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="module")
def strategies_dir(stack_dir) -> Path:
    """A writable copy of the bundled strategies; it is the backend's ./strategies AND STRATEGIES_DIR."""
    path = stack_dir / "backend" / "strategies"
    shutil.copytree(REFERENCE_DIR / "strategies", path)
    return path


@pytest.fixture(scope="module")
def models_dir(stack_dir) -> Path:
    path = stack_dir / "models"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def database(pg) -> Database:
    db = pg.create_database()
    migrate(db.env, "head")
    return db


@pytest.fixture(scope="module")
def backend(database, strategies_dir, models_dir) -> Iterator[ServiceProcess]:
    proc = start_backend(database, strategies_dir.parent, strategies_dir, models_dir)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def training_worker(backend, database, data_dir, models_dir, stack_dir) -> Iterator[ServiceProcess]:
    proc = start_worker("training", database, backend.url, data_dir, models_dir, stack_dir)
    wait_registered(backend.url, proc.worker_id)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def backtest_worker(backend, database, data_dir, models_dir, stack_dir) -> Iterator[ServiceProcess]:
    proc = start_worker("backtesting", database, backend.url, data_dir, models_dir, stack_dir)
    wait_registered(backend.url, proc.worker_id)
    yield proc
    proc.stop()
