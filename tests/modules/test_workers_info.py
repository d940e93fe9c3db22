"""ktrdr.ops.workers_info against the reference stack: listing, waiting until workers register
(including workers that only start while the module waits), image-revision filtering, and a
timeout whose message says what is missing."""

import threading
import time

import pytest
from stack import start_worker, wait_registered

from ansible_run import module_task, run_tasks

pytestmark = [pytest.mark.needs_stack, pytest.mark.usefixtures("training_worker", "backtest_worker")]


def test_lists_workers_and_counts(backend, training_worker, backtest_worker):
    args = {"api_url": backend.url}
    run = run_tasks([module_task("workers_info", args, check=True),
                     module_task("workers_info", dict(args, wait_for={"training": 1, "backtesting": 1}, timeout=30)),
                     module_task("workers_info", dict(args, worker_type="training"))])
    listing, waited, training_only = run.results
    for res in (listing, waited):
        assert not res.failed and not res.changed
        ids = {w["worker_id"]: w for w in res["workers"]}
        assert {training_worker.worker_id, backtest_worker.worker_id} <= set(ids)
        assert res["counts"]["training"] >= 1 and res["counts"]["backtesting"] >= 1
        t = ids[training_worker.worker_id]
        assert t["worker_type"] == "training" and t["endpoint_url"] == training_worker.url
        assert t["capabilities"]["gpu"] in (True, False) and "torch_version" in t["capabilities"]
    assert waited["waited_seconds"] < 5
    assert {w["worker_type"] for w in training_only["workers"]} == {"training"}


def test_times_out_naming_what_is_missing(backend):
    t0 = time.monotonic()
    res = run_tasks([module_task("workers_info", {"api_url": backend.url, "wait_for": {"training": 3, "backtesting": 1},
                                                  "timeout": 3, "poll_interval": 0.5})])[0]
    assert res.failed
    assert res.msg.startswith("Timed out after 3s waiting for workers at %s/api/v1/workers: need training >= 3 (have 1)" % backend.url)
    assert "backtesting" not in res.msg.split("need", 1)[1]  # that one was satisfied
    assert res["counts"]["training"] == 1
    assert time.monotonic() - t0 < 30


def test_waits_for_a_worker_that_starts_later_with_a_new_image_revision(backend, database, data_dir, models_dir, stack_dir):
    args = {"api_url": backend.url, "wait_for": {"backtesting": 1}, "image_revision": "rev-new", "timeout": 60, "poll_interval": 0.5}
    # Before: the running backtest worker has no image revision, so nothing counts yet.
    before = run_tasks([module_task("workers_info", dict(args, wait_for=None))])[0]
    assert before["counts"].get("backtesting", 0) == 0

    box = {}
    waiter = threading.Thread(target=lambda: box.update(run=run_tasks([module_task("workers_info", args)])))
    waiter.start()
    time.sleep(3)  # the module is polling now
    worker = start_worker("backtesting", database, backend.url, data_dir, models_dir, stack_dir,
                          worker_id="backtest-rev-new", KTRDR_IMAGE_REVISION="rev-new")
    try:
        wait_registered(backend.url, worker.worker_id)
        waiter.join(90)
        res = box["run"][0]
        assert not res.failed, res.msg
        assert res["counts"] == {"backtesting": 1}
        assert res["waited_seconds"] >= 2
        [new] = [w for w in res["workers"] if w["worker_id"] == "backtest-rev-new"]
        assert new["capabilities"]["image_revision"] == "rev-new"

        # The timeout message names workers that are registered but run another revision.
        res = run_tasks([module_task("workers_info", dict(args, image_revision="rev-newer", timeout=2))])[0]
        assert res.failed
        assert "need backtesting >= 1 (have 0; registered but not counted: other image revision: None, rev-new)" in res.msg
    finally:
        worker.stop()
