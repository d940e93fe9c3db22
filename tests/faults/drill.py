"""What the fault drills share: ansible-playbook runs, the HTTP API, the Docker engine.

The suite itself is described in conftest.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import docker
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
# The "faults" environment; tests/ktrdr points the same helpers at a real-ktrdr deployment.
INVENTORY = os.environ.get("KTRDR_DRILL_INVENTORY", os.path.join(HERE, "inventory"))
PROJECT = os.environ.get("KTRDR_DRILL_PROJECT", "ktrdr-faults")
API = os.environ.get("KTRDR_DRILL_API", "http://127.0.0.1:30000/api/v1")
ROOT_DIR = "/var/lib/ktrdr/faults"
BUILD_DIR = os.path.join(ROOT, "build", "faults")
LOG_DIR = os.path.join(ROOT, "artifacts", "faults", "drills")
VENV_BIN = os.path.dirname(sys.executable)
CANARY_STRATEGY = "v3_e2e_test"

TIMINGS: dict[str, dict] = {}
_run_counter = [0]


# --- ansible-playbook -----------------------------------------------------------------------

class Run:
    """A finished ansible-playbook run: rc, output, seconds, and the PLAY RECAP per host."""

    def __init__(self, name, rc, output, seconds, log):
        self.name, self.rc, self.output, self.seconds, self.log = name, rc, output, seconds, log

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        out = {}
        for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", self.output, re.M):
            out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
        return out

    @property
    def changed_tasks(self) -> list[str]:
        """Names ("role : task") of the tasks that reported changed, in order."""
        out, task = [], None
        for line in self.output.splitlines():
            m = re.match(r"^TASK \[(.*)\] \*+$", line)
            if m:
                task = m.group(1)
            elif line.startswith("changed: [") and task and task not in out:
                out.append(task)
        return out

    def tail(self, n=6000) -> str:
        return "%s: rc=%s after %.0f s (log %s)\n...%s" % (self.name, self.rc, self.seconds, self.log, self.output[-n:])


def playbook_path(name: str) -> str:
    return name if os.path.isabs(name) else os.path.join(ROOT, "playbooks", name)


def start_playbook(name: str, *args: str, inventory: str = INVENTORY):
    """Start ansible-playbook in the background, its output logged under LOG_DIR."""
    os.makedirs(LOG_DIR, exist_ok=True)
    _run_counter[0] += 1
    log = os.path.join(LOG_DIR, "%02d-%s.log" % (_run_counter[0], os.path.basename(name).rsplit(".", 1)[0]))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, playbook_path(name), *args]
    fh = open(log, "w")
    fh.write("$ %s\n" % " ".join(cmd))
    fh.flush()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log, proc.logfile, proc.t0, proc.name = log, fh, time.monotonic(), os.path.basename(name)
    return proc


def finish_playbook(proc, timeout: float = 1800) -> Run:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        proc.wait()
    proc.logfile.close()
    with open(proc.log) as fh:
        output = fh.read()
    return Run(proc.name, proc.returncode, output, time.monotonic() - proc.t0, proc.log)


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % pid) as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        out.setdefault(ppid, []).append(int(pid))
    return out


def kill_tree(proc) -> None:
    """SIGKILL an ansible-playbook run and every process it started, as when the controller dies.
    Ansible's workers run in sessions of their own (os.setsid), so the tree is walked: each
    process is stopped first (none can start another meanwhile), then all are killed."""
    tree, todo = [], [proc.pid]
    while todo:
        pid = todo.pop()
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            continue
        tree.append(pid)
        todo.extend(_children().get(pid, []))
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def ansible(name: str, *args: str, inventory: str = INVENTORY, timeout: float = 1800) -> Run:
    return finish_playbook(start_playbook(name, *args, inventory=inventory), timeout)


def ansible_ok(name: str, *args: str, **kw) -> Run:
    run = ansible(name, *args, **kw)
    assert run.rc == 0, run.tail()
    return run


# --- HTTP API ---------------------------------------------------------------------------------

def api(method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, API + path, timeout=kw.pop("timeout", 15), **kw)


def wait_for(what: str, probe, timeout: float, interval: float = 1.0):
    """Call probe() until it returns something truthy; fail naming `what` and the last answer."""
    deadline, last = time.monotonic() + timeout, None
    while True:
        try:
            last = probe()
            if last:
                return last
        except (requests.RequestException, docker.errors.APIError, ValueError, KeyError) as exc:
            last = "%s: %s" % (type(exc).__name__, exc)
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %.0f s (last: %r)" % (what, timeout, last))
        time.sleep(interval)


def health() -> dict:
    resp = api("GET", "/health", timeout=10)
    resp.raise_for_status()
    return resp.json()


def backend_serves() -> bool:
    db = health().get("database") or {}
    return bool(db.get("connected") and db.get("up_to_date"))


def workers() -> dict[str, dict]:
    resp = api("GET", "/workers")
    resp.raise_for_status()
    return {w["worker_id"]: w for w in resp.json()}


def start_operation(kind: str, strategy: str = CANARY_STRATEGY, **body) -> str:
    path = "/trainings/start" if kind == "training" else "/backtests/start"
    body = dict({"strategy_name": strategy}, **body)
    if kind == "backtesting":
        body.setdefault("start_date", "2024-01-01")
        body.setdefault("end_date", "2024-06-30")
    resp = api("POST", path, json=body, timeout=60)
    assert resp.status_code == 200, "%s %s -> HTTP %s: %s" % (path, body, resp.status_code, resp.text[:1000])
    data = resp.json()
    return data.get("task_id") or data.get("operation_id") or data["data"]["operation_id"]


def operation(op_id: str) -> dict:
    resp = api("GET", "/operations/%s" % op_id)
    resp.raise_for_status()
    return resp.json()["data"]


def wait_operation(op_id: str, timeout: float = 600) -> dict:
    def finished():
        o = operation(op_id)
        return o if o["status"] in ("completed", "failed", "cancelled") else None

    return wait_for("operation %s to finish" % op_id, finished, timeout, interval=1.0)


def run_operations(timeout: float = 600) -> dict:
    """A training of the canary strategy and a backtest of its model, both to completion."""
    t0 = time.monotonic()
    training = wait_operation(start_operation("training"), timeout)
    assert training["status"] == "completed", "training ended %s: %s" % (training["status"], training["error_message"])
    model = (training["result_summary"] or {}).get("model_path")
    backtest = wait_operation(start_operation("backtesting", model_path=model), timeout)
    assert backtest["status"] == "completed", "backtest ended %s: %s" % (backtest["status"], backtest["error_message"])
    return {"training": training["operation_id"], "backtest": backtest["operation_id"],
            "seconds": round(time.monotonic() - t0, 1)}


# --- Docker -----------------------------------------------------------------------------------

DOCKER = docker.from_env(timeout=300)


def project_containers(all_: bool = True) -> dict[str, docker.models.containers.Container]:
    found = DOCKER.containers.list(all=all_, filters={"label": "io.ktrdr.project=%s" % PROJECT})
    return {c.name: c for c in found}


def container(name: str) -> docker.models.containers.Container:
    return DOCKER.containers.get(name)


def state(name: str) -> dict:
    return container(name).attrs["State"]


def wait_healthy(*names: str, timeout: float = 120) -> None:
    """Until each container runs and its health check passes again (after a restart it says
    "starting" until the first check)."""
    wait_for("%s to be healthy" % ", ".join(names),
             lambda: all(state(n)["Running"] and state(n).get("Health", {}).get("Status") == "healthy" for n in names),
             timeout)


def started_at(names) -> dict[str, str]:
    return {n: state(n)["StartedAt"] for n in names}


def worker_ids() -> dict[str, str]:
    """worker id -> container name, from the workers role's labels."""
    return {c.labels["io.ktrdr.worker-id"]: name for name, c in project_containers().items()
            if "io.ktrdr.worker-id" in c.labels}


def stack_healthy() -> str:
    """'' when the stack serves (containers healthy, schema at head, every worker registered), else why not."""
    cs = project_containers()
    for suffix in ("-db", "-backend"):
        if PROJECT + suffix not in cs:
            return "no container %s%s" % (PROJECT, suffix)
    bad = {n: c.attrs["State"].get("Health", {}).get("Status", c.status) for n, c in cs.items()
           if c.attrs["State"].get("Health", {}).get("Status", c.status) not in ("healthy", "running")}
    if bad:
        return "containers not healthy: %s" % bad
    ids = worker_ids()
    if len(ids) < 2:
        return "workers: %s" % ids
    try:
        if not backend_serves():
            return "backend health: %s" % health()
        listed = workers()
    except requests.RequestException as exc:
        return "backend unreachable: %s" % exc
    missing = [i for i in ids if listed.get(i, {}).get("status") not in ("available", "busy")]
    return "workers not registered: %s (listed %s)" % (missing, sorted(listed)) if missing else ""
