from fastapi import APIRouter, Body, Depends, HTTPException, Query
from pydantic import BaseModel

from ktrdr.api.dependencies import get_operations, require_schema
from ktrdr.api.models.operations import OperationStatus, OperationType
from ktrdr.api.services.operations_service import OperationsService

router = APIRouter(prefix="/operations", tags=["operations"], dependencies=[Depends(require_schema)])


class CancelRequest(BaseModel):
    reason: str | None = None
    force: bool = False


async def _info_or_404(ops: OperationsService, operation_id: str) -> dict:
    info = await ops.get_info(operation_id)
    if info is None:
        raise HTTPException(404, detail=f"Operation not found: {operation_id}")
    return info


@router.get("")
async def list_operations(status: OperationStatus | None = None, operation_type: OperationType | None = None,
                          limit: int = Query(10, ge=1, le=1000), offset: int = Query(0, ge=0),
                          active_only: bool = False, ops: OperationsService = Depends(get_operations)) -> dict:
    return await ops.list(status=status.value if status else None,
                          operation_type=operation_type.value if operation_type else None,
                          limit=limit, offset=offset, active_only=active_only)


@router.get("/{operation_id}")
async def get_operation(operation_id: str, ops: OperationsService = Depends(get_operations)) -> dict:
    return {"success": True, "data": await _info_or_404(ops, operation_id)}


@router.delete("/{operation_id}")
async def cancel_operation(operation_id: str, body: CancelRequest | None = Body(None),
                           ops: OperationsService = Depends(get_operations)) -> dict:
    return {"success": True, "data": await ops.cancel(operation_id, body.reason if body else None)}


@router.get("/{operation_id}/results")
async def operation_results(operation_id: str, ops: OperationsService = Depends(get_operations)) -> dict:
    info = await _info_or_404(ops, operation_id)
    if info["status"] not in (OperationStatus.COMPLETED.value, OperationStatus.FAILED.value):
        raise HTTPException(400, detail=f"Operation {operation_id} has no results yet: status is {info['status']}")
    return {"success": True, "operation_id": operation_id, "operation_type": info["operation_type"],
            "status": info["status"], "results": info["result_summary"]}


@router.get("/{operation_id}/metrics")
async def operation_metrics(operation_id: str, ops: OperationsService = Depends(get_operations)) -> dict:
    info = await _info_or_404(ops, operation_id)
    return {"success": True, "data": {"operation_id": operation_id, "operation_type": info["operation_type"],
                                      "metrics": info["metrics"] or {}}}
