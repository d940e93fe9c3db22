"""Backend side of operations: schema gate, dispatch to workers, progress proxy, cancel, watchdog."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
from fastapi import HTTPException

from ktrdr.api.models.db import SCHEMA_HEAD
from ktrdr.api.models.operations import (ACTIVE, TERMINAL, OperationStatus, OperationType, empty_progress,
                                         info_from_record, iso, new_operation_id, operation_metadata, summary,
                                         utcnow)
from ktrdr.api.repositories.operations import OperationsRepository
from ktrdr.api.services.worker_registry import WorkerEndpoint, WorkerRegistry, WorkerStatus
from ktrdr.config import settings

logger = logging.getLogger(__name__)
DB_TIMEOUT = 5.0
UPGRADE_HINT = "run `python -m alembic upgrade head` with the backend image (CWD /app), then retry"


class OperationsService:
    def __init__(self, repo: OperationsRepository, registry: WorkerRegistry, client: httpx.AsyncClient):
        self.repo, self.registry, self.client = repo, registry, client
        self.started = time.monotonic()
        self._proxies: dict[str, str] = {}  # operation id -> worker id (like ktrdr's proxy map)
        self._live: dict[str, tuple[float, dict[str, Any]]] = {}
        self._orphans: dict[str, float] = {}
        self._local: dict[str, tuple[asyncio.Task, dict[str, Any]]] = {}  # backend-local (dummy) operations
        self.last_check = None
        self.monitor_running = False

    # --- schema ---------------------------------------------------------------------

    async def database_status(self) -> dict[str, Any]:
        status = {"connected": False, "database": settings.database_display(), "revision": None,
                  "head": SCHEMA_HEAD, "up_to_date": False, "error": None}
        try:
            status["revision"] = await asyncio.wait_for(self.repo.schema_revision(), DB_TIMEOUT)
            status["connected"] = True
            status["up_to_date"] = status["revision"] == SCHEMA_HEAD
        except Exception as exc:  # health must answer whatever the DB does
            status["error"] = f"{type(exc).__name__}: {exc}"[:300]
        return status

    async def ensure_schema(self) -> None:
        """Refuse operation endpoints unless the schema is exactly at head."""
        db = await self.database_status()
        if not db["connected"]:
            raise HTTPException(503, detail=f"Database {db['database']} is unreachable ({db['error']}); "
                                            "check KTRDR_DB_* and that PostgreSQL is up")
        if not db["up_to_date"]:
            current = db["revision"] or "empty (never migrated)"
            raise HTTPException(503, detail=f"Database schema is behind: revision {current}, this backend "
                                            f"needs {SCHEMA_HEAD} (head); {UPGRADE_HINT}")

    # --- dispatch -------------------------------------------------------------------

    async def dispatch(self, worker_type: str, path: str, payload: dict[str, Any], operation_id: str
                       ) -> WorkerEndpoint:
        worker = self.registry.select(worker_type)
        if worker is None:
            module = {"training": "ktrdr.training.training_worker", "backtesting": "ktrdr.backtesting.backtest_worker"}
            raise HTTPException(503, detail={
                "error": f"No available {worker_type} workers",
                "worker_type": worker_type,
                "registered_workers": [{"worker_id": w.worker_id, "worker_type": w.worker_type,
                                        "status": w.status} for w in self.registry.list()],
                "backend_uptime_seconds": round(time.monotonic() - self.started, 1),
                "hint": f"Start a {worker_type} worker (python -m uvicorn {module.get(worker_type, '?')}:app) "
                        "with KTRDR_API_CLIENT_BASE_URL pointing at this backend, or wait until a busy one "
                        "is free; GET /api/v1/workers shows what is registered"})
        url = f"{worker.endpoint_url}{path}"
        try:
            resp = await self.client.post(url, json=payload, timeout=30.0)
        except httpx.HTTPError as exc:
            raise HTTPException(500, detail=f"Failed to dispatch {operation_id} to worker {worker.worker_id} "
                                            f"at {url}: {type(exc).__name__}: {exc}") from None
        if resp.status_code >= 400:
            raise HTTPException(500, detail=f"Failed to dispatch {operation_id} to worker {worker.worker_id} "
                                            f"at {url}: HTTP {resp.status_code}: {resp.text[:500]}")
        self.registry.mark_busy(worker, operation_id)
        self._proxies[operation_id] = worker.worker_id
        return worker

    def _worker_for(self, row: Any) -> WorkerEndpoint | None:
        # After a backend restart the proxy map is empty; the row's worker_id still finds the worker.
        return self.registry.get(self._proxies.get(row.operation_id) or row.worker_id)

    # --- reading --------------------------------------------------------------------

    async def get_info(self, operation_id: str) -> dict[str, Any] | None:
        row = await self.repo.get(operation_id)
        if row is None:
            return None
        if row.is_backend_local:
            info = info_from_record(row)
            if row.operation_id in self._local and row.status in ACTIVE:
                info["progress"] = dict(self._local[row.operation_id][1])
            return info
        if row.status in ACTIVE:
            live = await self._live_info(row)
            row = await self.repo.get(operation_id) or row  # the proxy may have failed it
            info = info_from_record(row)
            if live and row.status in ACTIVE:
                if live.get("status") in ACTIVE:
                    info["status"] = live["status"]
                info["progress"] = {**live.get("progress", info["progress"]), "context": {}}
                info["metrics"] = live.get("metrics") or info["metrics"]
            return info
        self._release(row)
        return info_from_record(row)

    def _release(self, row: Any) -> None:
        """A finished operation frees its worker now, not only at the next health check, so a
        client that saw "completed" can start the next job at once."""
        worker = self._worker_for(row)
        if worker is not None:
            self.registry.mark_finished(worker, row.operation_id)
        self._proxies.pop(row.operation_id, None)

    async def _live_info(self, row: Any, force: bool = False) -> dict[str, Any] | None:
        """Pull progress from the worker (at most once per OPERATIONS_CACHE_TTL)."""
        cached = self._live.get(row.operation_id)
        if cached and not force and time.monotonic() - cached[0] < settings.operations_cache_ttl():
            return cached[1]
        worker = self._worker_for(row)
        if worker is None:
            return None
        try:
            resp = await self.client.get(f"{worker.endpoint_url}/api/v1/operations/{row.operation_id}", timeout=5.0)
        except httpx.HTTPError:
            return None  # unreachable: the health checks decide whether the worker is gone
        if resp.status_code == 404:
            await self.fail(row.operation_id,
                            f"Worker {worker.worker_id} at {worker.endpoint_url} no longer knows this operation "
                            "(the worker restarted while running it)")
            return None
        if resp.status_code != 200:
            return None
        data = resp.json().get("data") or {}
        self._live[row.operation_id] = (time.monotonic(), data)
        return data

    async def list(self, **filters: Any) -> dict[str, Any]:
        rows, total, active = await self.repo.list(**filters)
        return {"success": True, "data": [summary(info_from_record(r)) for r in rows],
                "total_count": total, "active_count": active}

    # --- changing -------------------------------------------------------------------

    async def fail(self, operation_id: str, reason: str) -> None:
        if await self.repo.finish(operation_id, OperationStatus.FAILED.value, error=reason):
            logger.warning("Operation %s failed: %s", operation_id, reason)
        self._forget(operation_id)

    def _forget(self, operation_id: str) -> None:
        self._live.pop(operation_id, None)
        self._orphans.pop(operation_id, None)

    async def cancel(self, operation_id: str, reason: str | None) -> dict[str, Any]:
        row = await self.repo.get(operation_id)
        if row is None:
            raise HTTPException(404, detail=f"Operation not found: {operation_id}")
        if row.status in TERMINAL:
            raise HTTPException(400, detail=f"Cannot cancel operation {operation_id}: it is already "
                                            f"OperationStatus.{row.status.upper()}")
        remote, task_cancelled = False, False
        local = self._local.pop(operation_id, None)
        if local is not None:
            task_cancelled = local[0].cancel()
        worker = None if row.is_backend_local else self._worker_for(row)
        if worker is not None:
            try:
                resp = await self.client.delete(
                    f"{worker.endpoint_url}/api/v1/operations/{operation_id}/cancel",
                    params={"reason": reason} if reason else None, timeout=10.0)
                remote = resp.status_code < 400
            except httpx.HTTPError as exc:
                logger.warning("Cancel of %s could not reach worker %s: %s", operation_id, worker.worker_id, exc)
        await self.repo.finish(operation_id, OperationStatus.CANCELLED.value,
                               error=f"Cancelled: {reason}" if reason else "Cancelled by request")
        self._forget(operation_id)
        return {"success": True, "operation_id": operation_id, "status": "cancelled",
                "cancelled_at": iso(utcnow()), "cancellation_reason": reason, "task_cancelled": task_cancelled,
                "remote_cancelled": remote, "children_cancelled": []}

    async def start_dummy(self, duration_seconds: float, steps: int = 100) -> str:
        """ktrdr's backend-local smoke operation: no worker, only the DB and this process."""
        operation_id = new_operation_id(OperationType.DUMMY.value)
        await self.repo.create(operation_id, OperationType.DUMMY.value, None,
                               operation_metadata(None, None, None, None, {"duration_seconds": duration_seconds}),
                               is_backend_local=True)
        progress = empty_progress(steps)

        async def run() -> None:
            await self.repo.mark_running(operation_id, "Starting dummy task")
            for i in range(1, steps + 1):
                await asyncio.sleep(duration_seconds / steps)
                progress.update(percentage=100.0 * i / steps, current_step=f"Iteration {i}/{steps}",
                                steps_completed=i)
            await self.repo.finish(operation_id, OperationStatus.COMPLETED.value,
                                   result={"iterations_completed": steps, "duration_seconds": duration_seconds},
                                   message=f"Completed {steps} iterations")
            self._local.pop(operation_id, None)

        self._local[operation_id] = (asyncio.create_task(run()), progress)
        return operation_id

    # --- watchdog -------------------------------------------------------------------

    async def monitor_forever(self) -> None:
        self.monitor_running = True
        try:
            while True:
                try:
                    await self.monitor_once()
                except Exception:  # keep watching whatever one round hits
                    logger.exception("Worker/operation monitor round failed")
                await asyncio.sleep(settings.worker_health_check_interval())
        finally:
            self.monitor_running = False

    async def monitor_once(self) -> None:
        await self.registry.health_check_all(self.client)
        self.last_check = utcnow()
        try:
            rows = await asyncio.wait_for(self.repo.active_remote(), DB_TIMEOUT)
        except Exception:
            return  # no DB or no schema yet: nothing can be running
        for row in rows:
            worker = self._worker_for(row)
            if worker is None:
                first = self._orphans.setdefault(row.operation_id, time.monotonic())
                if time.monotonic() - first > settings.orphan_timeout():
                    await self.fail(row.operation_id,
                                    f"Worker {row.worker_id} disappeared: it is no longer registered and did not "
                                    f"come back within {settings.orphan_timeout():.0f} s")
            elif worker.status == WorkerStatus.TEMPORARILY_UNAVAILABLE.value:
                await self.fail(row.operation_id,
                                f"Worker {worker.worker_id} at {worker.endpoint_url} stopped answering health "
                                f"checks ({worker.health_check_failures} consecutive failures) while running "
                                "this operation")
            else:
                self._orphans.pop(row.operation_id, None)
                await self._live_info(row, force=True)

    def orphan_detector_status(self) -> dict[str, Any]:
        return {"running": self.monitor_running, "potential_orphans_count": len(self._orphans),
                "last_check": iso(self.last_check), "orphan_timeout_seconds": settings.orphan_timeout(),
                "check_interval_seconds": settings.worker_health_check_interval()}
