"""What every worker shares (ktrdr's WorkerAPIBase): health, self-registration and the
re-registration monitor, the operation endpoints the backend proxies, and running one job in
a background thread while writing its lifecycle to the operations table."""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import sys
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
from fastapi import FastAPI, HTTPException
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ktrdr import __version__
from ktrdr.api.models.operations import ACTIVE, OperationStatus, empty_progress, iso, utcnow
from ktrdr.api.repositories.operations import OperationsRepository, make_engine
from ktrdr.config import settings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logger = logging.getLogger("ktrdr.worker")
MAX_FINISHED_KEPT = 50


def require_torch():
    """Workers cannot do anything without torch: stop at startup with a clear message."""
    try:
        import torch
    except ImportError as exc:
        print(f"FATAL: this ktrdr worker needs PyTorch, which is not importable ({exc}). Install the `ml` extra "
              "(pip install torch, CPU or CUDA build) or run a ktrdr-worker-cpu/-gpu image; the backend image "
              "has no torch on purpose.", file=sys.stderr, flush=True)
        raise SystemExit(3) from None
    return torch


torch = require_torch()
# The reference models are tiny: one intra-op thread is ~10x faster than several on a busy CPU
# (thread hand-offs cost more than the matrix work), and the event loop keeps a core to itself.
torch.set_num_threads(1)


def torch_device() -> "torch.device":
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_name() -> str:
    dev = torch_device()
    return torch.cuda.get_device_name(0) if dev.type == "cuda" else dev.type


