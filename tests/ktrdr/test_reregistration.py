"""Backend restarts on a real-ktrdr deployment (make test-ktrdr; the environment `local`, deployed by
`make canary KTRDR_SRC=...` just before). ktrdr keeps its worker registry in memory: after a
restart it knows no worker until each one notices and registers again (ktrdr/workers/base.py: 30 s
without a health check from the backend, checked every 10 s). Each drill proves every worker is
listed again within 60 s; the last proves a re-run of site.yml converges after a restart.

Environment: KTRDR_API_URL (the backend's /api/v1), KTRDR_SRC (the checkout), KTRDR_INVENTORY.
"""

import os
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
API_URL = os.environ.get("KTRDR_API_URL", "")
pytestmark = pytest.mark.skipif(not API_URL, reason="KTRDR_API_URL is not set: no real ktrdr deployment")

os.environ.setdefault("KTRDR_DRILL_INVENTORY", os.path.join(ROOT, os.environ.get("KTRDR_INVENTORY", "inventories/local")))
os.environ.setdefault("KTRDR_DRILL_PROJECT", os.environ.get("KTRDR_PROJECT", "ktrdr-local"))
os.environ.setdefault("KTRDR_DRILL_API", API_URL.rstrip("/"))
sys.path.insert(0, os.path.join(ROOT, "tests", "faults"))

import drill  # noqa: E402

BACKEND = drill.PROJECT + "-backend"


def _serves():
    # ktrdr's /health says {"status": "ok", ...} (no database block, unlike the reference service's).
    return drill.health().get("status") == "ok"


def _listed_again(expected):
    w = drill.workers()
    # Registered is what counts: a worker may be busy with an operation the canary started.
    return w if set(expected) <= {i for i, v in w.items() if v["status"] in ("available", "busy")} else None


@pytest.fixture
def registered():
    ids = drill.worker_ids()
    assert ids, "no worker containers of %s: deploy first (make canary KTRDR_SRC=...)" % drill.PROJECT
    drill.wait_for("every worker to be listed", lambda: _listed_again(ids), 120)
    return ids


@pytest.mark.parametrize("how", ["kill", "restart"])
def test_workers_listed_again_within_60_s(registered, how):
    t0 = time.monotonic()
    if how == "kill":
        drill.container(BACKEND).kill()
        drill.container(BACKEND).start()
    else:
        drill.container(BACKEND).restart(timeout=30)
    drill.wait_for("the backend to serve again", _serves, 120)
    listed = drill.wait_for("every worker to be listed again", lambda: _listed_again(registered), 60)
    print("%s: every worker listed again %.1f s after the %s: %s" % (BACKEND, time.monotonic() - t0, how, sorted(listed)))


def test_site_converges_after_a_restart(registered):
    drill.container(BACKEND).restart(timeout=30)
    run = drill.ansible_ok("site.yml", "-e", "ktrdr_source_dir=%s" % os.environ["KTRDR_SRC"])
    print("site.yml after a backend restart: %.0f s, changed: %s" % (run.seconds, run.changed_tasks))
    assert _listed_again(registered), drill.workers()
