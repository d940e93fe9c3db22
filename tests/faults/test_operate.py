"""Operating the live "faults" environment (runs after test_drills.py, on the same stack): the
deploy lock under two concurrent runs and after a killed one, playbooks/status.yml against what
the engine says, and the version-skew guard with a worker of another release."""

from __future__ import annotations

import json
import os

from drill import (
    CANARY_STRATEGY, DOCKER, HERE, PROJECT, ROOT, ROOT_DIR, ansible, ansible_ok, finish_playbook, kill_tree, project_containers,
    start_playbook, wait_for, worker_ids,
)

LOCK = os.path.join(ROOT_DIR, "deploy.lock")
STATUS = os.path.join(ROOT, "artifacts", "faults", "status.json")
# A run that holds the lock long enough to be watched: a converged environment's run skips the steps.
FULL_RUN = ("-e", "ktrdr_skip_when_converged=false")


def lock() -> dict | None:
    try:
        with open(LOCK) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None


def audit() -> list[dict]:
    with open(os.path.join(ROOT_DIR, "audit.jsonl")) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def held_by(proc):
    return lambda: (lock() or {}).get("pid") == proc.pid


def test_two_concurrent_site_runs_serialize(stack):
    """A second site.yml started while the first holds the lock waits, saying who holds it, and
    runs once the first has given it back: both pass, and the audit log has the first's line
    before the second's."""
    first = start_playbook("site.yml", *FULL_RUN)
    try:
        wait_for("the first run to take the deploy lock", held_by(first), 120)
        second = start_playbook("site.yml")
        wait_for("the second run to wait for it", lambda: "waiting up to" in open(second.log).read(), 120)
    except BaseException:
        kill_tree(first)
        raise
    a, b = finish_playbook(first), finish_playbook(second)
    assert a.rc == 0, a.tail()
    assert b.rc == 0, b.tail()
    assert "held by site.yml" in b.output and "(pid %d)" % first.pid in b.output, b.tail()
    runs = [e["run"].split(":")[1] for e in audit()[-2:]]
    assert runs == [str(first.pid), str(second.pid)], audit()[-2:]
    assert lock() is None, "a run left the lock: %s" % lock()


def test_a_killed_run_leaves_a_stale_lock_broken_by_one_command(stack):
    """site.yml killed (SIGKILL, as a crashed controller) while it holds the lock: the next run
    stops at once, saying the lock is stale and how to break it; lock.yml -e ktrdr_lock=break
    says whose lock it broke and records it; then site.yml runs."""
    victim = start_playbook("site.yml", *FULL_RUN)
    wait_for("the run to take the deploy lock", held_by(victim), 120)
    kill_tree(victim)
    finish_playbook(victim)
    assert lock()["pid"] == victim.pid

    blocked = ansible("site.yml")
    assert blocked.rc != 0, blocked.tail()
    assert "is stale" in blocked.output and "ktrdr_lock=break" in blocked.output, blocked.tail()
    assert "TASK [ktrdr.ops.images" not in blocked.output, "the run went on past a stale lock"

    shown = ansible_ok("lock.yml")
    assert "[stale]" in shown.output, shown.tail()
    broken = ansible_ok("lock.yml", "-e", "ktrdr_lock=break")
    assert "Deploy lock broken, was held by site.yml" in broken.output and "(pid %d)" % victim.pid in broken.output, broken.tail()
    assert lock() is None
    assert audit()[-1]["result"] == "lock-broken" and str(victim.pid) in audit()[-1]["message"]
    ansible_ok("site.yml")


def test_another_holders_lock_is_waited_for_and_not_released(stack):
    """A lock held from another controller (bob@laptop): ktrdr_lock_wait=0 fails at once naming
    it; release is refused (it is not ours); a maintenance lock of our own blocks runs until
    released."""
    os.makedirs(ROOT_DIR, exist_ok=True)
    with open(LOCK, "w") as fh:
        json.dump({"format": 1, "kind": "run", "run": "laptop:4242:1", "holder": "bob@laptop", "user": "bob",
                   "controller": "laptop", "pid": 4242, "play": "upgrade.yml", "since": "2026-12-02T10:00:00Z",
                   "message": "", "depth": 1}, fh)
    try:
        run = ansible("site.yml", "-e", "ktrdr_lock_wait=0")
        assert run.rc != 0 and "bob@laptop" in run.output and "held by upgrade.yml" in run.output, run.tail()
        refused = ansible("lock.yml", "-e", "ktrdr_lock=release")
        assert refused.rc != 0 and "not by this run" in refused.output, refused.tail()
        assert lock()["holder"] == "bob@laptop"
    finally:
        ansible_ok("lock.yml", "-e", "ktrdr_lock=break")
    ansible_ok("lock.yml", "-e", "ktrdr_lock=acquire", "-e", json.dumps({"ktrdr_lock_message": "drill maintenance"}))
    try:
        run = ansible("deploy.yml", "-e", "ktrdr_lock_wait=0")
        assert run.rc != 0 and "for maintenance" in run.output and "drill maintenance" in run.output, run.tail()
    finally:
        ansible_ok("lock.yml", "-e", "ktrdr_lock=release")
    assert lock() is None