def capabilities() -> dict[str, Any]:
    dev = torch_device()
    caps: dict[str, Any] = {"gpu": dev.type != "cpu"}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(0)
        caps.update(gpu_type="CUDA", gpu_count=torch.cuda.device_count(), gpu_name=props.name,
                    gpu_memory_mb=props.total_memory // 2**20)
    elif dev.type == "mps":
        caps.update(gpu_type="MPS", gpu_count=1, gpu_name="Apple MPS")
    caps.update(torch_version=torch.__version__, image_revision=settings.image_revision())
    return caps


def json_safe(value: Any) -> Any:
    """JSONB rejects NaN/Infinity: undefined numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


class Cancelled(Exception):
    """Raised inside a job when the backend (or shutdown) cancelled it."""


@dataclass
class Job:
    operation_id: str
    info: dict[str, Any]
    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=lambda: {"epochs": []})
    task: asyncio.Task | None = None  # held so the running task is not garbage-collected

    def progress(self, percentage: float, step: str, steps_completed: int | None = None,
                 steps_total: int | None = None, items_processed: int | None = None,
                 items_total: int | None = None, current_item: str | None = None) -> None:
        """Called from the job thread; plain assignments, read by the event loop."""
        if self.cancel.is_set():
            raise Cancelled(self.cancel_reason or "cancelled")
        p = self.info["progress"]
        p.update(percentage=round(min(max(percentage, 0.0), 100.0), 2), current_step=step)
        for key, value in (("steps_completed", steps_completed), ("steps_total", steps_total),
                           ("items_processed", items_processed), ("items_total", items_total),
                           ("current_item", current_item)):
            if value is not None:
                p[key] = value


class WorkerAPIBase:
    def __init__(self, worker_type: str, operation_type: str):
        settings.validate_all("worker")
        self.worker_type, self.operation_type = worker_type, operation_type
        self.service = f"{worker_type}-worker"
        self.worker_id = settings.worker_id() or f"{self.service}-{secrets.token_hex(4)}"
        self.jobs: dict[str, Job] = {}
        self.registered = False
        # When the backend last health-checked us (GET /health), as ktrdr's base.py tracks it.
        self._last_health_check_received: float | None = None
        self._wake = asyncio.Event()
        self.repo: OperationsRepository | None = None
        self.app = FastAPI(title=f"KTRDR {worker_type} worker (reference)", version=__version__,
                           lifespan=self._lifespan)
        self._routes()

    # --- lifecycle ------------------------------------------------------------------

    @asynccontextmanager
    async def _lifespan(self, app: FastAPI):
        engine = make_engine()
        self.repo = OperationsRepository(engine)
        self.client = httpx.AsyncClient()
        logger.info("%s %s starting: torch %s on %s, backend %s, advertised as %s", self.service, self.worker_id,
                    torch.__version__, device_name(), settings.backend_base_url(), settings.worker_public_base_url())
        registration = asyncio.create_task(self._registration_loop())
        try:
            yield
        finally:
            registration.cancel()
            for job in self.active_jobs():
                job.cancel_reason = "worker shutting down"
                job.cancel.set()
                await self.repo.finish(job.operation_id, OperationStatus.CANCELLED.value,
                                       error="Cancelled: worker shutting down (SIGTERM)")
            await self.client.aclose()
            await engine.dispose()

    def active_jobs(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.info["status"] in ACTIVE]

    def registration_body(self) -> dict[str, Any]:
        active = self.active_jobs()
        return {"worker_id": self.worker_id, "worker_type": self.worker_type,
                "endpoint_url": settings.worker_public_base_url(), "capabilities": capabilities(),
                "current_operation_id": active[0].operation_id if active else None, "completed_operations": []}

    async def _registration_loop(self) -> None:
        """Register with backoff until the backend answers; then detect a backend restart the way
        ktrdr's workers do (ktrdr/workers/base.py, _monitor_health_checks): every
        KTRDR_WORKER_REREGISTRATION_INTERVAL (ktrdr: 10 s), if no GET /health arrived for
        KTRDR_WORKER_REREGISTRATION_TIMEOUT (ktrdr: 30 s) or none ever did, ask GET /workers/{id} and
        re-register on 404. Any caller of /health counts as the backend, so a Docker HEALTHCHECK
        that calls /health hides a restarted backend for ever: health checks must call / instead."""
        base = f"{settings.backend_base_url()}{settings.API_PREFIX}/workers"
        interval = settings.worker_reregistration_interval()
        silence = settings.worker_reregistration_timeout()
        backoff = 1.0
        while True:
            try:
                if not self.registered:
                    resp = await self.client.post(f"{base}/register", json=self.registration_body(), timeout=10.0)
                    resp.raise_for_status()
                    self.registered, backoff = True, 1.0
                    logger.info("Registered with backend %s as %s", settings.backend_base_url(), self.worker_id)
                else:
                    last = self._last_health_check_received
                    if last is None or time.monotonic() - last > silence:
                        resp = await self.client.get(f"{base}/{self.worker_id}", timeout=10.0)
                        if last is not None:
                            self._last_health_check_received = time.monotonic()
                        if resp.status_code == 404:
                            logger.warning("Backend no longer knows %s (restarted?); re-registering", self.worker_id)
                            self.registered = False
                            continue
                delay = interval
            except httpx.HTTPError as exc:
                delay, backoff = backoff, min(backoff * 2, max(1.0, min(30.0, interval)))
                logger.warning("Registration with backend %s failed, not reachable or refused (%s: %s); "
                               "retrying in %.0f s",
                               settings.backend_base_url(), type(exc).__name__, exc, delay)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass

    # --- jobs -----------------------------------------------------------------------

    async def start_job(self, operation_id: str, metadata: dict[str, Any], steps_total: int,
                        work: Callable[[Job], dict[str, Any]]) -> dict[str, Any]:
        """Create the DB row (pending), then run ``work`` in a thread; returns at once."""
        if operation_id in self.jobs:
            raise HTTPException(409, detail=f"Operation {operation_id} already exists on this worker")
        info = {"operation_id": operation_id, "parent_operation_id": None, "operation_type": self.operation_type,
                "status": OperationStatus.PENDING.value, "created_at": iso(utcnow()), "started_at": None,
                "completed_at": None, "progress": empty_progress(steps_total), "metadata": metadata,
                "error_message": None, "warnings": [], "errors": [], "result_summary": None, "metrics": None,
                "is_backend_local": False, "worker_id": self.worker_id}
        job = Job(operation_id, info)
        # Known here before the row exists: the backend's watchdog must never find a row we deny.
        self.jobs[operation_id] = job
        try:
            await self.repo.create(operation_id, self.operation_type, self.worker_id, metadata)
        except IntegrityError:
            del self.jobs[operation_id]
            raise HTTPException(409, detail=f"Operation {operation_id} already exists in the database") from None
        except (SQLAlchemyError, OSError) as exc:
            del self.jobs[operation_id]
            raise HTTPException(500, detail=f"Worker {self.worker_id} cannot record operation {operation_id} in "
                                            f"{settings.database_display()}: {type(exc).__name__}: {exc}. Is the "
                                            "schema migrated (`python -m alembic upgrade head`)?") from None
        job.task = asyncio.create_task(self._run(job, work))
        return {"success": True, "operation_id": operation_id, "status": "started"}

    async def _run(self, job: Job, work: Callable[[Job], dict[str, Any]]) -> None:
        info = job.info
        try:
            await self.repo.mark_running(job.operation_id, "Starting")
            info.update(status=OperationStatus.RUNNING.value, started_at=iso(utcnow()))
            started = time.monotonic()
            result = json_safe(await asyncio.to_thread(work, job))
            result.setdefault("execution_time_seconds", round(time.monotonic() - started, 3))
            info.update(status=OperationStatus.COMPLETED.value, result_summary=result,
                        warnings=list(result.get("warnings") or []))
            info["progress"]["percentage"] = 100.0
            await self.repo.finish(job.operation_id, OperationStatus.COMPLETED.value, result=result,
                                   message=info["progress"]["current_step"])
            logger.info("Operation %s completed in %.1f s", job.operation_id, time.monotonic() - started)
        except Cancelled as exc:
            info.update(status=OperationStatus.CANCELLED.value, error_message=f"Cancelled: {exc}")
            await self.repo.finish(job.operation_id, OperationStatus.CANCELLED.value, error=info["error_message"])
            logger.info("Operation %s cancelled (%s)", job.operation_id, exc)
        except Exception as exc:  # any job failure must end up in the operation, with its reason
            message = str(exc) or type(exc).__name__
            logger.exception("Operation %s failed: %s", job.operation_id, message)
            info.update(status=OperationStatus.FAILED.value, error_message=message, errors=[message])
            try:
                await self.repo.finish(job.operation_id, OperationStatus.FAILED.value, error=message)
            except Exception:
                logger.exception("Could not record the failure of %s", job.operation_id)
        finally:
            info["completed_at"] = iso(utcnow())
            info["metrics"] = job.metrics = json_safe(job.metrics)
            self._prune()

    def _prune(self) -> None:
        finished = [k for k, j in self.jobs.items() if j.info["status"] not in ACTIVE]
        for key in finished[:-MAX_FINISHED_KEPT]:
            del self.jobs[key]

    # --- HTTP -----------------------------------------------------------------------

    def _routes(self) -> None:
        app = self.app

        @app.get("/health")
        async def health() -> dict[str, Any]:
            self._last_health_check_received = time.monotonic()  # "the backend is alive" (ktrdr's rule)
            try:
                active = self.active_jobs()
                return {"healthy": True, "service": self.service, "timestamp": iso(utcnow()),
                        "status": "operational", "worker_status": "busy" if active else "idle",
                        "current_operation": active[0].operation_id if active else None,
                        "worker_id": self.worker_id, "worker_type": self.worker_type,
                        "registered": self.registered, "torch_version": torch.__version__,
                        "cuda_available": torch.cuda.is_available(), "device_name": device_name()}
            except Exception as exc:  # ktrdr answers 200 with healthy=false
                return {"healthy": False, "service": self.service, "error": str(exc)}

        @app.get("/")
        async def root() -> dict[str, Any]:
            return {"service": self.service, "version": "1.0.0", "status": "running",
                    "timestamp": iso(utcnow()), "worker_id": self.worker_id}

        @app.post("/backend-shutdown")
        async def backend_shutdown() -> dict[str, Any]:
            self.registered = False  # poll-register until a backend answers again
            self._wake.set()
            return {"acknowledged": True}

        @app.get("/api/v1/operations")
        async def list_operations() -> dict[str, Any]:
            infos = [j.info for j in self.jobs.values()]
            return {"success": True, "data": infos, "total_count": len(infos),
                    "active_count": len(self.active_jobs())}

        def job_or_404(operation_id: str) -> Job:
            job = self.jobs.get(operation_id)
            if job is None:
                raise HTTPException(404, detail=f"Operation not found: {operation_id}")
            return job

        @app.get("/api/v1/operations/{operation_id}")
        async def get_operation(operation_id: str, force_refresh: bool = False) -> dict[str, Any]:
            job = job_or_404(operation_id)
            return {"success": True, "data": json_safe({**job.info, "metrics": job.metrics})}

        @app.get("/api/v1/operations/{operation_id}/metrics")
        async def get_metrics(operation_id: str, cursor: int = 0) -> dict[str, Any]:
            job = job_or_404(operation_id)
            epochs = job.metrics.get("epochs", [])
            return {"success": True, "data": json_safe({"operation_id": operation_id,
                                                        "metrics": {"epochs": epochs[cursor:]},
                                                        "new_cursor": len(epochs)})}

        @app.delete("/api/v1/operations/{operation_id}/cancel")
        async def cancel(operation_id: str, reason: str | None = None) -> dict[str, Any]:
            job = job_or_404(operation_id)
            if job.info["status"] in ACTIVE:
                job.cancel_reason = reason or "cancelled by request"
                job.cancel.set()  # the job thread stops at its next progress report
            return {"success": True, "data": {"operation_id": operation_id, "status": "cancelled",
                                              "cancellation_reason": reason}}
