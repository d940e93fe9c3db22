"""Trainings and backtests end to end on one live stack (PostgreSQL, backend, two workers):
real models saved, trades counted, cancel reaching the worker, contract error shapes."""

import json
import os
import time

import httpx
import pytest
from stack import api, wait_for_operation

pytestmark = pytest.mark.usefixtures("training_worker", "backtest_worker")
RANGE = {"start_date": "2024-01-01", "end_date": "2024-06-30"}


@pytest.fixture(scope="module")
def c(backend):
    with api(backend.url) as client:
        yield client


def train(c, backend, name, **body):
    r = c.post("/trainings/start", json={"strategy_name": name, **body})
    assert r.status_code == 200, r.text
    start = r.json()
    assert start["status"] == "training_started" and start["task_id"].startswith("op_training_")
    return start, wait_for_operation(backend.url, start["task_id"], timeout=150)


def backtest(c, backend, name, **body):
    r = c.post("/backtests/start", json={"strategy_name": name, **RANGE, **body})
    assert r.status_code == 200, r.text
    start = r.json()
    assert start["status"] == "started" and start["mode"] == "distributed"
    return start, wait_for_operation(backend.url, start["operation_id"], timeout=120)


@pytest.fixture(scope="module")
def minimal_training(c, backend, strategies_dir):
    t0 = time.monotonic()
    start, op = train(c, backend, "v3_minimal")
    op["wall_seconds"] = time.monotonic() - t0
    return start, op


def test_training_completes_with_a_saved_model(c, minimal_training, models_dir, strategies_dir):
    start, op = minimal_training
    assert start["symbols"] == ["EURUSD"] and start["timeframes"] == ["1h"]
    assert str(strategies_dir / "v3_minimal.yaml") in start["message"]
    assert op["status"] == "completed", op["error_message"]
    assert op["progress"]["percentage"] == 100.0
    assert op["wall_seconds"] < 60, "v3_minimal must train in under a minute"
    # The lookup that was used is recorded with the operation.
    assert op["metadata"]["parameters"]["strategy_path"] == str(strategies_dir / "v3_minimal.yaml")
    assert op["metadata"]["symbol"] == "EURUSD" and op["metadata"]["timeframe"] == "1h"
    result = op["result_summary"]
    path = models_dir / "v3_minimal" / "1h_v1"
    assert result["model_path"] == str(path)
    assert {"model.pt", "metadata_v3.json", "config.json", "features.json", "metrics.json"} <= set(os.listdir(path))
    assert os.readlink(models_dir / "v3_minimal" / "1h_latest") == "1h_v1"
    metadata = json.loads((path / "metadata_v3.json").read_text())
    assert metadata["resolved_features"] == ["1h_rsi_momentum_oversold", "1h_rsi_momentum_overbought"]
    assert result["data_summary"]["feature_count"] == 2 and result["data_summary"]["total_samples"] > 10000
    assert len(result["training_metrics"]["epochs"]) == 10 and op["metrics"]["epochs"][-1]["epoch"] == 10
    assert 0.0 <= result["test_metrics"]["accuracy"] <= 1.0
    assert result["model_info"]["parameters_count"] > 0
    assert result["session_info"]["device"] == "cpu"
    perf = c.get(f"/trainings/{start['task_id']}/performance").json()
    assert perf["test_metrics"] == result["test_metrics"] and perf["model_info"] == result["model_info"]


def test_progress_is_proxied_from_the_worker(c, backend):
    r = c.post("/trainings/start", json={"strategy_name": "v3_single_indicator"})
    op_id = r.json()["task_id"]
    running = wait_for_operation(backend.url, op_id, until=lambda d: "Epoch" in (d["progress"]["current_step"] or ""))
    assert running["status"] == "running"
    assert running["progress"]["steps_total"] == 6 and running["progress"]["context"] == {}
    done = wait_for_operation(backend.url, op_id)
    assert done["status"] == "completed", done["error_message"]
    assert done["result_summary"]["data_summary"]["symbols"] == ["EURUSD", "GBPUSD"]


def test_retraining_makes_a_new_version(c, backend, minimal_training, models_dir):
    _start, op = train(c, backend, "v3_minimal")
    assert op["status"] == "completed", op["error_message"]
    assert op["result_summary"]["model_path"] == str(models_dir / "v3_minimal" / "1h_v2")
    assert os.readlink(models_dir / "v3_minimal" / "1h_latest") == "1h_v2"
    assert (models_dir / "v3_minimal" / "1h_v1" / "model.pt").is_file()  # the old version stays


