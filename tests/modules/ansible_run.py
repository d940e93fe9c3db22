"""Run ktrdr.ops modules for real, through ansible-playbook, and hand back each task's result.

Tests write the tasks the way a playbook would (check-mode run, real run, idempotent rerun, ...),
this runs them in one play against localhost with the json callback, and returns the per-task
results in order. Nothing is mocked: the module code runs in a real Ansible process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VENV_BIN = os.path.dirname(sys.executable)


def collections_path():
    linked = os.path.join(ROOT, ".ansible", "collections")
    if os.path.isdir(os.path.join(linked, "ansible_collections", "ktrdr", "ops", "plugins")):
        return linked
    tmp = tempfile.mkdtemp(prefix="ktrdr-ops-collections-")
    os.makedirs(os.path.join(tmp, "ansible_collections", "ktrdr"))
    os.symlink(ROOT, os.path.join(tmp, "ansible_collections", "ktrdr", "ops"))
    return tmp


COLLECTIONS = collections_path()


class TaskResult(dict):
    """One task's result dict, plus .failed/.changed/.msg shortcuts for readable asserts."""

    @property
    def failed(self):
        return bool(self.get("failed"))

    @property
    def changed(self):
        return bool(self.get("changed"))

    @property
    def msg(self):
        return self.get("msg", "")


class PlaybookRun:
    def __init__(self, results, stdout, stderr, rc, seconds):
        self.results = results
        self.stdout = stdout
        self.stderr = stderr
        self.rc = rc
        self.seconds = seconds

    def __getitem__(self, i):
        return self.results[i]

    def __len__(self):
        return len(self.results)


def run_tasks(tasks, extra_env=None, timeout=900, module_defaults=None):
    """Run ``tasks`` (a list of task dicts) in one play on localhost; return a PlaybookRun.

    Every task gets ``ignore_errors: true`` (unless it sets it) so a failing step is returned, not fatal.
    """
    import time

    play = dict(
        name="ktrdr.ops module test",
        hosts="localhost",
        gather_facts=False,
        tasks=[dict({"ignore_errors": True}, **t) for t in tasks],
    )
    if module_defaults:
        play["module_defaults"] = module_defaults
    with tempfile.TemporaryDirectory(prefix="ktrdr-ops-play-") as tmp:
        path = os.path.join(tmp, "play.yml")
        with open(path, "w") as fh:
            json.dump([play], fh)  # JSON is YAML
        env = dict(os.environ)
        env.update(
            ANSIBLE_CONFIG=os.path.join(tmp, "none.cfg"),  # not the repo's: its callbacks print to stdout
            ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
            ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
            ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_LOCALHOST_WARNING="0",
            ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
            ANSIBLE_DEPRECATION_WARNINGS="0",
            PATH=VENV_BIN + os.pathsep + env.get("PATH", ""),
        )
        env.pop("ANSIBLE_CALLBACKS_ENABLED", None)  # profile_tasks and friends would print into the JSON
        env.update(extra_env or {})
        cmd = [
            os.path.join(VENV_BIN, "ansible-playbook"),
            "-i", "localhost,",
            "-c", "local",
            "-e", "ansible_python_interpreter=%s" % sys.executable,
            path,
        ]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=tmp, check=False)
        seconds = time.monotonic() - t0
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible-playbook did not print JSON (rc=%d):\nSTDOUT:\n%s\nSTDERR:\n%s"
                             % (proc.returncode, proc.stdout[-5000:], proc.stderr[-5000:]))
    results = []
    for play_doc in doc.get("plays", []):
        for task in play_doc.get("tasks", []):
            res = task.get("hosts", {}).get("localhost")
            if res is not None:
                results.append(TaskResult(res))
    if len(results) != len(tasks):
        raise AssertionError("expected %d task results, got %d (rc=%d):\n%s\n%s"
                             % (len(tasks), len(results), proc.returncode, proc.stdout[-5000:], proc.stderr[-3000:]))
    if os.environ.get("KTRDR_OPS_TEST_ECHO"):  # show each task's msg (pytest -s) when writing docs or debugging
        for res in results:
            print("[%s] changed=%s failed=%s msg=%s" % (res.get("action"), res.changed, res.failed, res.msg))
    return PlaybookRun(results, proc.stdout, proc.stderr, proc.returncode, seconds)


def module_task(module, args, check=False, diff=True, **keywords):
    task = {"ktrdr.ops.%s" % module: args, "check_mode": check, "diff": diff}
    task.update(keywords)
    return task
