"""ktrdr.ops.operation against the reference stack: a real backend, real workers, real PostgreSQL.

Covers: start in check mode (nothing started) -> start and wait to completed -> re-attach (no change);
a backtest with its trade summary; 0 trades surfaced as a warning (and as a failure when asked);
a failing operation fails fast with the backend's message; timeout with and without cancel;
state=cancelled and its idempotent rerun; unknown ids; a backend that cannot be reached.
"""

import time

import httpx
import pytest
from stack import api, wait_for_operation

from ansible_run import module_task, run_tasks

pytestmark = [pytest.mark.needs_stack, pytest.mark.usefixtures("training_worker", "backtest_worker")]
TRAIN_RANGE = {"start_date": "2024-01-01", "end_date": "2024-06-30"}
TEST_RANGE = {"start_date": "2024-07-01", "end_date": "2024-09-30"}


def op(url, **args):
    return dict({"api_url": url, "poll_interval": 0.5, "max_poll_interval": 2}, **args)


def backend_operation(url, op_id):
    with api(url) as c:
        r = c.get("/operations/%s" % op_id)
        return r.status_code, (r.json().get("data") if r.status_code == 200 else None)


@pytest.fixture(scope="module")
def trained(backend):
    """Check mode, then the real start-and-wait of a training; both results."""
    args = op(backend.url, operation_type="training", strategy="v3_e2e_test", symbols=["EURUSD"], timeframes=["1h"],
              **TRAIN_RANGE)
    run = run_tasks([module_task("operation", args, check=True), module_task("operation", dict(args, timeout=300))])
    return run.results


def test_training_check_mode_starts_nothing(trained):
    check_run = trained[0]
    assert not check_run.failed and check_run.changed
    assert check_run.msg == "Would start a training of v3_e2e_test (check mode)"
    assert check_run["request"] == {"path": "/trainings/start", "body": {
        "strategy_name": "v3_e2e_test", "symbols": ["EURUSD"], "timeframes": ["1h"], **TRAIN_RANGE}}
    assert "operation_id" not in check_run and check_run["started"] is False


def test_training_runs_to_completed_with_progress_and_model(trained, models_dir):
    res = trained[1]
    assert not res.failed, res.msg
    assert res.changed and res["started"] is True
    assert res["status"] == "completed"
    assert res["operation_id"].startswith("op_training_")
    assert res.msg.startswith("Operation %s completed in " % res["operation_id"])
    log = res["progress_log"]
    assert len(log) >= 2 and log[-1]["status"] == "completed" and log[-1]["percentage"] == 100.0
    assert any(e["status"] == "running" and 0 < e["percentage"] < 100 for e in log), log
    pcts = [e["percentage"] for e in log]
    assert pcts == sorted(pcts), log
    assert [e["elapsed"] for e in log] == sorted(e["elapsed"] for e in log)
    summary = res["summary"]
    assert summary["model_path"] == str(models_dir / "v3_e2e_test" / "1h_v1")
    assert 0.0 <= summary["accuracy"] <= 1.0 and summary["loss"] > 0 and summary["epochs"] == 3
    assert res["duration_seconds"] > 0
    assert res["result_summary"]["model_path"] == summary["model_path"]
    assert res["retry_log"] == []


def test_reattach_to_a_completed_operation_changes_nothing(backend, trained):
    op_id = trained[1]["operation_id"]
    run = run_tasks([module_task("operation", op(backend.url, operation_id=op_id)),
                     module_task("operation", op(backend.url, operation_id=op_id), check=True)])
    for res in run.results:
        assert not res.failed and not res.changed
        assert res["status"] == "completed" and res["started"] is False
        assert res["summary"]["model_path"] == trained[1]["summary"]["model_path"]