def test_backtest_trades_with_the_trained_model(c, backend, minimal_training):
    model_path = minimal_training[1]["result_summary"]["model_path"]
    start, op = backtest(c, backend, "v3_minimal", model_path=model_path)
    assert start["symbol"] == "EURUSD" and start["timeframe"] == "1h"
    assert op["status"] == "completed", op["error_message"]
    result = op["result_summary"]
    assert result["model_path"] == model_path
    assert result["trade_count"] > 0 and result["metrics"]["total_trades"] == result["trade_count"]
    assert set(result["signal_distribution"]) == {"BUY", "HOLD", "SELL"}
    assert sum(result["signal_distribution"].values()) == result["equity_curve_length"]
    assert result["warnings"] == []
    assert result["config"] == {"initial_capital": 100000.0, "commission": 0.001, "slippage": 0.0005, **RANGE}
    for key in ("total_return", "total_return_pct", "sharpe_ratio", "max_drawdown_pct", "win_rate", "profit_factor",
                "avg_holding_period", "sortino_ratio", "recovery_factor"):
        assert key in result["metrics"]
    results = c.get(f"/operations/{start['operation_id']}/results").json()
    assert results["results"] == result and results["operation_type"] == "backtesting"


def test_backtest_without_model_path_uses_latest_and_says_so(c, backend, minimal_training, models_dir):
    _start, op = backtest(c, backend, "v3_minimal")
    assert op["status"] == "completed", op["error_message"]
    latest = str(models_dir / "v3_minimal" / "1h_latest")
    assert op["result_summary"]["model_path"] == latest
    assert any("model_path not given" in w and latest in w for w in op["result_summary"]["warnings"])
    assert op["warnings"] == op["result_summary"]["warnings"]


def test_raw_indicator_inputs_train_and_backtest(c, backend, models_dir):
    """ktrdr's raw_indicator nn_inputs: raw indicator values next to fuzzy memberships, normalized
    with the training split's statistics, which the backtest applies again from metadata_v3.json."""
    _start, trained = train(c, backend, "v3_raw_indicator")
    assert trained["status"] == "completed", trained["error_message"]
    result = trained["result_summary"]
    path = models_dir / "v3_raw_indicator" / "1h_v1"
    assert result["model_path"] == str(path) and result["data_summary"]["feature_count"] == 4
    metadata = json.loads((path / "metadata_v3.json").read_text())
    assert metadata["resolved_features"] == ["1h_rsi_momentum_oversold", "1h_rsi_momentum_overbought",
                                             "1h_roc_10_raw", "1h_rsi_14_raw"]
    norm = metadata["normalization_params"]
    assert set(norm) == {"1h_roc_10_raw", "1h_rsi_14_raw"}
    assert norm["1h_roc_10_raw"]["method"] == "zscore" and norm["1h_roc_10_raw"]["std"] > 0
    assert norm["1h_rsi_14_raw"]["method"] == "minmax" and 0 <= norm["1h_rsi_14_raw"]["min"] < norm["1h_rsi_14_raw"]["max"] <= 100
    _start, op = backtest(c, backend, "v3_raw_indicator", model_path=result["model_path"])
    assert op["status"] == "completed", op["error_message"]
    assert op["result_summary"]["trade_count"] > 0 and op["result_summary"]["equity_curve_length"] > 0
    features = c.get("/strategies/v3_raw_indicator/features").json()
    assert features["count"] == 4
    assert features["features"][2] == {"feature_id": "1h_roc_10_raw", "timeframe": "1h", "fuzzy_set": "__raw__",
                                       "membership": "raw", "indicator_id": "roc_10", "indicator_output": None}
    v = c.post("/strategies/validate/v3_raw_indicator").json()
    assert v["valid"] is True and v["issues"] == []


