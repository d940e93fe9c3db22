from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ktrdr.api.dependencies import get_operations, require_schema
from ktrdr.api.endpoints.trainings import DATE, reject_duplicate_id
from ktrdr.api.models.operations import new_operation_id
from ktrdr.api.services.operations_service import OperationsService
from ktrdr.api.services.strategy_service import resolve_for_dispatch
from ktrdr.config.strategy_loader import training_symbols, training_timeframes

router = APIRouter(prefix="/backtests", tags=["backtesting"], dependencies=[Depends(require_schema)])


class BacktestStartRequest(BaseModel):
    strategy_name: str = Field(min_length=1)
    symbol: str | None = None
    timeframe: str | None = None
    start_date: str = Field(pattern=DATE)
    end_date: str = Field(pattern=DATE)
    initial_capital: float = Field(100000.0, gt=0)
    commission: float = Field(0.001, ge=0)
    slippage: float = Field(0.0005, ge=0)
    model_path: str | None = None
    task_id: str | None = None


@router.post("/start")
async def start_backtest(req: BacktestStartRequest, ops: OperationsService = Depends(get_operations)) -> dict:
    strategy, config = resolve_for_dispatch(req.strategy_name)
    symbol = req.symbol or training_symbols(config)[0]
    timeframes = training_timeframes(config)
    timeframe = req.timeframe or timeframes[0]
    operation_id = req.task_id or new_operation_id("backtesting")
    await reject_duplicate_id(ops, operation_id)
    payload = {"task_id": operation_id, "symbol": symbol, "timeframe": timeframe,
               "strategy_name": req.strategy_name, "model_name": str(config["name"]),
               "start_date": req.start_date, "end_date": req.end_date, "initial_capital": req.initial_capital,
               "commission": req.commission, "slippage": req.slippage, "model_path": req.model_path,
               "timeframes": timeframes}
    worker = await ops.dispatch("backtesting", "/backtests/start", payload, operation_id)
    return {"success": True, "operation_id": operation_id, "status": "started",
            "message": f"Backtest of {req.strategy_name} on {symbol} {timeframe} started on worker {worker.worker_id}",
            "symbol": symbol, "timeframe": timeframe, "mode": "distributed"}
