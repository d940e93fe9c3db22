"""Backtest worker: ``python -m uvicorn ktrdr.backtesting.backtest_worker:app --host 0.0.0.0 --port 5003``."""

from __future__ import annotations

# First: stops the process with a clear message when torch is missing (before numpy etc. fail).
from ktrdr.workers.base import WorkerAPIBase  # isort: skip

from pydantic import BaseModel, Field

from ktrdr.api.models.operations import operation_metadata
from ktrdr.backtesting.engine import run_backtest

worker = WorkerAPIBase("backtesting", "backtesting")
app = worker.app


class BacktestStartRequest(BaseModel):
    task_id: str = Field(min_length=1)
    strategy_name: str = Field(min_length=1)
    model_name: str | None = None  # the YAML `name:` (models live under it); defaults to strategy_name
    symbol: str
    timeframe: str
    start_date: str
    end_date: str
    initial_capital: float = Field(100000.0, gt=0)
    commission: float = 0.001
    slippage: float = 0.0005
    model_path: str | None = None
    timeframes: list[str] = []


@app.post("/backtests/start")
async def start_backtest(req: BacktestStartRequest) -> dict:
    params = {"strategy_name": req.strategy_name, "model_name": req.model_name or req.strategy_name,
              "symbol": req.symbol, "timeframe": req.timeframe, "start_date": req.start_date,
              "end_date": req.end_date, "initial_capital": req.initial_capital, "commission": req.commission,
              "slippage": req.slippage, "model_path": req.model_path}
    metadata = operation_metadata(req.symbol, req.timeframe, req.start_date, req.end_date, params)
    return await worker.start_job(req.task_id, metadata, 0, lambda job: run_backtest(job, **params))
