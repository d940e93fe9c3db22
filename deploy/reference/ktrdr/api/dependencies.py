"""FastAPI dependencies shared by the routers."""

from fastapi import Request

from ktrdr.api.services.operations_service import OperationsService
from ktrdr.api.services.worker_registry import WorkerRegistry


def get_operations(request: Request) -> OperationsService:
    return request.app.state.operations


def get_registry(request: Request) -> WorkerRegistry:
    return request.app.state.registry


async def require_schema(request: Request) -> None:
    """Operation endpoints answer 503 until `alembic upgrade head` has run."""
    await get_operations(request).ensure_schema()
