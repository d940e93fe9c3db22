from datetime import date

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from ktrdr.api.dependencies import get_operations, require_schema
from ktrdr.api.models.operations import new_operation_id
from ktrdr.api.services.operations_service import OperationsService
from ktrdr.api.services.strategy_service import resolve_for_dispatch
from ktrdr.config.strategy_loader import training_params, training_symbols, training_timeframes

router = APIRouter(prefix="/trainings", tags=["training"], dependencies=[Depends(require_schema)])
DATE = r"^\d{4}-\d{2}-\d{2}$"
DEFAULT_START_DATE = "2020-01-01"


class TrainingStartRequest(BaseModel):
    strategy_name: str = Field(min_length=1)
    symbols: list[str] | None = None
    timeframes: list[str] | None = None
    start_date: str | None = Field(None, pattern=DATE)
    end_date: str | None = Field(None, pattern=DATE)
    task_id: str | None = None
    detailed_analytics: bool = False


async def reject_duplicate_id(ops: OperationsService, operation_id: str) -> None:
    if await ops.repo.get(operation_id) is not None:
        raise HTTPException(409, detail=f"Operation {operation_id} already exists; use a new task_id")


@router.post("/start")
async def start_training(req: TrainingStartRequest, ops: OperationsService = Depends(get_operations)) -> dict:
    strategy, config = resolve_for_dispatch(req.strategy_name)
    symbols = req.symbols or training_symbols(config)
    timeframes = req.timeframes or training_timeframes(config)
    operation_id = req.task_id or new_operation_id("training")
    await reject_duplicate_id(ops, operation_id)
    # The backend sends the YAML text: training workers need no strategy files of their own.
    payload = {"task_id": operation_id, "strategy_yaml": strategy.text, "strategy_path": str(strategy.path),
               "strategy_name": req.strategy_name, "symbols": symbols, "timeframes": timeframes,
               "start_date": req.start_date or DEFAULT_START_DATE, "end_date": req.end_date or date.today().isoformat(),
               "detailed_analytics": req.detailed_analytics}
    worker = await ops.dispatch("training", "/training/start", payload, operation_id)
    epochs = training_params(config)["epochs"]
    return {"success": True, "task_id": operation_id, "status": "training_started",
            "message": f"Training of {req.strategy_name} ({epochs} epochs) started on worker {worker.worker_id} "
                       f"using strategy file {strategy.path}",
            "symbols": symbols, "timeframes": timeframes, "strategy_name": req.strategy_name,
            "estimated_duration_minutes": 30}


@router.get("/{task_id}/performance")
async def training_performance(task_id: str, ops: OperationsService = Depends(get_operations)) -> dict:
    info = await ops.get_info(task_id)
    if info is None or info["operation_type"] != "training":
        raise HTTPException(404, detail=f"Training operation not found: {task_id}")
    if info["status"] != "completed":
        raise HTTPException(400, detail=f"Training {task_id} is {info['status']}; performance exists once completed")
    result = info["result_summary"] or {}
    return {"success": True, "task_id": task_id, "status": "completed",
            "training_metrics": result.get("training_metrics"), "test_metrics": result.get("test_metrics"),
            "model_info": result.get("model_info")}
