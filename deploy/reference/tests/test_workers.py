"""Worker lifecycle against a live backend: registration with retry, re-registration after a
backend restart, idempotence and same-URL eviction, strategy lookup order, no worker available,
and operations failing (with a reason) when their worker dies.

The tests share one stack and run in file order: each leaves it as the next one expects.
"""

import shutil
import threading
import time
from contextlib import contextmanager
from types import SimpleNamespace

import httpx
import pytest
from stack import REFERENCE_DIR, api, free_port, migrate, start_backend, start_worker, wait_for_operation, \
    wait_registered


@pytest.fixture(scope="module")
def ctx(pg, data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("workers")
    bundled = (REFERENCE_DIR / "strategies" / "v3_e2e_test.yaml").read_text()
    # STRATEGIES_DIR (the "mounted" dir) holds a 1-epoch variant of v3_e2e_test and a slow strategy;
    # the backend's ./strategies holds the bundled files plus one that exists only there.
    mounted = root / "mounted"
    mounted.mkdir()
    (mounted / "v3_e2e_test.yaml").write_text(bundled.replace("epochs: 3", "epochs: 1"))
    (mounted / "slow.yaml").write_text(bundled.replace("name: v3_e2e_test", "name: slow")
                                       .replace("epochs: 3", "epochs: 500"))
    cwd = root / "backend"
    shutil.copytree(REFERENCE_DIR / "strategies", cwd / "strategies")
    (cwd / "strategies" / "cwd_only.yaml").write_text(bundled.replace("name: v3_e2e_test", "name: cwd_only"))
    db = pg.create_database()
    migrate(db.env, "head")
    ns = SimpleNamespace(root=root, mounted=mounted, cwd=cwd, db=db, data_dir=data_dir, models=root / "models",
                         port=free_port(), workers={})
    ns.backend = start_backend(ns.db, cwd, mounted, ns.models, port=ns.port)
    ns.c = api(ns.backend.url)
    yield ns
    ns.c.close()
    for w in ns.workers.values():
        w.stop()
    ns.backend.stop()


def start_ctx_worker(ctx, kind, wait=True):
    w = start_worker(kind, ctx.db, ctx.backend.url, ctx.data_dir, ctx.models, ctx.root, wait=wait,
                     worker_id=f"{kind}-w1", KTRDR_IMAGE_REVISION="rev-test")
    ctx.workers[kind] = w
    return w


def wait_available(ctx, worker_id, timeout=30.0):
    """After restarts a worker may be busy/unavailable for a health-check round or two (more on a loaded host)."""
    deadline = time.monotonic() + timeout
    while (worker := ctx.c.get(f"/workers/{worker_id}").json()).get("status") != "available":
        assert time.monotonic() < deadline, f"{worker_id} not available: {worker}"
        time.sleep(0.2)


def start_training(ctx, name):
    wait_available(ctx, "training-w1")
    r = ctx.c.post("/trainings/start", json={"strategy_name": name})
    assert r.status_code == 200, (r.text, ctx.c.get("/workers").json())
    return r.json()


def test_no_worker_available(ctx):
    r = ctx.c.post("/trainings/start", json={"strategy_name": "v3_e2e_test"})
    assert r.status_code == 503
    detail = r.json()["detail"]
    assert set(detail) == {"error", "worker_type", "registered_workers", "backend_uptime_seconds", "hint"}
    assert detail["error"] == "No available training workers" and detail["registered_workers"] == []
    assert "ktrdr.training.training_worker" in detail["hint"]
    r = ctx.c.post("/backtests/start", json={"strategy_name": "v3_e2e_test", "start_date": "2024-01-01",
                                             "end_date": "2024-02-01"})
    assert r.status_code == 503 and r.json()["detail"]["worker_type"] == "backtesting"


def test_workers_register_once_the_backend_answers(ctx):
    ctx.backend.stop()
    training, backtesting = start_ctx_worker(ctx, "training", False), start_ctx_worker(ctx, "backtesting", False)
    training.wait_healthy(), backtesting.wait_healthy()
    time.sleep(1.5)  # they retry with backoff meanwhile
    assert httpx.get(f"{training.url}/health").json()["registered"] is False
    ctx.backend.start()
    for w in (training, backtesting):
        wait_registered(ctx.backend.url, w.worker_id, timeout=20)
    worker = ctx.c.get("/workers/training-w1").json()
    assert worker["worker_type"] == "training" and worker["endpoint_url"] == training.url
    assert worker["status"] == "available" and worker["current_operation_id"] is None
    caps = worker["capabilities"]
    assert caps["gpu"] is False and caps["torch_version"].startswith("2.") and caps["image_revision"] == "rev-test"
    log = training.log_tail(20000)
    assert f"Registration with backend {ctx.backend.url} failed" in log and "Registered with backend" in log


def test_worker_health_reports_torch_and_device(ctx):
    h = httpx.get(f"{ctx.workers['backtesting'].url}/health").json()
    assert h["healthy"] is True and h["service"] == "backtesting-worker" and h["status"] == "operational"
    assert h["worker_status"] == "idle" and h["current_operation"] is None
    assert h["worker_type"] == "backtesting" and h["cuda_available"] is False and h["device_name"] == "cpu"
    assert h["torch_version"].startswith("2.")
    root = httpx.get(f"{ctx.workers['backtesting'].url}/").json()
    assert root["worker_id"] == "backtesting-w1" and root["status"] == "running"


def test_worker_listing(ctx):
    workers = ctx.c.get("/workers").json()
    assert isinstance(workers, list) and {w["worker_id"] for w in workers} == {"training-w1", "backtesting-w1"}
    assert [w["worker_id"] for w in ctx.c.get("/workers", params={"worker_type": "training"}).json()] == ["training-w1"]
    assert len(ctx.c.get("/workers", params={"status": "available"}).json()) == 2
    assert ctx.c.get("/workers", params={"status": "bogus"}).json() == []
    bad = ctx.c.get("/workers", params={"worker_type": "bogus"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
    missing = ctx.c.get("/workers/nope")
    assert missing.status_code == 404 and missing.json() == {"detail": "Worker not found: nope"}


def test_reregistration_is_idempotent_and_same_url_evicts(ctx):
    backtesting = ctx.workers["backtesting"]
    body = {"worker_id": "backtesting-w1", "worker_type": "backtesting", "endpoint_url": backtesting.url,
            "capabilities": {"gpu": False}}
    for _attempt in range(2):
        assert ctx.c.post("/workers/register", json=body).status_code == 200
    assert len(ctx.c.get("/workers").json()) == 2
    # A new id on the same URL (a restarted worker without a stable id) evicts the old entry.
    ghost = ctx.c.post("/workers/register", json={**body, "worker_id": "ghost"}).json()
    assert ghost["worker_id"] == "ghost" and ctx.c.get("/workers/backtesting-w1").status_code == 404
    # Put the real one back (as ktrdr, it does not notice by itself: the backend health-checks the
    # ghost at its URL, and any GET /health counts as "the backend is alive").
    assert ctx.c.post("/workers/register", json=body).status_code == 200
    assert ctx.c.get("/workers/ghost").status_code == 404


@pytest.mark.parametrize("how", ["graceful", "kill"])
def test_backend_restart_workers_reregister(ctx, how):
    """Graceful: the backend tells the workers at shutdown (POST /backend-shutdown). Killed: each
    worker notices the silence (no GET /health for KTRDR_WORKER_REREGISTRATION_TIMEOUT), asks
    GET /workers/{id} and registers again on 404 — ktrdr's rule."""
    if how == "kill":
        ctx.backend.kill()
        ctx.backend.start()
    else:
        ctx.backend.restart()
    for w in ctx.workers.values():
        wait_registered(ctx.backend.url, w.worker_id, timeout=20)
    assert len(ctx.c.get("/workers").json()) == 2


@contextmanager
def polling(url):
    """GET ``url`` every 0.5 s in a thread (what a Docker HEALTHCHECK does), until the block ends."""
    stop = threading.Event()

    def poll():
        while not stop.wait(0.5):
            try:
                httpx.get(url, timeout=2.0)
            except httpx.HTTPError:
                pass

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def test_health_checks_by_anyone_hide_a_killed_backend(ctx):
    """The trap ktrdr's workers share: a caller of GET /health other than the backend (a Docker
    HEALTHCHECK on /health) keeps a worker from noticing that a killed backend came back empty.
    GET / does not count, so health checks must call that."""
    worker = ctx.workers["backtesting"]
    with polling(worker.url + "/health"):
        ctx.backend.kill()
        ctx.backend.start()
        # Watched for twice KTRDR_WORKER_REREGISTRATION_TIMEOUT (3 s) + interval (1 s): it stays unknown.
        watch_until = time.monotonic() + 8
        while time.monotonic() < watch_until:
            assert ctx.c.get(f"/workers/{worker.worker_id}").status_code == 404, "re-registered despite /health polling"
            time.sleep(0.5)
    with polling(worker.url + "/"):
        wait_registered(ctx.backend.url, worker.worker_id, timeout=20)
    for w in ctx.workers.values():
        wait_registered(ctx.backend.url, w.worker_id, timeout=20)


def test_strategy_lookup_order(ctx):
    # In both STRATEGIES_DIR and ./strategies: the mounted STRATEGIES_DIR copy (1 epoch) wins.
    start = start_training(ctx, "v3_e2e_test")
    assert f"{ctx.mounted}/v3_e2e_test.yaml" in start["message"] and "(1 epochs)" in start["message"]
    op = wait_for_operation(ctx.backend.url, start["task_id"])
    assert op["status"] == "completed", op["error_message"]
    assert op["metadata"]["parameters"]["strategy_path"] == str(ctx.mounted / "v3_e2e_test.yaml")
    assert op["result_summary"]["training_metrics"]["epochs_trained"] == 1
    # Only in ./strategies (relative to the backend's CWD): found there, after /app/strategies.
    start = start_training(ctx, "cwd_only")
    op = wait_for_operation(ctx.backend.url, start["task_id"])
    assert op["metadata"]["parameters"]["strategy_path"] == str(ctx.cwd / "strategies" / "cwd_only.yaml")
    # Nowhere: the 400 lists the search order.
    r = ctx.c.post("/trainings/start", json={"strategy_name": "nowhere"})
    assert r.json()["detail"] == (f"Strategy file not found: nowhere.yaml (searched: {ctx.mounted}, "
                                  f"/app/strategies, {ctx.cwd / 'strategies'})")
    # Like ktrdr, validate reads only <CWD>/strategies, not STRATEGIES_DIR.
    assert ctx.c.post("/strategies/validate/cwd_only").json()["valid"] is True
    assert ctx.c.post("/strategies/validate/slow").status_code == 404


def start_slow_training(ctx):
    op_id = start_training(ctx, "slow")["task_id"]
    wait_for_operation(ctx.backend.url, op_id, until=lambda d: "Epoch" in (d["progress"]["current_step"] or ""))
    return op_id


def test_worker_killed_mid_operation_fails_it(ctx):
    op_id = start_slow_training(ctx)
    ctx.workers["training"].kill()
    op = wait_for_operation(ctx.backend.url, op_id, timeout=30)
    assert op["status"] == "failed"
    assert "training-w1" in op["error_message"] and "stopped answering health checks (3" in op["error_message"]
    assert ctx.c.get("/workers/training-w1").json()["status"] == "temporarily_unavailable"
    ctx.workers["training"].start()
    wait_available(ctx, "training-w1")


def test_worker_restarted_mid_operation_fails_it(ctx):
    op_id = start_slow_training(ctx)
    # Restart the worker while the backend is down, so no health check fails in between: the
    # backend then finds a healthy worker that no longer has the job.
    ctx.backend.stop()
    ctx.workers["training"].kill()
    ctx.workers["training"].start()
    ctx.backend.start()
    op = wait_for_operation(ctx.backend.url, op_id, timeout=30)
    assert op["status"] == "failed" and "no longer knows this operation" in op["error_message"]


def test_worker_sigterm_cancels_its_operation(ctx):
    wait_registered(ctx.backend.url, "training-w1")
    op_id = start_slow_training(ctx)
    ctx.workers["training"].stop()
    op = wait_for_operation(ctx.backend.url, op_id, timeout=30)
    assert op["status"] == "cancelled" and "worker shutting down" in op["error_message"]
