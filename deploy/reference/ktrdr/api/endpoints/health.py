from fastapi import APIRouter, Depends

from ktrdr import __version__
from ktrdr.api.dependencies import get_operations
from ktrdr.api.services.operations_service import OperationsService

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(ops: OperationsService = Depends(get_operations)) -> dict:
    # Always 200 like ktrdr; the extra "database" field says whether operations can be served.
    return {"status": "ok", "version": __version__, "orphan_detector": ops.orphan_detector_status(),
            "database": await ops.database_status()}
