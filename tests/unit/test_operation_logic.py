"""Pure parts of ktrdr.ops.operation: request bodies, ids, timings, summaries, the 0-trades warning,
and the poll schedule."""

import datetime
import random

import pytest

from ansible_collections.ktrdr.ops.plugins.module_utils._operation import (
    EndEstimate,
    check_date,
    check_strategy_name,
    duration_seconds,
    start_request,
    started_id,
    summarize,
)
from ansible_collections.ktrdr.ops.plugins.module_utils._wait import PollSchedule

BASE = dict(operation_type="training", strategy="v3_e2e_test", symbols=None, timeframes=None, symbol=None, timeframe=None,
            model_path=None, initial_capital=None, commission=None, slippage=None, start_date=None, end_date=None)


def test_training_request_leaves_out_unset_values():
    path, body = start_request(dict(BASE, symbols=["EURUSD"], start_date="2024-01-01"))
    assert path == "/trainings/start"
    assert body == {"strategy_name": "v3_e2e_test", "symbols": ["EURUSD"], "start_date": "2024-01-01"}


def test_backtest_request():
    p = dict(BASE, operation_type="backtesting", symbol="EURUSD", timeframe="1h", model_path="/app/models/x/1h_v1",
             start_date="2024-01-01", end_date="2024-02-01", initial_capital=5000.0, commission=0.0)
    path, body = start_request(p)
    assert path == "/backtests/start"
    assert body == {"strategy_name": "v3_e2e_test", "symbol": "EURUSD", "timeframe": "1h", "model_path": "/app/models/x/1h_v1",
                    "start_date": "2024-01-01", "end_date": "2024-02-01", "initial_capital": 5000.0, "commission": 0.0}


def test_started_id_reads_task_id_and_operation_id():
    assert started_id({"success": True, "task_id": "op_training_1", "status": "training_started"}) == "op_training_1"
    assert started_id({"success": True, "operation_id": "op_backtesting_1", "status": "started"}) == "op_backtesting_1"
    assert started_id({"success": True}) is None
    assert started_id("nope") is None


def test_dates_and_names():
    assert check_date("start_date", "2024-02-29") is None
    assert "YYYY-MM-DD" in check_date("start_date", "2024/01/01")
    assert "not a real date" in check_date("end_date", "2023-02-29")
    assert check_strategy_name("v3_e2e_test") is None
    assert "not a valid ktrdr strategy name" in check_strategy_name("strategies/v3_e2e_test.yaml")


def test_duration():
    op = {"created_at": "2026-01-01T00:00:00Z", "started_at": "2026-01-01T00:00:02+00:00", "completed_at": "2026-01-01T00:00:12.5+00:00"}
    assert duration_seconds(op) == 10.5
    now = datetime.datetime(2026, 1, 1, 0, 1, 2, tzinfo=datetime.timezone.utc)
    assert duration_seconds({"started_at": "2026-01-01T00:00:02"}, now=now) == 60.0
    assert duration_seconds({}) is None


def test_training_summary():
    rs = {"model_path": "/app/models/v3_e2e_test/1h_v1",
          "training_metrics": {"final_train_loss": 0.9, "final_val_loss": 0.95, "final_train_accuracy": 0.6,
                               "final_val_accuracy": 0.55, "epochs_completed": 3},
          "test_metrics": {"test_accuracy": 0.52, "test_loss": 1.0}}
    summary, warnings = summarize("training", rs, [])
    assert summary["model_path"] == "/app/models/v3_e2e_test/1h_v1"
    assert summary["accuracy"] == 0.52 and summary["loss"] == 1.0
    assert summary["val_accuracy"] == 0.55 and summary["epochs"] == 3
    assert warnings == []
    # without test metrics, validation numbers stand in
    summary, dummy = summarize("training", {"training_metrics": {"final_val_accuracy": 0.5, "final_val_loss": 0.7}})
    assert summary["accuracy"] == 0.5 and summary["loss"] == 0.7


