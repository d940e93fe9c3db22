from fastapi import APIRouter, Depends, Query

from ktrdr.api.dependencies import get_operations, require_schema
from ktrdr.api.services.operations_service import OperationsService

router = APIRouter(tags=["dummy"], dependencies=[Depends(require_schema)])


@router.post("/dummy/start")
async def start_dummy(duration_seconds: float = Query(200.0, gt=0, le=3600),
                      ops: OperationsService = Depends(get_operations)) -> dict:
    """Backend-local operation (no worker): proves the backend can write operations to its DB.
    ``duration_seconds`` is a reference-only knob (ktrdr always runs 200 s)."""
    operation_id = await ops.start_dummy(duration_seconds)
    return {"success": True, "data": {"operation_id": operation_id, "status": "started",
                                      "message": f"Dummy task started ({duration_seconds:g} s)"}, "error": None}
