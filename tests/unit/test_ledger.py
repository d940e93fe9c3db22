"""The ledger's rules (plugins/module_utils/_ledger.py) on real files and real processes: the
deploy lock is atomic and re-entrant, a run's lock is stale once its process has ended, the
audit log names a bad line instead of failing, the release id is the one the manifests use."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys

import pytest

from ansible_collections.ktrdr.ops.plugins.module_utils import _ledger


def run_of(pid=None, user="alice"):
    return _ledger.controller_run(pid=pid or os.getpid(), user=user)


def test_release_id_is_the_manifests_id():
    # The same value `(images | dictsort | to_json | hash('sha256'))[:12]` gives (checked with ansible).
    images = {"worker_cpu": "ktrdr-worker-cpu:abc", "backend": "ktrdr-backend:def", "postgres": "postgres:17",
              "other": "ignored", "worker_gpu": ""}
    assert _ledger.release_id(images) == "a223906c317c"


def _try_acquire(path, n, results):
    run = dict(run_of(), id="racer-%d" % n, holder="racer%d@x" % n)
    results.put(_ledger.acquire(path, run)[0])


def test_only_one_of_many_concurrent_runs_takes_the_lock(tmp_path):
    path = str(tmp_path / "env" / _ledger.LOCK_FILE)
    results = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_try_acquire, args=(path, n, results)) for n in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    won = [results.get(timeout=5) for _ in procs]
    assert won.count(True) == 1, won
    assert json.load(open(path))["run"].startswith("racer-")
    assert [f for f in os.listdir(os.path.dirname(path)) if f != _ledger.LOCK_FILE] == [], "temporary files left"


def test_the_same_run_nests_and_the_outermost_release_frees(tmp_path):
    path = str(tmp_path / _ledger.LOCK_FILE)
    me = run_of()
    assert _ledger.acquire(path, me, message="deploy")[0]
    assert _ledger.acquire(path, me)[0]
    assert _ledger.release(path, me) == (False, dict(json.load(open(path)), depth=1))
    assert _ledger.release(path, me)[0] and not os.path.exists(path)


def test_another_run_is_refused_and_a_failed_run_leaves_it_alone(tmp_path):
    path = str(tmp_path / _ledger.LOCK_FILE)
    bob = dict(run_of(user="bob"), id="bob-run", holder="bob@laptop", controller="laptop")
    assert _ledger.acquire(path, bob, message="upgrade")[0]
    acquired, held = _ledger.acquire(path, run_of())
    assert not acquired and held["holder"] == "bob@laptop"
    with pytest.raises(_ledger.LedgerError, match="held by .* bob@laptop .*lock.yml -e ktrdr_lock=break"):
        _ledger.release(path, run_of())
    assert _ledger.release(path, run_of(), everything=True) == (False, held)
    assert os.path.exists(path)
    assert _ledger.break_lock(path)["holder"] == "bob@laptop" and not os.path.exists(path)


def test_a_maintenance_lock_is_released_by_its_holder_from_another_run(tmp_path):
    path = str(tmp_path / _ledger.LOCK_FILE)
    assert _ledger.acquire(path, run_of(), kind="maintenance", message="VACUUM")[0]
    later = dict(run_of(), id="a-later-run")
    assert not _ledger.acquire(path, later)[0]
    assert _ledger.release(path, later)[0]


def test_check_mode_writes_nothing(tmp_path):
    path = str(tmp_path / "env" / _ledger.LOCK_FILE)
    assert _ledger.acquire(path, run_of(), write=False)[0]
    assert not os.path.exists(os.path.dirname(path))


def test_a_run_is_alive_until_its_process_ends():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = run_of(pid=child.pid)
        assert _ledger.run_alive(run) is True
        assert _ledger.run_alive(dict(run, controller="elsewhere")) is None
    finally:
        child.kill()
        child.wait()
    assert _ledger.run_alive(run) is False
    # A new process that reuses the pid is not the run: its start differs.
    assert _ledger.run_alive(dict(run, id=run["id"] + "0")) is False


def test_the_audit_log_names_a_truncated_line(tmp_path):
    path = str(tmp_path / _ledger.AUDIT_FILE)
    for n in range(3):
        _ledger.append_audit(path, {"n": n, "result": "ok"})
    with open(path, "a") as fh:
        fh.write('{"n": 3, "resu')  # a write cut off mid-line
    entries, bad = _ledger.read_audit(path, last=2)
    assert [e["n"] for e in entries] == [1, 2]
    assert len(bad) == 1 and bad[0][0] == 4 and "line 4" in bad[0][1]
    _ledger.append_audit(path, {"n": 4})  # the next entry starts a line of its own
    entries, bad = _ledger.read_audit(path, last=0)
    assert [e["n"] for e in entries] == [0, 1, 2, 4] and len(bad) == 1


def test_skew_names_workers_of_another_release():
    containers = [
        {"name": "p-backend", "component": "backend", "kind": "", "release": "aaa"},
        {"name": "p-training-1", "component": "training-worker", "kind": "worker", "worker_id": "training-1", "release": "aaa"},
        {"name": "p-backtest-1", "component": "backtesting-worker", "kind": "worker", "worker_id": "backtest-1", "release": "bbb"},
        {"name": "p-db", "component": "db", "kind": "", "release": ""},
    ]
    assert _ledger.skew(containers, _ledger.backend_release(containers)) == [
        {"worker_id": "backtest-1", "container": "p-backtest-1", "release": "bbb", "backend_release": "aaa"}]
    assert [k["container"] for k in _ledger.skew(containers, "ccc")] == ["p-backend", "p-training-1", "p-backtest-1"]


def test_the_play_is_the_playbook_not_the_inventory_or_a_vars_file():
    args = ["/venv/bin/python", "/venv/bin/ansible-playbook", "-i", "inventories/prod/hosts.yml", "-e", "@vars.yml",
            "--extra-vars", "x.yml", "playbooks/upgrade.yml", "-e", "upgrade_rollback_on_failure=true"]
    assert _ledger.playbooks_in(args) == "upgrade.yml"


def test_a_run_of_another_boot_has_ended_one_of_another_pid_namespace_is_unknown():
    here = run_of()
    boot, ns = here["namespace"].split("/")
    assert _ledger.run_alive(dict(here, namespace="another-boot/" + ns)) is False
    assert _ledger.run_alive(dict(here, namespace=boot + "/1")) is None


def test_the_guard_reads_the_same_rule_from_containers_info_labels():
    listed = [{"name": "p-backend", "labels": {"io.ktrdr.component": "backend", "io.ktrdr.release": "aaa"}},
              {"name": "p-backtest-1", "labels": {"io.ktrdr.kind": "worker", "io.ktrdr.worker-id": "backtest-1",
                                                   "io.ktrdr.release": "bbb"}},
              {"name": "p-db", "labels": {"io.ktrdr.component": "db"}}]
    assert _ledger.release_skew(listed, "aaa") == [
        {"worker_id": "backtest-1", "container": "p-backtest-1", "release": "bbb", "backend_release": "aaa"}]


@pytest.mark.parametrize("groups, backtest, keys", [
    (["ktrdr_build", "ktrdr_db", "ktrdr_backend", "ktrdr_workers", "ktrdr_cpu_workers"], 1,
     ["postgres", "backend", "worker_cpu"]),
    (["ktrdr_workers", "ktrdr_gpu_workers"], 1, ["worker_cpu", "worker_gpu"]),  # its backtesting workers need no GPU
    (["ktrdr_workers", "ktrdr_gpu_workers"], 0, ["worker_gpu"]),
    (["ktrdr_workers", "ktrdr_gpu_workers"], "0", ["worker_gpu"]),  # -e workers_backtest_count=0 arrives as a string
    (["ktrdr_cpu_workers"], 0, ["worker_cpu"]),
    (["ktrdr_build"], 1, []),  # a build-only host runs nothing
])
def test_host_image_keys_follow_the_groups_in_load_order(groups, backtest, keys):
    assert _ledger.host_image_keys(groups, backtest) == keys


def test_release_images_are_the_four_keys_with_a_ref():
    images = {"backend": "ktrdr-backend:1", "worker_gpu": "", "probes": {"x": 1}, "postgres": None, "worker_cpu": "w:2"}
    assert _ledger.release_images(images) == {"backend": "ktrdr-backend:1", "worker_cpu": "w:2"}
