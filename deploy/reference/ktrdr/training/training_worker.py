"""Training worker: ``python -m uvicorn ktrdr.training.training_worker:app --host 0.0.0.0 --port 5004``."""

from __future__ import annotations

# First: stops the process with a clear message when torch is missing (before numpy etc. fail).
from ktrdr.workers.base import WorkerAPIBase  # isort: skip

from fastapi import HTTPException
from pydantic import BaseModel, Field

from ktrdr.api.models.operations import operation_metadata
from ktrdr.config.strategy_loader import load_v3, training_params, training_symbols, training_timeframes
from ktrdr.errors import ConfigurationError
from ktrdr.training.trainer import train_strategy

worker = WorkerAPIBase("training", "training")
app = worker.app


class TrainingStartRequest(BaseModel):
    task_id: str = Field(min_length=1)
    strategy_yaml: str = Field(min_length=1)  # full YAML text, sent by the backend
    strategy_path: str | None = None
    strategy_name: str | None = None
    symbols: list[str] | None = None
    timeframes: list[str] | None = None
    start_date: str = "2020-01-01"
    end_date: str = "2100-01-01"
    detailed_analytics: bool = False


@app.post("/training/start")
async def start_training(req: TrainingStartRequest) -> dict:
    try:
        config = load_v3(req.strategy_yaml, req.strategy_path or "<strategy_yaml>")
    except ConfigurationError as exc:
        raise HTTPException(400, detail=exc.to_detail()) from None
    symbols = req.symbols or training_symbols(config)
    timeframes = training_timeframes(config)  # v3: the strategy's timeframes, whatever the request says
    epochs = training_params(config)["epochs"]
    metadata = operation_metadata(
        ",".join(symbols), timeframes[0], req.start_date, req.end_date,
        {"strategy_name": req.strategy_name or config["name"], "model_name": config["name"],
         "strategy_path": req.strategy_path, "symbols": symbols, "timeframes": timeframes,
         "requested_timeframes": req.timeframes, "epochs": epochs})
    return await worker.start_job(
        req.task_id, metadata, epochs,
        lambda job: train_strategy(job, req.strategy_yaml, req.strategy_path, symbols, req.start_date, req.end_date))
