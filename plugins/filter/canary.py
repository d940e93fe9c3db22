# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""The canary's verdict over its report: what failed, what only deserves a warning."""

from __future__ import annotations

import json
import re

ZERO_TRADES = re.compile(r"(?i)0 trades|no trades")


def _trades(summary):
    trades = summary.get("trades", summary.get("total_trades"))
    return None if trades is None else str(trades)


def canary_verdict(report, backend_container, check_torch=True, run_operations=True, fail_on_zero_trades=False):
    """{'verdict': passed|failed, 'failures': [...], 'warnings': [...]} of a canary report (the
    containers, the backend's torch probe, the registered workers, the workers' torch checks, the
    training and the backtest), each failure a sentence naming what is wrong."""
    failures = []
    containers = report.get("containers") or []
    bad = [c for c in containers if c.get("state") != "running"]
    bad += [c for c in containers if c.get("state") == "running" and c.get("health") not in ("healthy", "none")]
    failures += ["container not running/healthy: %s %s %s" % (c.get("name"), c.get("state"), c.get("health")) for c in bad]
    backend = report.get("backend") or {}
    if backend.get("state") != "running":
        failures.append("backend container %s is %s" % (backend_container, backend.get("state")))
    worker_torch = report.get("worker_torch") or []
    if check_torch:
        if backend.get("torch_installed", "unknown") is not False:
            failures.append("torch is importable in the backend (%s)" % backend.get("image"))
        if not worker_torch:
            failures.append("no worker container was probed")
    failures += ["torch check failed in %s" % w.get("container") for w in worker_torch if not w.get("ok")]
    types = [w.get("worker_type") for w in report.get("workers") or []]
    failures += ["no %s worker registered" % t for t in ("backtesting", "training") if t not in types]
    if run_operations:
        for name in ("training", "backtest"):
            op = report.get(name) or {}
            if op.get("status") != "completed":
                failures.append("%s %s: %s" % (name, op.get("status"), op.get("error", "")))
    summary = (report.get("backtest") or {}).get("summary") or {}
    zero = _trades(summary) == "0"
    if fail_on_zero_trades and zero:
        failures.append("backtest made 0 trades")
    warnings = []
    if zero:
        warnings.append("backtest made 0 trades: the model never crossed the decision threshold on this data "
                        "(signal mix: %s)" % json.dumps(summary.get("signal_distribution") or {}))
    warnings += [w for w in summary.get("warnings") or [] if not ZERO_TRADES.search(str(w))]
    return {"verdict": "failed" if failures else "passed", "failures": failures, "warnings": warnings}


class FilterModule:
    def filters(self):
        return {"canary_verdict": canary_verdict}