def test_backtest_reports_trades_and_signal_distribution(backend, trained):
    model = trained[1]["summary"]["model_path"]
    args = op(backend.url, operation_type="backtesting", strategy="v3_e2e_test", symbol="EURUSD", timeframe="1h",
              model_path=model, **TEST_RANGE)
    res = run_tasks([module_task("operation", args)])[0]
    assert not res.failed, res.msg
    assert res["operation_id"].startswith("op_backtesting_") and res["status"] == "completed"
    s = res["summary"]
    assert s["trades"] == res["result_summary"]["trade_count"]
    assert set(s["signal_distribution"]) == {"BUY", "HOLD", "SELL"}
    assert s["symbol"] == "EURUSD" and s["timeframe"] == "1h"
    for key in ("total_return_pct", "win_rate", "sharpe_ratio", "max_drawdown_pct"):
        assert key in s
    if s["trades"] == 0:
        assert any("0 trades" in w for w in res.get("warnings", []))


def test_zero_trades_is_a_warning_or_a_failure_when_asked(backend):
    train = op(backend.url, operation_type="training", strategy="v3_sell_bias", **TRAIN_RANGE, timeout=300)
    trained = run_tasks([module_task("operation", train)])[0]
    assert not trained.failed, trained.msg
    bt = op(backend.url, operation_type="backtesting", strategy="v3_sell_bias", model_path=trained["summary"]["model_path"],
            **TEST_RANGE)
    run = run_tasks([module_task("operation", bt), module_task("operation", dict(bt, fail_on_no_trades=True))])
    warned, failed = run.results
    assert not warned.failed and warned["summary"]["trades"] == 0
    assert warned["summary"]["signal_distribution"]["BUY"] == 0
    [warning] = [w for w in warned["warnings"] if "0 trades" in w]
    assert warning.startswith("0 trades: the model's dominant signal is SELL")
    assert warned["summary"]["warnings"] == [warning]
    assert failed.failed and failed["status"] == "completed"
    assert failed.msg == "Backtest %s completed with 0 trades and fail_on_no_trades is set" % failed["operation_id"]


def test_failed_operation_fails_fast_with_the_backend_message(backend, models_dir):
    args = op(backend.url, operation_type="backtesting", strategy="v3_e2e_test", model_path=str(models_dir / "nope" / "1h_v9"),
              timeout=600, **TEST_RANGE)
    t0 = time.monotonic()
    res = run_tasks([module_task("operation", args)])[0]
    took = time.monotonic() - t0
    assert res.failed and res["status"] == "failed"
    assert res.msg.startswith("Operation %s (backtesting) failed after " % res["operation_id"])
    assert "Model directory not found" in res.msg
    assert took < 60, "a failed operation must end the wait at once, not at the 600 s deadline"
    assert res["progress_log"][-1]["status"] == "failed"


@pytest.fixture
def slow_strategy(strategies_dir):
    text = (strategies_dir / "v3_minimal.yaml").read_text().replace("epochs: 10", "epochs: 500").replace(
        "name: v3_minimal", "name: slow_op")
    (strategies_dir / "slow_op.yaml").write_text(text)
    return "slow_op"


def test_timeout_without_cancel_leaves_it_running_then_cancel_and_attach(backend, slow_strategy):
    start = op(backend.url, operation_type="training", strategy=slow_strategy, timeout=4)
    res = run_tasks([module_task("operation", start)])[0]
    op_id = res["operation_id"]
    assert res.failed and res.changed
    assert res.msg.startswith("Timed out after ")
    assert ("waiting for operation %s (last seen: running" % op_id) in res.msg
    assert ("it is still running: wait again with operation_id=%s, or set cancel_on_timeout=true" % op_id) in res.msg
    status, data = backend_operation(backend.url, op_id)
    assert status == 200 and data["status"] == "running"

    cancel = op(backend.url, operation_id=op_id, state="cancelled", cancel_reason="test over")
    run = run_tasks([
        module_task("operation", cancel, check=True),
        module_task("operation", cancel),
        module_task("operation", cancel),
        module_task("operation", op(backend.url, operation_id=op_id)),
    ])
    check_run, real, again, attach = run.results
    assert check_run.changed and not check_run.failed and check_run.msg.startswith("Would cancel operation %s (running" % op_id)
    assert real.changed and real.msg == "Cancelled operation %s" % op_id
    assert real["cancel"]["status"] == "cancelled" and real["cancel"]["cancellation_reason"] == "test over"
    assert real["cancel"]["remote_cancelled"] is True
    assert not again.changed and again.msg == "Operation %s is already cancelled" % op_id
    assert attach.failed and attach.msg.startswith("Operation %s (training) was cancelled" % op_id)
    final = wait_for_operation(backend.url, op_id, timeout=30)
    assert final["status"] == "cancelled"