def test_backtest_summary_and_zero_trades_warning():
    rs = {"strategy_name": "v3_e2e_test", "symbol": "EURUSD", "timeframe": "1h", "trade_count": 12,
          "metrics": {"total_return": 1200.0, "total_return_pct": 1.2, "win_rate": 0.5, "sharpe_ratio": 0.8,
                      "max_drawdown_pct": 3.1, "total_trades": 12},
          "signal_distribution": {"BUY": 10, "SELL": 8, "HOLD": 900}}
    summary, warnings = summarize("backtesting", rs, ["slow data"])
    assert summary["trades"] == 12 and summary["total_return_pct"] == 1.2
    assert summary["signal_distribution"] == {"BUY": 10, "SELL": 8, "HOLD": 900}
    assert warnings == ["slow data"]

    rs = dict(rs, trade_count=0, signal_distribution={"BUY": 0, "SELL": 0, "HOLD": 918})
    summary, warnings = summarize("backtesting", rs, [])
    assert summary["trades"] == 0
    assert len(warnings) == 1
    assert warnings[0].startswith("Backtest of v3_e2e_test on EURUSD 1h made 0 trades (signal distribution: ")
    assert summary["warnings"] == warnings

    # A backend that explains the 0 trades itself: its words are kept, not doubled.
    own = "0 trades: the model's dominant signal is HOLD (100.0% of 918 bars); no BUY signal ever opened a position"
    summary, warnings = summarize("backtesting", dict(rs, warnings=[own]), [own])
    assert warnings == [own]


def test_backtest_trades_from_metrics_when_no_trade_count():
    summary, dummy = summarize("backtesting", {"metrics": {"total_trades": 3}})
    assert summary["trades"] == 3


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_poll_schedule_grows_caps_and_respects_the_deadline():
    clock = Clock()
    s = PollSchedule(2, 10, timeout=60, rng=random.Random(1), jitter=0.0, clock=clock)
    delays = [s.next_delay() for dummy in range(6)]
    assert delays == [2, 3, 4.5, 6.75, 10, 10]
    clock.t = 55
    assert s.next_delay() == 5  # never past the deadline
    clock.t = 61
    assert s.expired() and s.next_delay() == 0
    s.reset()
    clock.t = 0
    assert s.next_delay() == 2


def test_poll_schedule_jitter_bounds():
    s = PollSchedule(10, 10, timeout=1e9, rng=random.Random(3), jitter=0.2)
    for dummy in range(100):
        assert 8 <= s.next_delay() <= 12


def test_poll_schedule_looks_often_around_the_expected_end():
    clock = Clock()
    s = PollSchedule(2, 30, timeout=600, jitter=0.0, clock=clock)
    for dummy in range(8):
        s.next_delay()  # grown to the 30 s cap
    assert s.next_delay(expected_in=None) == 30
    assert s.next_delay(expected_in=7.5) == 7.5  # never sleeps past the expected end
    assert s.next_delay(expected_in=0.1) == 0.5  # then every near_interval
    assert s.next_delay(expected_in=-14) == 0.5  # for near_window seconds after it
    assert s.next_delay(expected_in=-16) == 30  # then the estimate was wrong: back to the backoff


def test_poll_schedule_first_look_comes_sooner():
    s = PollSchedule(2, 30, timeout=600, jitter=0.0, clock=Clock(), first=0.5)
    assert [s.next_delay() for dummy in range(4)] == [0.5, 0.75, 1.125, 1.6875]
    s.reset()
    assert s.next_delay() == 2  # progress moved: back to poll_interval


def test_end_estimate_from_the_progress_rate():
    est = EndEstimate()
    assert est.expected_in(0) is None
    est.add(10.0, 5.0)
    est.add(11.0, None)
    assert est.expected_in(12.0) is None  # has not moved yet
    est.add(12.0, 5.0)
    est.add(20.0, 45.0)  # 40 points in 10 s since the first look
    assert est.expected_in(20.0) == pytest.approx(13.75)
    assert est.expected_in(36.0) == pytest.approx(-2.25)  # overdue


def test_poll_schedule_rejects_zero_interval():
    with pytest.raises(ValueError):
        PollSchedule(0, 10, timeout=5)
