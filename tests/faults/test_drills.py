"""Fault drills on the deployed stack, in the order they run (see conftest.py).

Each drill provokes one fault on the real deployment and asserts on what can be observed
afterwards: operation status and error message through the HTTP API, container StartedAt /
RestartCount / image from the engine, the database's alembic revision, the release manifest.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from drill import (
    BUILD_DIR, CANARY_STRATEGY, DOCKER, HERE, PROJECT, ROOT, ROOT_DIR, ansible, ansible_ok, api, backend_serves,
    container, finish_playbook, health, operation, project_containers, run_operations, start_operation,
    start_playbook, started_at, state, wait_for, wait_healthy, wait_operation, worker_ids, workers,
)

DB = PROJECT + "-db"
BACKEND = PROJECT + "-backend"
BACKTEST = PROJECT + "-backtest-1"
TRAINING = PROJECT + "-training-1"
TRAINING_PORT = 30004
BACKTEST_PORT = 30003
HEAD = "a1b2c3d4e5f6"
REVISIONS = "6bfcfd0a377f, a1b2c3d4e5f6"


def _migration_lock_key() -> int:
    # The key every ktrdr.ops migration run takes (plugins/module_utils/_migration.py); the file
    # imports only the standard library, so it loads on its own.
    spec = importlib.util.spec_from_file_location(
        "ktrdr_migration_util", os.path.join(ROOT, "plugins", "module_utils", "_migration.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.DEFAULT_LOCK_KEY


def psql(sql: str) -> str:
    """One query in the database container (local socket, trust), unaligned output."""
    rc, out = container(DB).exec_run(["psql", "-U", "ktrdr", "-d", "ktrdr", "-v", "ON_ERROR_STOP=1", "-tAc", sql])
    assert rc == 0, "psql %r -> rc %s: %s" % (sql, rc, out.decode())
    return out.decode().strip()


def migration_runners() -> list:
    return DOCKER.containers.list(filters={"label": "io.ktrdr.ops=migration", "network": PROJECT})


# --- 8. two concurrent migration runs ----------------------------------------------------------

def test_concurrent_migrations_serialize():
    """Two migrate.yml runs at once on a fresh database (from two inventories, so two deploy locks):
    one applies both revisions, the other waits for the advisory lock and finds nothing pending. The drill holds the lock itself until
    both runners are waiting on it, so the two really contend (not one after the other)."""
    ansible_ok(os.path.join(HERE, "playbooks", "database.yml"))
    assert psql("SELECT to_regclass('public.alembic_version') IS NULL") == "t", "the database is not fresh"

    key = _migration_lock_key()
    holder = subprocess.Popen(["docker", "exec", "-i", DB, "psql", "-U", "ktrdr", "-d", "ktrdr", "-q"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    runs = []
    try:
        holder.stdin.write("SELECT pg_advisory_lock(%d);\n" % key)
        holder.stdin.flush()
        wait_for("the drill to hold the migration lock",
                 lambda: psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted") == "1", 30)
        # The second run comes as from another inventory of the same database (a deploy lock of
        # its own, in another root directory): only the advisory lock stands between the two.
        runs = [start_playbook("migrate.yml"),
                start_playbook("migrate.yml", "-e", "ktrdr_root_dir=%s" % os.path.join(BUILD_DIR, "other-inventory"))]
        wait_for("both migration runners to wait on the lock",
                 lambda: len(migration_runners()) == 2
                 and int(psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_try_advisory_lock%' "
                              "AND pid <> pg_backend_pid()")) >= 2, 300)
    finally:
        holder.stdin.write("SELECT pg_advisory_unlock(%d);\n\\q\n" % key)
        holder.stdin.close()
        holder.wait(timeout=30)
    results = [finish_playbook(p, timeout=600) for p in runs]
    for run in results:
        assert run.rc == 0, run.tail()
    applied = sorted(" ".join(re.search(r"\(applied ([^)]*)\)", r.output).group(1).split()) for r in results)
    assert applied == [REVISIONS, "nothing"], "expected one run to apply %s and the other nothing: %s" % (REVISIONS, applied)
    assert psql("SELECT version_num FROM alembic_version") == HEAD
    assert psql("SELECT count(*) FROM alembic_version") == "1"
    assert not migration_runners(), "a migration runner container was left behind"


# --- 6. re-run after a partial failure --------------------------------------------------------

def test_rerun_after_partial_failure_converges():
    """deploy.yml with the training worker's port taken fails in the workers play, naming the
    port; the database and the backend it already deployed keep serving. With the port free
    again, site.yml finishes the job and touches only what was missing: the database, the
    backend and the backtest worker are not restarted."""
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", TRAINING_PORT))
    blocker.listen(1)
    try:
        run = ansible("deploy.yml")
        assert run.rc != 0, "deploy.yml succeeded although port %d was taken:\n%s" % (TRAINING_PORT, run.tail())
        failure = run.output[run.output.find("Deploying the workers failed"):]
        assert "Deploying the workers failed" in run.output, run.tail()
        assert str(TRAINING_PORT) in failure[:3000], "the failure does not name the port %d:\n%s" % (TRAINING_PORT, failure[:3000])
        assert backend_serves(), "the backend stopped serving after the workers failed: %s" % health()
        before = started_at([DB, BACKEND, BACKTEST])
        assert state(TRAINING)["Running"] is False
    finally:
        blocker.close()

    rerun = ansible_ok("site.yml")
    changed = rerun.changed_tasks
    assert "ktrdr.ops.workers : Start the worker containers" in changed, changed
    assert not [t for t in changed if t.startswith(("ktrdr.ops.database :", "ktrdr.ops.backend :"))], \
        "the re-run changed the database or the backend: %s" % changed
    after = started_at([DB, BACKEND, BACKTEST])
    assert after == before, "site.yml restarted containers that were fine: before %s, after %s" % (before, after)
    assert state(TRAINING)["Running"] and state(TRAINING)["Health"]["Status"] == "healthy"
    listed = workers()
    assert set(worker_ids()) <= set(listed), "not every worker registered: %s" % sorted(listed)
    with open(os.path.join(ROOT, "artifacts", "faults", "canary-report.json")) as fh:
        assert json.load(fh)["verdict"] == "passed"


# --- 1. backend restarted ----------------------------------------------------------------------

def test_backend_restart_workers_reregister(stack):
    """docker restart of the backend empties its (in-memory) worker registry: every worker
    registers again by itself, and a training and a backtest run."""
    before = state(BACKEND)["StartedAt"]
    t0 = time.monotonic()
    container(BACKEND).restart(timeout=30)
    assert state(BACKEND)["StartedAt"] != before
    wait_for("the backend to serve again", backend_serves, 120)
    wait_healthy(BACKEND)

    def all_available():
        w = workers()
        return w if set(stack) <= {i for i, v in w.items() if v["status"] == "available"} else None

    listed = wait_for("every worker to register again", all_available, 120)
    print("workers registered again %.1f s after the restart: %s" % (time.monotonic() - t0, sorted(listed)))
    run_operations()


def _all_available(stack):
    w = workers()
    return w if set(stack) <= {i for i, v in w.items() if v["status"] == "available"} else None


def test_backend_killed_workers_reregister(stack):
    """docker kill + start of the backend: the workers get no shutdown notice, and the new
    backend's registry is empty. Each worker notices that the backend stopped health-checking it
    (ktrdr's rule: 30 s of silence, checked every 10 s), asks for its registration and registers
    again, within 60 s. The Docker health checks call GET /, so they do not hide the silence."""
    container(BACKEND).kill()
    t0 = time.monotonic()
    container(BACKEND).start()
    wait_for("the backend to serve again", backend_serves, 120)
    listed = wait_for("every worker to register again", lambda: _all_available(stack), 60)
    print("workers registered again %.1f s after the kill: %s" % (time.monotonic() - t0, sorted(listed)))


def test_site_repairs_a_worker_that_lost_its_registration(stack):
    """A worker that cannot notice the restart (here: something polls its GET /health, as a
    health check on /health would) stays unregistered after a backend kill. site.yml does not time
    out on it: past workers_registration_grace it restarts exactly the workers the backend does not
    list, they register at start-up, and the run converges."""
    stop = threading.Event()

    def poll_health():
        while not stop.wait(1.0):
            try:
                requests.get("http://127.0.0.1:%d/health" % BACKTEST_PORT, timeout=3)
            except requests.RequestException:
                pass

    poller = threading.Thread(target=poll_health, daemon=True)
    poller.start()
    try:
        before = started_at([DB, TRAINING])
        container(BACKEND).kill()
        container(BACKEND).start()
        wait_for("the backend to serve again", backend_serves, 120)
        run = ansible_ok("site.yml", "-e", "workers_registration_grace=45")
    finally:
        stop.set()
        poller.join(5)
    changed = run.changed_tasks
    assert "ktrdr.ops.workers : Restart the workers the backend does not list" in changed, changed
    backtest_id = {name: wid for wid, name in worker_ids().items()}[BACKTEST]
    assert "%s (%s)" % (BACKTEST, backtest_id) in run.output, run.tail()
    assert _all_available(stack), workers()
    assert started_at([DB]) == {DB: before[DB]}, "the repair restarted the database"


# --- 2. worker killed mid-training --------------------------------------------------------------

@pytest.fixture
def long_strategy():
    """A copy of the canary strategy with 400 epochs (minutes of training), removed afterwards."""
    with open(os.path.join(ROOT, "deploy", "reference", "strategies", CANARY_STRATEGY + ".yaml")) as fh:
        text = fh.read()
    text = re.sub(r"(?m)^name: .*$", "name: faults_long", text)
    text = re.sub(r"(?m)^(\s+epochs:) \d+", r"\1 400", text)
    path = os.path.join(ROOT_DIR, "strategies", "faults_long.yaml")
    with open(path, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o644)
    yield "faults_long"
    os.unlink(path)


def test_worker_killed_mid_training(stack, long_strategy):
    """SIGKILL to the training worker's container (as the OOM killer would): the restart policy
    brings it back, the operation it was running ends failed with a reason naming the worker,
    and the next training runs on the restarted worker."""
    training_id = next(i for i in stack if "-training-" in i)
    op_id = start_operation("training", long_strategy)

    def progressing():
        o = operation(op_id)
        return o["status"] == "running" and o["progress"]["percentage"] > 0

    wait_for("the long training to make progress", progressing, 120)
    before = container(TRAINING).attrs
    os.kill(before["State"]["Pid"], signal.SIGKILL)
    t_kill = time.monotonic()

    result = wait_operation(op_id, timeout=180)
    assert result["status"] == "failed", "the killed training ended %s" % result["status"]
    assert training_id in (result["error_message"] or "") and re.search(
        r"restarted|stopped answering|disappeared", result["error_message"]), result["error_message"]
    print("killed training, %.1f s after the kill: %s" % (time.monotonic() - t_kill, result["error_message"]))

    wait_for("the restart policy to start %s again" % TRAINING,
             lambda: state(TRAINING)["Running"] and state(TRAINING)["StartedAt"] != before["State"]["StartedAt"], 60)
    assert container(TRAINING).attrs["RestartCount"] == before["RestartCount"] + 1
    wait_healthy(TRAINING)
    wait_for("the training worker to be available again",
             lambda: workers().get(training_id, {}).get("status") == "available", 120)
    nxt = wait_operation(start_operation("training"), 600)
    assert nxt["status"] == "completed", "the next training ended %s: %s" % (nxt["status"], nxt["error_message"])


# --- 3. database restarted ---------------------------------------------------------------------

def test_database_restart_backend_recovers(stack):
    """docker restart of PostgreSQL: the backend (not restarted) serves again, lists the
    operations it had, and new operations complete (the workers write their rows again too)."""
    known = {o["operation_id"] for o in api("GET", "/operations", params={"limit": 1000}).json()["data"]}
    backend_started = state(BACKEND)["StartedAt"]
    t0 = time.monotonic()
    container(DB).restart(timeout=30)
    wait_for("the backend to reach the database again", backend_serves, 120)
    print("backend serves again %.1f s after the restart" % (time.monotonic() - t0))
    wait_healthy(DB)
    listed = api("GET", "/operations", params={"limit": 1000})
    assert listed.status_code == 200, listed.text
    assert known <= {o["operation_id"] for o in listed.json()["data"]}, "operations were lost"
    print("operations after the database restart: %s" % run_operations())
    assert state(BACKEND)["StartedAt"] == backend_started, "the backend was restarted to recover"


# --- 4. failed canary on an upgrade, rolled back by itself ---------------------------------------------

SABOTAGE = "fault drill: this release is broken on purpose"


def manifest() -> dict:
    with open(os.path.join(ROOT_DIR, "releases.json")) as fh:
        return json.load(fh)


def running_images() -> dict[str, str]:
    return {n: container(n).attrs["Config"]["Image"] for n in (BACKEND, BACKTEST, TRAINING)}


def _recorded_images(path: str) -> set[str]:
    with open(path) as fh:
        record = json.load(fh)
    return {record[k] for k in ("backend", "worker_cpu", "worker_gpu", "postgres") if record.get(k)}


@pytest.fixture
def broken_source():
    """The reference service with a trainer that always fails: its images build, start, pass
    their health checks and register, and every training fails (the upgrade's canary catches it).
    Afterwards the broken images are removed and the faults build record is put back."""
    src = os.path.join(BUILD_DIR, "source-broken")
    record = os.path.join(BUILD_DIR, "images.json")
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(os.path.join(ROOT, "deploy", "reference"), src,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
    with open(os.path.join(src, "ktrdr", "training", "trainer.py"), "a") as fh:
        fh.write("\n\ndef train_strategy(*args, **kwargs):  # added by tests/faults\n"
                 "    raise RuntimeError(%r)\n" % SABOTAGE)
    shutil.copy(record, record + ".before-upgrade")
    yield src
    broken = _recorded_images(record) - _recorded_images(record + ".before-upgrade")
    shutil.move(record + ".before-upgrade", record)
    shutil.rmtree(src, ignore_errors=True)
    in_use = {c.attrs["Config"]["Image"] for c in DOCKER.containers.list(all=True)}
    for ref in broken - in_use:
        DOCKER.images.remove(ref)


def audit_entries() -> list[dict]:
    with open(os.path.join(ROOT_DIR, "audit.jsonl")) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_failed_canary_upgrade_rolls_back_by_itself(stack, broken_source):
    """upgrade.yml -e upgrade_rollback_on_failure=true to a release whose trainings fail: the
    backend and the workers are replaced, the canary training on the first batch fails, and the
    play rolls the environment back to the previous release by itself (playbooks/rollback.yml),
    proves it with the canary, records the failure and the rollback in the audit log, and fails
    with the operation's error. Every container runs the previous images again, re-registered."""
    release_a = manifest()["current"]
    images_a = running_images()
    audited = len(audit_entries())

    run = ansible("upgrade.yml", "-e", "ktrdr_source_dir=%s" % broken_source, "-e", "upgrade_rollback_on_failure=true")
    assert run.rc != 0, "the upgrade to a broken release succeeded:\n%s" % run.tail()
    assert SABOTAGE in run.output, "the upgrade's failure does not carry the canary's error:\n%s" % run.tail()
    assert "The upgrade failed and was rolled back" in run.output, run.tail()
    assert "TASK [ktrdr.ops.canary : Verdict]" in run.output, "the rollback was not proven by the canary:\n%s" % run.tail()
    assert running_images() == images_a, "the rollback left %s (expected %s)" % (running_images(), images_a)
    m = manifest()
    assert m["current"] == release_a and m["previous"] != release_a, m
    new = audit_entries()[audited:]
    assert [e["result"] for e in new] == ["failed", "rolled-back"], new
    assert SABOTAGE in new[0]["message"] and new[1]["release"] == release_a, new
    with open(os.path.join(ROOT, "artifacts", "faults", "canary-report.json")) as fh:
        assert json.load(fh)["verdict"] == "passed"
    revisions = {i: images_a[n].rsplit(":", 1)[1] for i, n in worker_ids().items()}
    wait_for("every worker to register with the previous release's image",
             lambda: all(workers().get(i, {}).get("capabilities", {}).get("image_revision", "")[:12] == r
                         for i, r in revisions.items()), 120)
    assert not os.path.exists(os.path.join(ROOT_DIR, "deploy.lock")), "the upgrade left its deploy lock"


# --- 7. dockerd restarted ------------------------------------------------------------------------

def _restart_dockerd() -> None:
    """systemctl restart docker where systemd runs it; else (these sandboxes) SIGTERM the daemon
    and start it again the way `make engine` does (scripts/ensure-docker.sh)."""
    if shutil.which("systemctl") and subprocess.run(["systemctl", "is-active", "--quiet", "docker"], check=False,
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
        subprocess.run(["systemctl", "restart", "docker"], check=True, timeout=300)
        return
    with open("/var/run/docker.pid") as fh:
        pid = int(fh.read().strip())
    os.kill(pid, signal.SIGTERM)
    wait_for("dockerd (pid %d) to stop" % pid, lambda: not os.path.exists("/proc/%d" % pid), 180)
    subprocess.run(["bash", "scripts/ensure-docker.sh"], cwd=ROOT, check=True, timeout=180)


@pytest.mark.skipif(os.environ.get("KTRDR_FAULTS_DOCKERD") != "1",
                    reason="restarts the Docker engine under every container of this machine: "
                           "set KTRDR_FAULTS_DOCKERD=1 where nothing else uses it")
def test_dockerd_restart_containers_come_back(stack):
    """The Docker engine restarts (its containers stop with it): the restart policy
    (unless-stopped) starts every container of the environment again, the workers register
    again, and a training and a backtest run."""
    others = sorted(c.name for c in DOCKER.containers.list() if not c.name.startswith(PROJECT + "-"))
    if others:
        pytest.skip("other containers run on this engine and would be stopped too: %s" % ", ".join(others))
    names = sorted(project_containers())
    before = {n: state(n)["StartedAt"] for n in names}
    for n in names:
        assert container(n).attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped", n
    t0 = time.monotonic()
    _restart_dockerd()

    wait_for("every container of %s to start again" % PROJECT,
             lambda: all(state(n)["Running"] and state(n)["StartedAt"] != before[n] for n in names), 300, interval=2)
    wait_healthy(*names)
    wait_for("the backend to serve again", backend_serves, 120)
    wait_for("every worker to register again",
             lambda: set(stack) <= {i for i, w in workers().items() if w["status"] == "available"}, 120)
    print("stack healthy again %.1f s after the engine restart began" % (time.monotonic() - t0))
    run_operations()
