"""The environment "badinput" (tests/reliability/inventory) and the helpers of the bad-input matrix.

One deployment is shared by every case (session fixture ``stack``): site.yml converges it once, at -vvv so
the security tests can read that output, and teardown.yml purges it at the end. Each case then runs the real
playbooks, roles or modules with one bad input and checks two things: the failure (or warning) names the
fix, and the deployment is as it was (containers' ids and start times, the schema revision, rows, files).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
VENV_BIN = os.path.dirname(sys.executable)
INVENTORY = os.path.join(HERE, "inventory")
ROLE_PLAYBOOK = os.path.join(HERE, "playbooks", "role.yml")
VARS = yaml.safe_load(open(os.path.join(INVENTORY, "group_vars", "all.yml")))
PROJECT = "ktrdr-" + VARS["ktrdr_env_name"]
API_URL = "http://127.0.0.1:%d" % VARS["ktrdr_backend_port"]
DB_CONTAINER = PROJECT + "-db"
BACKEND_CONTAINER = PROJECT + "-backend"
ROOT_DIR = "/var/lib/ktrdr/" + VARS["ktrdr_env_name"]
STRATEGIES_DIR = ROOT_DIR + "/strategies"
IMAGES_JSON = os.path.join(ROOT, "build", "images.json")
TEST_LABEL = "io.ktrdr.test=true"
# Set by the stack fixture: diagnostics of failed runs land here, not in the repository's artifacts/.
ARTIFACTS = {"dir": None}


def docker(*args, check=True, **kw):
    return subprocess.run(["docker"] + list(args), check=check, capture_output=True, text=True, **kw)


class Run:
    """One ansible-playbook run: rc, output, and (with the json callback) every task result."""

    def __init__(self, rc, stdout, stderr, seconds, doc):
        self.rc, self.stdout, self.stderr, self.seconds, self.doc = rc, stdout, stderr, seconds, doc

    @property
    def results(self):
        """(task name, host, result) of every task, in order; loop items are the result's ``results``."""
        out = []
        for play in (self.doc or {}).get("plays", []):
            for task in play.get("tasks", []):
                for host, res in task.get("hosts", {}).items():
                    out.append((task["task"]["name"], host, res))
        return out

    @property
    def failures(self):
        """(task name, msg) of every failed task, and of every failed loop item."""
        out = []
        for name, dummy, res in self.results:
            if not res.get("failed"):
                continue
            items = [r for r in res.get("results", []) if r.get("failed")]
            for r in items or [res]:
                out.append((name, r.get("msg", "")))
        return out

    @property
    def msg(self):
        """Every failure message, one per line: what the operator reads."""
        return "\n".join(m for dummy, m in self.failures)

    @property
    def warnings(self):
        out = []
        for dummy, dummy2, res in self.results:
            out += res.get("warnings", [])
            for r in res.get("results", []):
                out += r.get("warnings", [])
        return out

    def explain(self):
        return "rc=%s after %.0fs\nfailures: %s\nstderr: %s\nstdout tail: %s" % (
            self.rc, self.seconds, self.failures, self.stderr[-3000:], self.stdout[-3000:])


def _json_cfg():
    """The repository's ansible.cfg without its extra callbacks (profile_tasks would print into the JSON)."""
    import configparser

    path = os.path.join(tempfile.gettempdir(), "ktrdr-reliability-%d.cfg" % os.getpid())
    if not os.path.exists(path):
        cfg = configparser.ConfigParser(interpolation=None)
        cfg.read(os.path.join(ROOT, "ansible.cfg"))
        cfg.remove_option("defaults", "callbacks_enabled")
        for key in ("collections_path", "roles_path"):
            cfg.set("defaults", key, os.path.join(ROOT, cfg.get("defaults", key)))
        cfg.set("defaults", "inventory", INVENTORY)
        with open(path, "w") as fh:
            cfg.write(fh)
    return path


