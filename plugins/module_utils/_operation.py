# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
#
# This module util is PRIVATE to the ktrdr.ops collection. It may change or go away
# without notice; do not use it from other collections.
"""Pure helpers of ktrdr.ops.operation: request bodies, timings and result summaries."""

from __future__ import annotations

import datetime
import re

TERMINAL = ("completed", "failed", "cancelled")
ACTIVE = ("pending", "resuming", "running")

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STRATEGY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def check_date(option, value):
    """None if fine, else the message. ktrdr wants YYYY-MM-DD."""
    if value is None:
        return None
    if not _DATE_RE.match(value):
        return "%s must be a date as YYYY-MM-DD, got %r" % (option, value)
    try:
        datetime.date.fromisoformat(value)
    except ValueError as exc:
        return "%s=%r is not a real date: %s" % (option, value, exc)
    return None


def check_strategy_name(name):
    if not _STRATEGY_RE.match(name or ""):
        return ("strategy %r is not a valid ktrdr strategy name: it must match ^[A-Za-z0-9][A-Za-z0-9_-]*$ "
                "(the file stem of <strategies>/<name>.yaml, without directory or extension)" % (name,))
    return None


def start_request(params):
    """(path, body) of the POST that starts the operation (None values left out)."""
    if params["operation_type"] == "training":
        body = dict(
            strategy_name=params["strategy"],
            symbols=params.get("symbols"),
            timeframes=params.get("timeframes"),
            start_date=params.get("start_date"),
            end_date=params.get("end_date"),
        )
        path = "/trainings/start"
    else:
        body = dict(
            strategy_name=params["strategy"],
            symbol=params.get("symbol"),
            timeframe=params.get("timeframe"),
            start_date=params.get("start_date"),
            end_date=params.get("end_date"),
            model_path=params.get("model_path"),
            initial_capital=params.get("initial_capital"),
            commission=params.get("commission"),
            slippage=params.get("slippage"),
        )
        path = "/backtests/start"
    return path, {k: v for k, v in body.items() if v is not None}


def started_id(response):
    """The operation id from a start response: trainings answer ``task_id``, backtests ``operation_id``."""
    if not isinstance(response, dict):
        return None
    return response.get("operation_id") or response.get("task_id") or (response.get("data") or {}).get("operation_id")


def parse_time(value):
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        ts = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=datetime.timezone.utc)
    return ts


def duration_seconds(op, now=None):
    """Run time: started (or created) to completed, or to now while it still runs."""
    start = parse_time(op.get("started_at")) or parse_time(op.get("created_at"))
    if start is None:
        return None
    end = parse_time(op.get("completed_at"))
    if end is None:
        end = now or datetime.datetime.now(datetime.timezone.utc)
    return round(max((end - start).total_seconds(), 0.0), 3)


def progress_of(op):
    prog = op.get("progress") or {}
    pct = prog.get("percentage")
    try:
        pct = round(float(pct), 2) if pct is not None else None
    except (TypeError, ValueError):
        pct = None
    return pct, prog.get("current_step")


def _first(mapping, *keys):
    for key in keys:
        if isinstance(mapping, dict) and mapping.get(key) is not None:
            return mapping[key]
    return None


def summarize(op_type, result_summary, op_warnings=None):
    """The few numbers a playbook asserts on, from a result_summary of either kind.

    Returns (summary dict, list of warning strings for the user).
    """
    rs = result_summary if isinstance(result_summary, dict) else {}
    warnings = []
    # The operation's warnings and the result's own (the reference backend copies one into the other).
    for w in list(op_warnings or []) + list(rs.get("warnings") or []):
        if w and str(w) not in warnings:
            warnings.append(str(w))
    if op_type == "training":
        train = rs.get("training_metrics") or {}
        test = rs.get("test_metrics") or {}
        summary = dict(
            model_path=rs.get("model_path"),
            accuracy=_first(test, "test_accuracy", "accuracy") if test else None,
            loss=_first(test, "test_loss", "loss") if test else None,
            train_accuracy=_first(train, "final_train_accuracy", "train_accuracy", "accuracy"),
            val_accuracy=_first(train, "final_val_accuracy", "val_accuracy"),
            train_loss=_first(train, "final_train_loss", "train_loss", "loss"),
            val_loss=_first(train, "final_val_loss", "val_loss"),
            epochs=_first(train, "epochs_completed", "epochs_trained", "epochs"),
        )
        if summary["accuracy"] is None:
            summary["accuracy"] = summary["val_accuracy"] if summary["val_accuracy"] is not None else summary["train_accuracy"]
        if summary["loss"] is None:
            summary["loss"] = summary["val_loss"] if summary["val_loss"] is not None else summary["train_loss"]
        summary["warnings"] = warnings
        return summary, warnings
    if op_type == "backtesting":
        metrics = rs.get("metrics") or {}
        trades = _first(rs, "trade_count", "total_trades")
        if trades is None:
            trades = metrics.get("total_trades")
        summary = dict(
            trades=trades,
            total_return=_first(metrics, "total_return") if metrics else rs.get("total_return"),
            total_return_pct=_first(metrics, "total_return_pct") if metrics else rs.get("total_return_pct"),
            win_rate=metrics.get("win_rate"),
            sharpe_ratio=metrics.get("sharpe_ratio"),
            max_drawdown_pct=metrics.get("max_drawdown_pct"),
            signal_distribution=_first(rs, "signal_distribution", "signals") or metrics.get("signal_distribution"),
            symbol=rs.get("symbol"),
            timeframe=rs.get("timeframe"),
        )
        if trades == 0 and not any("0 trades" in w for w in warnings):
            dist = summary["signal_distribution"]
            warnings.append(
                "Backtest of %s on %s %s made 0 trades%s: the run completed, but the model never produced a trade signal. "
                "Check the model (summary.signal_distribution), the confidence threshold in the strategy, and the date range."
                % (rs.get("strategy_name") or "the strategy", rs.get("symbol") or "?", rs.get("timeframe") or "?",
                   " (signal distribution: %s)" % dist if dist else "")
            )
        summary["warnings"] = warnings
        return summary, warnings
    return dict(warnings=warnings), warnings


def describe_progress(op):
    pct, step = progress_of(op)
    parts = [op.get("status") or "unknown"]
    if pct is not None:
        parts.append("%g%%" % pct)
    if step:
        parts.append(repr(step))
    return ", ".join(parts)


class EndEstimate:
    """When an operation will reach 100%, from the progress percentages seen while polling.

    The rate is taken between the first percentage seen and the latest change (both on the
    poller's clock, so a backend clock that differs does not matter); None until it moved.
    """

    def __init__(self):
        self._first = None
        self._last = None

    def add(self, now, percentage):
        if percentage is None:
            return
        if self._first is None:
            self._first = self._last = (now, percentage)
        elif percentage != self._last[1]:
            self._last = (now, percentage)

    def expected_in(self, now):
        """Seconds until the expected end (negative once overdue), or None when unknown."""
        if self._first is None or self._last[1] <= self._first[1] or self._last[0] <= self._first[0]:
            return None
        rate = (self._last[1] - self._first[1]) / (self._last[0] - self._first[0])
        return (100.0 - self._last[1]) / rate - (now - self._last[0])