def test_timeout_with_cancel_on_timeout_cancels(backend, slow_strategy):
    args = op(backend.url, operation_type="training", strategy=slow_strategy, timeout=4, cancel_on_timeout=True)
    res = run_tasks([module_task("operation", args)])[0]
    assert res.failed and res.changed
    assert res.msg.endswith("cancelled it as cancel_on_timeout asks")
    assert res["cancel"]["status"] == "cancelled"
    assert wait_for_operation(backend.url, res["operation_id"], timeout=30)["status"] == "cancelled"
    # the worker is free again for the next test
    deadline = time.monotonic() + 30
    with api(backend.url) as c:
        while time.monotonic() < deadline:
            workers = [w for w in c.get("/workers").json() if w["worker_type"] == "training"]
            if workers and all(w["status"] == "available" for w in workers):
                break
            time.sleep(0.5)


def test_started_returns_at_once_then_attach_waits(backend):
    args = op(backend.url, operation_type="training", strategy="v3_e2e_test", state="started", **TRAIN_RANGE)
    started = run_tasks([module_task("operation", args)])[0]
    assert not started.failed and started.changed
    assert started["status"] in ("pending", "running")
    assert started.msg.startswith("Operation %s started (" % started["operation_id"])
    done = run_tasks([module_task("operation", op(backend.url, operation_id=started["operation_id"], timeout=300))])[0]
    assert not done.failed and not done.changed and done["status"] == "completed"
    assert done["summary"]["model_path"].endswith("/v3_e2e_test/1h_v2")


def test_unknown_id_and_bad_arguments_fail_clearly(backend):
    run = run_tasks([
        module_task("operation", op(backend.url, operation_id="op_training_20990101_000000_deadbeef")),
        module_task("operation", op(backend.url, operation_id="op_training_20990101_000000_deadbeef", state="cancelled")),
        module_task("operation", op(backend.url, operation_type="backtesting", strategy="v3_e2e_test", **TEST_RANGE)),
        module_task("operation", op(backend.url, operation_type="training", strategy="v3_e2e_test", symbol="EURUSD",
                                    start_date="2024-13-01")),
        module_task("operation", op(backend.url, operation_type="training", strategy="no_such_strategy")),
        module_task("operation", op(backend.url, operation_type="training", strategy="../etc/passwd")),
    ])
    unknown, unknown_cancel, no_model, mixed, missing_strategy, traversal = run.results
    url = "%s/api/v1/operations/op_training_20990101_000000_deadbeef" % backend.url
    for res in (unknown, unknown_cancel):
        assert res.failed
        assert res.msg.startswith("Operation op_training_20990101_000000_deadbeef not found at %s" % url)
        assert res["http_status"] == 404 and res["url"] == url
    assert no_model.failed and no_model.msg.startswith("model_path is required for a backtest")
    assert mixed.failed
    assert "symbol only applies to backtests, not to a training" in mixed.msg
    assert "start_date='2024-13-01' is not a real date" in mixed.msg
    assert missing_strategy.failed and not missing_strategy.changed
    assert missing_strategy.msg.startswith("Could not start the training of no_such_strategy: POST %s/api/v1/trainings/start returned HTTP "
                                           % backend.url)
    assert "no_such_strategy" in missing_strategy.msg.split("returned HTTP", 1)[1]
    assert traversal.failed and "not a valid ktrdr strategy name" in traversal.msg


def test_unreachable_backend_is_retried_then_named(backend):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    res = run_tasks([module_task("operation", {"api_url": "http://127.0.0.1:%d/api/v1/" % port,
                                               "operation_id": "op_x", "retries": 2})])[0]
    assert res.failed
    assert res.msg.startswith("Could not read operation op_x: GET http://127.0.0.1:%d/api/v1/operations/op_x could not connect "
                              "(3 attempts): " % port)
    assert len(res["retry_log"]) == 2


def test_health_of_the_backend_is_untouched(backend):
    assert httpx.get(backend.url + "/api/v1/health").json()["status"] == "ok"