def playbook(path, extra=None, inventory=INVENTORY, verbosity=0, structured=True, args=(), timeout=900):
    """Run ``path`` (playbooks/<name> or a path) against ``inventory`` with extra vars; return a Run."""
    if not os.path.isabs(path):
        path = os.path.join(ROOT, "playbooks", path)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    if structured:
        env.update(ANSIBLE_CONFIG=_json_cfg(), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    all_extra = dict(extra or {})
    if ARTIFACTS["dir"]:
        all_extra.setdefault("ktrdr_artifacts_dir", ARTIFACTS["dir"])
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="ktrdr-reliability-", delete=False) as fh:
        json.dump(all_extra, fh)  # JSON keeps the types (an int stays an int, "" stays "")
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, "-e", "@" + fh.name, path] + list(args)
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        os.unlink(fh.name)
    doc = None
    if structured:
        try:
            doc = json.loads(proc.stdout[proc.stdout.index("{"):])
        except ValueError:
            raise AssertionError("no JSON from %s (rc=%d):\n%s\n%s" % (path, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    run = Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0, doc)
    if os.environ.get("KTRDR_OPS_TEST_ECHO") and structured:  # the messages, for docs/reliability.md (pytest -s)
        print("\n[%s rc=%d %.0fs] %s\nwarnings: %s" % (os.path.basename(path), run.rc, run.seconds, run.msg, run.warnings))
    return run


def role(name, hosts="ktrdr_backend", tasks_from="main", extra=None, **kw):
    """Run one role of the collection (tests/reliability/playbooks/role.yml) on a group of the inventory."""
    return playbook(ROLE_PLAYBOOK, dict(reliability_role=name, reliability_hosts=hosts, reliability_tasks_from=tasks_from,
                                        **(extra or {})), **kw)


def inventory_variant(tmp_path, mutate=None, group_vars=None):
    """A copy of the badinput inventory with hosts.yml changed by ``mutate(dict)`` and group_vars updated."""
    hosts = yaml.safe_load(open(os.path.join(INVENTORY, "hosts.yml")))
    if mutate:
        mutate(hosts)
    d = tmp_path / "inventory"
    (d / "group_vars").mkdir(parents=True)
    (d / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (d / "group_vars" / "all.yml").write_text(yaml.safe_dump(dict(VARS, **(group_vars or {}))))
    return str(d)


# -- state ---------------------------------------------------------------------------------------------


def psql(sql):
    proc = docker("exec", DB_CONTAINER, "psql", "-U", "ktrdr", "-d", "ktrdr", "-v", "ON_ERROR_STOP=1", "-tAc", sql, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def containers():
    """name -> (id, StartedAt, running, image) of the environment's containers."""
    names = docker("ps", "-a", "--filter", "label=io.ktrdr.project=" + PROJECT, "--format", "{{.Names}}").stdout.split()
    out = {}
    for doc in json.loads(docker("inspect", *names).stdout) if names else []:
        out[doc["Name"].lstrip("/")] = (doc["Id"], doc["State"]["StartedAt"], doc["State"]["Running"], doc["Config"]["Image"])
    return out


def tree(path):
    """relative path -> sha256 of every file under ``path`` (empty when it does not exist)."""
    out = {}
    for base, dummy, files in os.walk(path):
        for f in files:
            p = os.path.join(base, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def ktrdr_images():
    return sorted(docker("images", "--filter", "reference=ktrdr-*", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.split("\n"))


def snapshot(images=False):
    """What a bad input must leave as it was. ``images``: the build's record and the ktrdr images too (other
    processes on this machine may build while a case runs, so only the build and distribution cases look)."""
    out = dict(
        containers=containers(),
        revision=psql("SELECT string_agg(version_num, ',') FROM alembic_version"),
        tables=psql("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'"),
        operations=psql("SELECT count(*) FROM operations"),
        strategies=tree(STRATEGIES_DIR),
        manifest=tree(ROOT_DIR).get("releases.json"),
    )
    if images:
        out.update(images_json=open(IMAGES_JSON).read() if os.path.exists(IMAGES_JSON) else None, images=ktrdr_images())
    return out


def assert_unchanged(before, after=None, ignore=()):
    after = after or snapshot(images="images" in before)
    for key in before:
        if key not in ignore:
            assert after[key] == before[key], "%s changed:\nbefore: %s\nafter:  %s" % (key, before[key], after[key])


def wait_workers_available(timeout=90):
    """Until the backend lists every worker as available (after an operation ended or was cancelled)."""
    import httpx

    deadline = time.monotonic() + timeout
    workers = []
    while time.monotonic() < deadline:
        workers = httpx.get(API_URL + "/api/v1/workers", timeout=5).json()
        if len(workers) >= 2 and all(w["status"] == "available" for w in workers):
            return workers
        time.sleep(1)
    raise AssertionError("workers not available after %ss: %s" % (timeout, workers))


class Stack:
    def __init__(self, converge, log_path, images):
        self.converge, self.log_path, self.images = converge, log_path, images
        self.api_url = API_URL
        self.project, self.db_container, self.backend_container = PROJECT, DB_CONTAINER, BACKEND_CONTAINER
        self.network = PROJECT
        self.secrets = {k: VARS[k] for k in ("ktrdr_db_password", "ktrdr_jwt_secret")}


def _teardown():
    return playbook("teardown.yml", {"ktrdr_purge": True})


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The badinput environment, converged once by site.yml at -vvv; purged at the end of the session."""
    ARTIFACTS["dir"] = str(tmp_path_factory.mktemp("artifacts"))
    if containers():  # left over from an interrupted session
        _teardown()
    log_path = os.path.join(ARTIFACTS["dir"], "converge-vvv.log")
    try:
        # The canary's training and backtest are left out: the matrix runs operations of its own.
        run = playbook("site.yml", {"canary_run_operations": False}, verbosity=3, structured=False, timeout=2400)
        with open(log_path, "w") as fh:
            fh.write(run.stdout + "\n" + run.stderr)
        assert run.rc == 0, "site.yml did not converge the badinput environment:\n%s" % run.explain()
        images = json.load(open(IMAGES_JSON))
        yield Stack(run, log_path, images.get("images", images))
    finally:
        _teardown()
        docker("image", "prune", "-f", "--filter", "label=" + TEST_LABEL, check=False)


@pytest.fixture(scope="session")
def wrong_password_deploy(stack):
    """deploy.yml with a DB password the running database does not accept: the matrix checks its message, the
    security tests its output and the diagnostics it collected."""
    before = snapshot()
    run = playbook("deploy.yml", {"ktrdr_db_password": "another-password-Wq8Lm2"})
    return run, before