def test_biased_strategy_reports_zero_trades_and_the_dominant_signal(c, backend):
    _start, trained = train(c, backend, "v3_sell_bias")
    assert trained["status"] == "completed", trained["error_message"]
    assert trained["result_summary"]["data_summary"]["train_label_distribution"]["BUY"] == 0
    _start, op = backtest(c, backend, "v3_sell_bias", model_path=trained["result_summary"]["model_path"])
    result = op["result_summary"]
    assert op["status"] == "completed" and result["trade_count"] == 0
    dist = result["signal_distribution"]
    assert dist["BUY"] == 0 and dist["SELL"] > dist["HOLD"]
    [warning] = result["warnings"]
    assert warning.startswith("0 trades: the model's dominant signal is SELL")
    assert "a SELL from FLAT does nothing" in warning


def test_backtest_with_a_missing_model_fails_the_operation(c, backend, models_dir):
    _start, op = backtest(c, backend, "v3_e2e_test", model_path=str(models_dir / "v3_e2e_test" / "1h_v99"))
    assert op["status"] == "failed"
    assert "Model directory not found" in op["error_message"] and "/app/models" in op["error_message"]


def test_cancel_reaches_the_worker(c, backend, training_worker, strategies_dir):
    slow = (strategies_dir / "v3_minimal.yaml").read_text().replace("epochs: 10", "epochs: 500")
    (strategies_dir / "slow_cancel.yaml").write_text(slow)
    op_id = c.post("/trainings/start", json={"strategy_name": "slow_cancel"}).json()["task_id"]
    wait_for_operation(backend.url, op_id, until=lambda d: "Epoch" in (d["progress"]["current_step"] or ""))
    assert httpx.get(f"{training_worker.url}/health").json()["worker_status"] == "busy"

    r = c.request("DELETE", f"/operations/{op_id}", json={"reason": "test says stop"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["status"] == "cancelled" and data["remote_cancelled"] is True
    assert data["cancellation_reason"] == "test says stop"
    op = wait_for_operation(backend.url, op_id)
    assert op["status"] == "cancelled"
    # The worker really stopped: it reports idle again and its own record says cancelled.
    deadline = time.monotonic() + 10
    while httpx.get(f"{training_worker.url}/health").json()["worker_status"] != "idle":
        assert time.monotonic() < deadline, "worker still busy after cancel"
        time.sleep(0.2)
    worker_view = httpx.get(f"{training_worker.url}/api/v1/operations/{op_id}").json()["data"]
    assert worker_view["status"] == "cancelled"

    again = c.delete(f"/operations/{op_id}")
    assert again.status_code == 400 and "OperationStatus.CANCELLED" in again.json()["detail"]
    assert c.get(f"/operations/{op_id}/results").status_code == 400


def test_operations_list_comes_from_the_database(c, minimal_training):
    body = c.get("/operations", params={"limit": 100}).json()
    assert body["success"] is True and body["total_count"] >= 5 and body["active_count"] == 0
    created = [o["created_at"] for o in body["data"]]
    assert created == sorted(created, reverse=True)  # newest first
    trainings = c.get("/operations", params={"operation_type": "training", "status": "completed"}).json()
    assert trainings["data"] and all(o["operation_type"] == "training" and o["status"] == "completed"
                                     for o in trainings["data"])
    first = c.get("/operations", params={"limit": 1}).json()
    assert len(first["data"]) == 1 and first["total_count"] == body["total_count"]
    assert set(first["data"][0]) == {"operation_id", "operation_type", "status", "created_at", "progress_percentage",
                                     "current_step", "symbol", "duration_seconds"}


def test_dummy_operation_runs_in_the_backend(c, backend):
    start = c.post("/dummy/start", params={"duration_seconds": 1}).json()
    assert start["success"] is True and start["data"]["status"] == "started"
    op = wait_for_operation(backend.url, start["data"]["operation_id"], timeout=30)
    assert op["status"] == "completed" and op["is_backend_local"] is True and op["operation_type"] == "dummy"
    long_id = c.post("/dummy/start").json()["data"]["operation_id"]
    cancelled = c.delete(f"/operations/{long_id}").json()["data"]
    assert cancelled["task_cancelled"] is True and cancelled["remote_cancelled"] is False
    assert c.get(f"/operations/{long_id}").json()["data"]["status"] == "cancelled"


# --- bad inputs: the contract's two error shapes --------------------------------------------

def test_unknown_strategy(c, strategies_dir):
    for path, body in (("/trainings/start", {}), ("/backtests/start", RANGE)):
        r = c.post(path, json={"strategy_name": "no_such_strategy", **body})
        assert r.status_code == 400
        detail = r.json()["detail"]
        assert detail.startswith("Strategy file not found: no_such_strategy.yaml (searched: ")
        assert f"{strategies_dir}, /app/strategies" in detail


def test_invalid_strategy_name(c):
    r = c.post("/trainings/start", json={"strategy_name": "../etc/passwd"})
    assert r.status_code == 400 and r.json()["detail"]["error_code"] == "STRATEGY-InvalidName"


def test_malformed_strategy_yaml(c, strategies_dir):
    (strategies_dir / "broken.yaml").write_text("name: broken\nindicators:\n  rsi: [unclosed\n")
    r = c.post("/trainings/start", json={"strategy_name": "broken"})
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert set(detail) == {"message", "error_code", "context", "details", "suggestion"}
    assert detail["error_code"] == "STRATEGY-MalformedYAML" and "line" in detail["message"]
    v = c.post("/strategies/validate/broken").json()
    assert v["success"] is True and v["valid"] is False and v["issues"][0]["category"] == "yaml"
    names = [s["file_name"] for s in c.get("/strategies/").json()["strategies"]]
    assert "broken" not in names and "v3_minimal" in names


def test_strategy_that_is_not_v3(c, strategies_dir):
    (strategies_dir / "old_v2.yaml").write_text("name: old_v2\nindicators:\n  - name: rsi\n    period: 14\n")
    r = c.post("/trainings/start", json={"strategy_name": "old_v2"})
    assert r.status_code == 400
    assert "V2 strategy format is no longer supported" in r.json()["detail"]["message"]


def test_unknown_operation(c):
    for method, path in (("GET", "/operations/op_nope"), ("DELETE", "/operations/op_nope"),
                         ("GET", "/operations/op_nope/results")):
        r = c.request(method, path)
        assert r.status_code == 404 and r.json() == {"detail": "Operation not found: op_nope"}


def test_request_validation_envelope(c):
    r = c.post("/backtests/start", json={"strategy_name": "v3_minimal", **RANGE, "initial_capital": 0})
    assert r.status_code == 422
    body = r.json()
    assert body["success"] is False and body["error"]["code"] == "VALIDATION_ERROR"
    assert body["error"]["message"] == "Request validation failed"
    assert body["error"]["details"][0]["field"] == "initial_capital"
    assert c.get("/operations", params={"status": "RUNNING"}).status_code == 422
    assert c.post("/backtests/start", json={"strategy_name": "v3_minimal"}).status_code == 422  # dates required


def test_duplicate_task_id(c, minimal_training):
    r = c.post("/trainings/start", json={"strategy_name": "v3_minimal", "task_id": minimal_training[0]["task_id"]})
    assert r.status_code == 409


# --- strategies endpoints ------------------------------------------------------------------

def test_strategies_list_get_validate_features(c, minimal_training):
    strategies = {s["name"]: s for s in c.get("/strategies/").json()["strategies"]}
    assert {"v3_minimal", "v3_single_indicator", "v3_e2e_test", "v3_sell_bias",
            "v3_multi_timeframe_example", "v3_raw_indicator"} <= set(strategies)
    minimal = strategies["v3_minimal"]
    assert minimal["symbol"] == "EURUSD" and minimal["timeframe"] == "1h"
    assert minimal["indicators"] == [{"name": "rsi_14", "type": "rsi", "period": 14}]
    assert minimal["training_status"] == "trained" and minimal["latest_version"] >= 1
    assert set(minimal["latest_metrics"]) == {"accuracy", "precision", "recall", "f1_score"}
    assert c.get("/strategies/v3_minimal").json()["available_versions"][0] == 1
    assert c.get("/strategies/v3_minimal", params={"version": 1}).status_code == 200
    assert c.get("/strategies/v3_minimal", params={"version": 99}).status_code == 404
    assert c.get("/strategies/v3_e2e_test").json()["training_status"] == "untrained"
    assert c.get("/strategies/nope").status_code == 404

    v = c.post("/strategies/validate/v3_multi_timeframe").json()
    assert v["valid"] is True and "rsi" in v["available_indicators"]
    assert any(i["category"] == "naming" and i["severity"] == "warning" for i in v["issues"])
    assert c.post("/strategies/validate/missing").status_code == 404

    f = c.get("/strategies/v3_multi_timeframe/features").json()
    assert f["count"] == 5 and f["features"][-1]["feature_id"] == "1d_trend_above"
