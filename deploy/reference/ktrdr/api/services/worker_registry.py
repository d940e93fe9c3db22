"""In-memory worker registry, like ktrdr's: workers push-register, the backend health-checks them.

In memory on purpose (ktrdr does the same): after a backend restart the registry is empty until
the workers notice (GET /workers/{id} answers 404) and register again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import httpx

from ktrdr.api.models.operations import iso, utcnow
from ktrdr.config import settings

logger = logging.getLogger(__name__)


class WorkerType(str, Enum):
    BACKTESTING = "backtesting"
    TRAINING = "training"
    CPU_TRAINING = "cpu_training"  # deprecated in ktrdr, still accepted
    GPU_HOST = "gpu_host"
    AGENT_DESIGN = "agent_design"
    AGENT_ASSESSMENT = "agent_assessment"


class WorkerStatus(str, Enum):
    AVAILABLE = "available"
    BUSY = "busy"
    TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"


@dataclass
class WorkerEndpoint:
    worker_id: str
    worker_type: str
    endpoint_url: str
    capabilities: dict[str, Any] = field(default_factory=dict)
    status: str = WorkerStatus.AVAILABLE.value
    current_operation_id: str | None = None
    last_health_check: Any = None
    last_healthy_at: Any = None
    health_check_failures: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    unhealthy_since: float | None = None
    # When the backend last changed the worker's state itself (dispatched to it, saw its operation
    # finish): a health answer to a request sent before that is older news and is ignored.
    changed_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"worker_id": self.worker_id, "worker_type": self.worker_type,
                "endpoint_url": self.endpoint_url, "status": self.status,
                "current_operation_id": self.current_operation_id, "capabilities": self.capabilities,
                "last_health_check": iso(self.last_health_check), "last_healthy_at": iso(self.last_healthy_at),
                "health_check_failures": self.health_check_failures, "metadata": self.metadata}


class WorkerRegistry:
    def __init__(self) -> None:
        self._workers: dict[str, WorkerEndpoint] = {}
        self.shutting_down = False

    def register(self, worker_id: str, worker_type: str, endpoint_url: str,
                 capabilities: dict[str, Any] | None, current_operation_id: str | None) -> WorkerEndpoint:
        endpoint_url = endpoint_url.rstrip("/")
        # A worker restarted with a new id on the same URL replaces its stale entry.
        for stale in [w for w in self._workers.values()
                      if w.endpoint_url == endpoint_url and w.worker_id != worker_id]:
            logger.info("Evicting worker %s: %s re-registered on %s", stale.worker_id, worker_id, endpoint_url)
            del self._workers[stale.worker_id]
        worker = self._workers.get(worker_id)
        if worker is None:
            worker = WorkerEndpoint(worker_id, worker_type, endpoint_url)
            self._workers[worker_id] = worker
            logger.info("Registered %s worker %s at %s", worker_type, worker_id, endpoint_url)
        worker.worker_type, worker.endpoint_url = worker_type, endpoint_url
        worker.capabilities = capabilities or {}
        worker.current_operation_id = current_operation_id
        worker.status = WorkerStatus.BUSY.value if current_operation_id else WorkerStatus.AVAILABLE.value
        worker.health_check_failures, worker.unhealthy_since = 0, None
        worker.last_healthy_at = utcnow()
        return worker

    def get(self, worker_id: str | None) -> WorkerEndpoint | None:
        return self._workers.get(worker_id) if worker_id else None

    def list(self, worker_type: str | None = None, status: str | None = None) -> list[WorkerEndpoint]:
        return [w for w in self._workers.values()
                if (worker_type is None or w.worker_type == worker_type)
                and (status is None or w.status == status)]

    def select(self, worker_type: str) -> WorkerEndpoint | None:
        """Training: GPU workers first, else the first CPU one. Backtesting: least recently used."""
        available = self.list(worker_type, WorkerStatus.AVAILABLE.value)
        if not available:
            return None
        if worker_type == WorkerType.TRAINING.value:
            gpu = [w for w in available if w.capabilities.get("gpu") is True]
            chosen = (gpu or available)[0]
        else:
            chosen = min(available, key=lambda w: w.metadata.get("last_selected", 0.0))
        chosen.metadata["last_selected"] = time.time()
        return chosen

    def mark_finished(self, worker: WorkerEndpoint, operation_id: str) -> None:
        """A finished operation frees its worker now, not only at the next health check."""
        if worker.current_operation_id == operation_id:
            worker.changed_at = time.monotonic()
            worker.current_operation_id = None
            if worker.status == WorkerStatus.BUSY.value:
                worker.status = WorkerStatus.AVAILABLE.value

    def mark_busy(self, worker: WorkerEndpoint, operation_id: str) -> None:
        # Corrected by the next health check from the worker's own report.
        worker.changed_at = time.monotonic()
        worker.status, worker.current_operation_id = WorkerStatus.BUSY.value, operation_id

    async def health_check_all(self, client: httpx.AsyncClient) -> None:
        await asyncio.gather(*(self._check(client, w) for w in list(self._workers.values())))

    async def _check(self, client: httpx.AsyncClient, worker: WorkerEndpoint) -> None:
        worker.last_health_check = utcnow()
        sent = time.monotonic()
        try:
            resp = await client.get(f"{worker.endpoint_url}/health", timeout=settings.worker_health_check_timeout())
            if resp.status_code != 200:
                raise httpx.HTTPStatusError(f"HTTP {resp.status_code}", request=resp.request, response=resp)
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            worker.health_check_failures += 1
            if worker.health_check_failures >= settings.worker_max_health_failures():
                if worker.status != WorkerStatus.TEMPORARILY_UNAVAILABLE.value:
                    logger.warning("Worker %s at %s failed %d health checks (%s): temporarily_unavailable",
                                   worker.worker_id, worker.endpoint_url, worker.health_check_failures, exc)
                worker.status = WorkerStatus.TEMPORARILY_UNAVAILABLE.value
                worker.unhealthy_since = worker.unhealthy_since or time.monotonic()
                if time.monotonic() - worker.unhealthy_since > settings.worker_removal_threshold():
                    logger.warning("Removing worker %s: unhealthy for more than %.0f s",
                                   worker.worker_id, settings.worker_removal_threshold())
                    self._workers.pop(worker.worker_id, None)
            return
        worker.health_check_failures, worker.unhealthy_since = 0, None
        worker.last_healthy_at = utcnow()
        if sent < worker.changed_at:
            return  # asked before the backend's own change (a dispatch, a finish): the next check asks again
        worker.current_operation_id = body.get("current_operation")
        worker.status = (WorkerStatus.BUSY.value if body.get("worker_status") == "busy"
                         else WorkerStatus.AVAILABLE.value)
