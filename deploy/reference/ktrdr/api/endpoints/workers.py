from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ktrdr.api.dependencies import get_registry
from ktrdr.api.services.worker_registry import WorkerRegistry, WorkerStatus, WorkerType

router = APIRouter(prefix="/workers", tags=["workers"])


class CompletedOperation(BaseModel):
    operation_id: str
    status: str  # COMPLETED | FAILED | CANCELLED (uppercase, as ktrdr sends it)
    result: dict[str, Any] | None = None
    error_message: str | None = None
    completed_at: str | None = None


class WorkerRegistrationRequest(BaseModel):
    worker_id: str = Field(min_length=1)
    worker_type: WorkerType
    endpoint_url: str = Field(min_length=1)
    capabilities: dict[str, Any] | None = None
    current_operation_id: str | None = None
    completed_operations: list[CompletedOperation] = []


@router.post("/register")
async def register_worker(req: WorkerRegistrationRequest, registry: WorkerRegistry = Depends(get_registry)):
    if registry.shutting_down:
        return JSONResponse(status_code=503, headers={"Retry-After": "5"},
                            content={"detail": "Backend is shutting down; retry registration shortly"})
    worker = registry.register(req.worker_id, req.worker_type.value, req.endpoint_url,
                               req.capabilities, req.current_operation_id)
    return worker.to_dict()


@router.get("")
async def list_workers(worker_type: WorkerType | None = None, status: str | None = Query(None),
                       registry: WorkerRegistry = Depends(get_registry)) -> list[dict]:
    if status is not None and status not in {s.value for s in WorkerStatus}:
        return []  # ktrdr answers an unknown status with an empty list, not 422
    return [w.to_dict() for w in registry.list(worker_type.value if worker_type else None, status)]


@router.get("/{worker_id}")
async def get_worker(worker_id: str, registry: WorkerRegistry = Depends(get_registry)) -> dict:
    worker = registry.get(worker_id)
    if worker is None:
        raise HTTPException(404, detail=f"Worker not found: {worker_id}")
    return worker.to_dict()
