"""Operation enums, ids and the OperationInfo JSON shape shared by backend and workers."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from enum import Enum
from typing import Any


class OperationStatus(str, Enum):
    PENDING = "pending"
    RESUMING = "resuming"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class OperationType(str, Enum):
    DATA_LOAD = "data_load"
    TRAINING = "training"
    BACKTESTING = "backtesting"
    INDICATOR_COMPUTE = "indicator_compute"
    FUZZY_ANALYSIS = "fuzzy_analysis"
    DUMMY = "dummy"
    AGENT_RESEARCH = "agent_research"
    AGENT_DESIGN = "agent_design"
    AGENT_ASSESSMENT = "agent_assessment"


ACTIVE = {OperationStatus.PENDING.value, OperationStatus.RUNNING.value, OperationStatus.RESUMING.value}
TERMINAL = {OperationStatus.COMPLETED.value, OperationStatus.FAILED.value, OperationStatus.CANCELLED.value}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def new_operation_id(operation_type: str) -> str:
    return f"op_{operation_type}_{utcnow():%Y%m%d_%H%M%S}_{secrets.token_hex(4)}"


def empty_progress(steps_total: int = 0) -> dict[str, Any]:
    return {"percentage": 0.0, "current_step": None, "steps_completed": 0, "steps_total": steps_total,
            "items_processed": 0, "items_total": None, "current_item": None, "context": {}}


def operation_metadata(symbol: str | None, timeframe: str | None, start_date: str | None,
                       end_date: str | None, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"symbol": symbol, "timeframe": timeframe, "mode": "distributed",
            "start_date": start_date, "end_date": end_date, "parameters": parameters}


def info_from_record(row: Any) -> dict[str, Any]:
    """OperationInfo from a DB row (what survives a backend restart)."""
    progress = empty_progress()
    progress["percentage"] = 100.0 if row.status == OperationStatus.COMPLETED.value else float(row.progress_percent or 0)
    progress["current_step"] = row.progress_message
    result = row.result
    return {
        "operation_id": row.operation_id,
        "parent_operation_id": None,
        "operation_type": row.operation_type,
        "status": row.status,
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "completed_at": iso(row.completed_at),
        "progress": progress,
        "metadata": row.metadata_ or {},
        "error_message": row.error_message,
        "warnings": list((result or {}).get("warnings") or []),
        "errors": [row.error_message] if row.error_message and row.status == "failed" else [],
        "result_summary": result,
        "metrics": _epoch_metrics(result),
        "is_backend_local": bool(row.is_backend_local),
        "worker_id": row.worker_id,
    }


def _epoch_metrics(result: dict[str, Any] | None) -> dict[str, Any] | None:
    epochs = ((result or {}).get("training_metrics") or {}).get("epochs")
    return {"epochs": epochs} if epochs is not None else None


def summary(info: dict[str, Any]) -> dict[str, Any]:
    """OperationSummary (list entries)."""
    created = info.get("created_at")
    started, ended = info.get("started_at"), info.get("completed_at")
    duration = None
    if started:
        end = datetime.fromisoformat(ended) if ended else utcnow()
        duration = round((end - datetime.fromisoformat(started)).total_seconds(), 3)
    return {"operation_id": info["operation_id"], "operation_type": info["operation_type"],
            "status": info["status"], "created_at": created,
            "progress_percentage": info["progress"]["percentage"],
            "current_step": info["progress"]["current_step"],
            "symbol": (info.get("metadata") or {}).get("symbol"), "duration_seconds": duration}
