"""The Python programs the roles run inside containers (`python -c <file>`) are files of the
collection: each is run here for real, with this machine's Python (and its CPU torch), against a
real HTTP server where it asks one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def run(rel, *args, env=None):
    code = open(os.path.join(ROOT, rel)).read()
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, **(env or {})))
    assert out.returncode == 0, out.stderr
    return out.stdout


def line(stdout, prefix):
    found = [ln[len(prefix) + 1:] for ln in stdout.splitlines() if ln.startswith(prefix + " ")]
    assert len(found) == 1, stdout
    return json.loads(found[0])


def test_base_probe_reports_python_libc_and_architecture():
    got = line(run("roles/images/files/probe_base.py"), "KTRDR_PROBE")
    assert got["python"].startswith("%d.%d." % sys.version_info[:2])
    assert got["libc"] == "glibc" and got["libc_version"].startswith("2.")
    assert got["machine"] == os.uname().machine and "tini" in got


@pytest.fixture
def worker_health():
    """A real HTTP server answering GET /health as a worker does; .answer is what it says."""
    class Handler(BaseHTTPRequestHandler):
        answer = {}

        def do_GET(self):  # noqa: N802 (http.server's name)
            body = json.dumps(Handler.answer if self.path == "/health" else {}).encode()
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Handler, server.server_address[1]
    server.shutdown()


@pytest.mark.parametrize("answer, busy, operation", [
    ({"healthy": True, "worker_status": "idle", "current_operation": None}, False, None),
    ({"healthy": True, "worker_status": "busy", "current_operation": "op_training_1"}, True, "op_training_1"),
    # ktrdr may report the operation before its status says busy: still busy
    ({"healthy": True, "worker_status": "idle", "current_operation": "op_backtest_2"}, True, "op_backtest_2"),
])
def test_busy_probe_asks_the_workers_own_health(worker_health, answer, busy, operation):
    handler, port = worker_health
    handler.answer = answer
    got = json.loads(run("roles/workers/files/busy_probe.py", env={"KTRDR_WORKER_PORT": str(port)}))
    assert got == {"busy": busy, "operation": operation, "healthy": True}


def test_gpu_smoke_reports_what_torch_sees():
    pytest.importorskip("torch")
    got = line(run("roles/gpu_host/files/gpu_smoke.py", "64"), "KTRDR_GPU_SMOKE")
    import torch
    assert got["torch"] == torch.__version__ and got["cuda_available"] == torch.cuda.is_available()
    if got["cuda_available"]:
        assert got["matmul_ok"] is True
    else:
        assert "matmul_ok" not in got
