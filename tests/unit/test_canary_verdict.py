"""The canary's verdict (plugins/filter/canary.py): a healthy report passes, and each way a
deployment can be broken is named in a sentence, as the canary role prints and fails with it."""

from __future__ import annotations

import copy

from ansible_collections.ktrdr.ops.plugins.filter.canary import canary_verdict

GOOD = {
    "containers": [
        {"name": "ktrdr-local-db", "state": "running", "health": "healthy"},
        {"name": "ktrdr-local-backend", "state": "running", "health": "healthy"},
        {"name": "ktrdr-local-gen", "state": "running", "health": "none"},
    ],
    "backend": {"state": "running", "image": "ktrdr-backend:abc", "torch_installed": False},
    "workers": [{"worker_type": "backtesting"}, {"worker_type": "training"}],
    "worker_torch": [{"container": "ktrdr-local-training-1", "ok": True}],
    "training": {"status": "completed"},
    "backtest": {"status": "completed", "summary": {"total_trades": 75, "warnings": ["slow data"]}},
}


def verdict(change=None, **kw):
    report = copy.deepcopy(GOOD)
    if change:
        change(report)
    return canary_verdict(report, "ktrdr-local-backend", **kw)


def test_a_healthy_deployment_passes():
    assert verdict() == {"verdict": "passed", "failures": [], "warnings": ["slow data"]}


def test_each_broken_part_is_named():
    def broken(r):
        r["containers"][1].update(state="exited", health="unhealthy")
        r["containers"][0]["health"] = "starting"
        r["backend"].update(state="exited", torch_installed=True)
        r["workers"] = [{"worker_type": "training"}]
        r["worker_torch"][0]["ok"] = False
        r["training"] = {"status": "failed", "error": "strategy not found"}

    v = verdict(broken)
    assert v["verdict"] == "failed"
    assert v["failures"] == [
        "container not running/healthy: ktrdr-local-backend exited unhealthy",
        "container not running/healthy: ktrdr-local-db running starting",
        "backend container ktrdr-local-backend is exited",
        "torch is importable in the backend (ktrdr-backend:abc)",
        "torch check failed in ktrdr-local-training-1",
        "no backtesting worker registered",
        "training failed: strategy not found",
    ]


def test_unprobed_torch_fails_only_when_torch_is_checked():
    def unprobed(r):
        del r["backend"]["torch_installed"]
        r["worker_torch"] = []

    assert verdict(unprobed)["failures"] == ["torch is importable in the backend (ktrdr-backend:abc)", "no worker container was probed"]
    assert verdict(unprobed, check_torch=False)["failures"] == []


def test_zero_trades_warns_or_fails():
    def zero(r):
        r["backtest"]["summary"] = {"trades": 0, "signal_distribution": {"SELL": 120}, "warnings": ["Backtest made 0 trades"]}

    v = verdict(zero)
    assert v["failures"] == []
    assert v["warnings"] == ['backtest made 0 trades: the model never crossed the decision threshold on this data (signal mix: {"SELL": 120})']
    assert verdict(zero, fail_on_zero_trades=True)["failures"] == ["backtest made 0 trades"]


def test_operations_are_judged_only_when_run():
    def skipped(r):
        r["training"] = {"status": "skipped"}
        r["backtest"] = {}

    assert verdict(skipped, run_operations=False)["failures"] == []
    assert verdict(skipped)["failures"] == ["training skipped: ", "backtest None: "]