def test_status_matches_the_containers(stack):
    """playbooks/status.yml: per host the containers (image, content hash, release), the
    releases, the schema revision, the registered workers, the lock, the audit and the canary
    verdict, printed and written as JSON, equal to what the engine and the files say; --check
    changes nothing."""
    run = ansible_ok("status.yml")
    with open(STATUS) as fh:
        status = json.load(fh)["localhost"]
    engine = {c.name: c for c in project_containers().values()}
    assert {c["name"] for c in status["containers"]} == set(engine), status["containers"]
    for c in status["containers"]:
        e = engine[c["name"]]
        assert c["image"] == e.attrs["Config"]["Image"] and c["state"] == e.attrs["State"]["Status"], c
        assert c["content_hash"] == (DOCKER.images.get(e.attrs["Image"]).labels or {}).get("io.ktrdr.content-hash", ""), c
        assert c["release"] == (e.labels.get("io.ktrdr.release") or ""), c
    with open(os.path.join(ROOT_DIR, "releases.json")) as fh:
        manifest = json.load(fh)
    assert status["releases"]["current"] == manifest["current"] and status["release"] == manifest["current"]
    assert status["releases"]["previous"] == manifest["previous"]
    rc, out = engine[PROJECT + "-db"].exec_run(["psql", "-U", "ktrdr", "-d", "ktrdr", "-tAc", "SELECT version_num FROM alembic_version"])
    assert status["schema_revision"] == out.decode().strip()
    assert {w["worker_id"] for w in status["workers"]} >= set(worker_ids())
    assert status["skew"] == [] and status["lock"] is None
    assert status["audit"] == audit()[-10:]
    assert status["canary"]["verdict"] == "passed"
    assert "release %s" % manifest["current"] in run.output
    check = ansible_ok("status.yml", "--check")
    assert check.recap["localhost"]["changed"] == 0, check.tail()


def test_skew_guard_names_a_worker_of_another_release(stack):
    """The workers redeployed alone with another worker image (a release the backend is not
    on): status.yml names them as skew, with host and worker id, and the skew guard of the
    release record fails; site.yml brings them back to the backend's release."""
    worker = project_containers()[PROJECT + "-backtest-1"]
    other = "ktrdr-worker-cpu:skewdrill"
    DOCKER.images.get(worker.attrs["Config"]["Image"]).tag(other)
    try:
        with open(os.path.join(ROOT, "build", "faults", "images.json")) as fh:
            record = json.load(fh)
        images = dict(record.get("images", record), worker_cpu=other)
        ansible_ok(os.path.join(HERE, "playbooks", "workers.yml"), "-e", json.dumps({"ktrdr_images": images}))
        run = ansible_ok("status.yml")
        ids = {n: i for i, n in worker_ids().items()}
        for name in (PROJECT + "-backtest-1", PROJECT + "-training-1"):
            assert "SKEW: worker %s (%s)" % (ids[name], name) in run.output, run.tail()
        with open(STATUS) as fh:
            skew = json.load(fh)["localhost"]["skew"]
        assert {k["container"] for k in skew} == {PROJECT + "-backtest-1", PROJECT + "-training-1"}, skew
        guard = ansible("record.yml")
        assert guard.rc != 0 and "Version skew on localhost" in guard.output, guard.tail()
        ansible_ok("site.yml")
        ansible_ok("status.yml")
        with open(STATUS) as fh:
            assert json.load(fh)["localhost"]["skew"] == []
    finally:
        in_use = {c.attrs["Config"]["Image"] for c in DOCKER.containers.list(all=True)}
        if other not in in_use:
            DOCKER.images.remove(other)


def test_a_converged_environment_is_only_asked_and_drift_runs_every_step(stack):
    """site.yml on an environment that no run has changed since the last proven one compares each
    host and stops there: changed=0, no deploying or validating role runs. A strategy file edited
    on the host is a difference, named by the run that then restores it; the next run is a no-op
    again. -e ktrdr_skip_when_converged=false runs every step all the same."""
    ansible_ok("site.yml")  # proves and records, whatever the drills before left
    quiet = ansible_ok("site.yml")
    assert "Nothing to do: every host is as the run of" in quiet.output, quiet.tail()
    assert quiet.recap["localhost"]["changed"] == 0, quiet.tail()
    ran = [t for t in ("TASK [ktrdr.ops.images", "TASK [ktrdr.ops.backend", "TASK [ktrdr.ops.workers", "TASK [ktrdr.ops.canary")
           if t in quiet.output]
    assert not ran, "the converged run still ran %s" % ran

    path = os.path.join(ROOT_DIR, "strategies", CANARY_STRATEGY + ".yaml")
    with open(path) as fh:
        original = fh.read()
    with open(path, "a") as fh:
        fh.write("# edited on the host by hand\n")
    drifted = ansible_ok("site.yml")
    assert "strategy files: %s.yaml changed" % CANARY_STRATEGY in drifted.output, drifted.tail()
    assert "ktrdr.ops.strategies : " in " ".join(drifted.changed_tasks), drifted.changed_tasks
    with open(path) as fh:
        assert fh.read() == original, "the edited strategy file was not restored"
    assert "Nothing to do" in ansible_ok("site.yml").output

    full = ansible_ok("site.yml", *FULL_RUN)
    assert "TASK [ktrdr.ops.canary" in full.output and full.recap["localhost"]["changed"] == 0, full.tail()
