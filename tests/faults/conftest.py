"""Fault drills (make test-faults): break a real deployment on purpose and check it recovers.

Everything is real: the playbooks run as ansible-playbook subprocesses against this machine's
Docker engine (environment "faults", tests/faults/inventory: ktrdr-faults-*, backend 30000,
workers 30003/30004, PostgreSQL 30432); operations run through the backend's HTTP API; the
assertions read container state from the engine and operation state from the API.

The session starts from nothing (teardown with ktrdr_purge=true), builds the images (nothing when
they exist), and purges the environment again at the end. Drills run in file order; each one that
needs a working stack asks for the `stack` fixture, which re-runs site.yml only when the stack is
not healthy (a drill that failed half-way does not take the next ones with it).
Every ansible-playbook run is logged under artifacts/faults/drills/; the time of each drill is
printed at the end and written to artifacts/faults/drills/timings.json.
The helpers the drills use live in drill.py.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from drill import LOG_DIR, TIMINGS, ansible, ansible_ok, stack_healthy, wait_for, worker_ids


# --- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="session", autouse=True)
def environment():
    """A clean environment for the session, images built; purged again at the end."""
    shutil.rmtree(LOG_DIR, ignore_errors=True)
    t0 = time.monotonic()
    ansible_ok("teardown.yml", "-e", "ktrdr_purge=true")
    ansible_ok("build.yml")
    TIMINGS["(session: purge + build)"] = {"seconds": round(time.monotonic() - t0, 1), "outcome": "passed"}
    yield
    t0 = time.monotonic()
    run = ansible("teardown.yml", "-e", "ktrdr_purge=true")
    TIMINGS["(session: teardown, purge)"] = {"seconds": round(time.monotonic() - t0, 1),
                                             "outcome": "passed" if run.rc == 0 else "failed"}


@pytest.fixture
def stack():
    """A deployed stack that serves; site.yml runs first only when it does not."""
    why = stack_healthy()
    if why:
        print("stack not healthy (%s): running site.yml" % why)
        ansible_ok("site.yml")
        wait_for("the stack to be healthy after site.yml", lambda: not stack_healthy(), 120)
    return worker_ids()


@pytest.fixture(autouse=True)
def _timed(request):
    t0 = time.monotonic()
    yield
    rep = getattr(request.node, "rep_call", None)
    TIMINGS[request.node.name] = {"seconds": round(time.monotonic() - t0, 1),
                                  "outcome": rep.outcome if rep else "error"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" or (rep.when == "setup" and rep.outcome != "passed"):
        item.rep_call = rep


def pytest_terminal_summary(terminalreporter):
    if not TIMINGS:
        return
    os.makedirs(LOG_DIR, exist_ok=True)
    with open(os.path.join(LOG_DIR, "timings.json"), "w") as fh:
        json.dump(TIMINGS, fh, indent=2)
    terminalreporter.write_sep("-", "fault drills (seconds, fixtures included)")
    for name, t in TIMINGS.items():
        terminalreporter.write_line("  %-50s %7.1f  %s" % (name, t["seconds"], t["outcome"]))
