"""The registry's health check against a real HTTP worker stand-in: a health answer that left the
worker before its operation finished (still "busy" with it) must not make the worker busy again
once the backend has seen that operation finish; a report naming a new operation still does."""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from ktrdr.api.services.worker_registry import WorkerRegistry


@pytest.fixture
def worker():
    """A /health endpoint that answers whatever `report` holds."""
    report = {"worker_status": "busy", "current_operation": "op_1"}

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = json.dumps({"healthy": True, **report}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", report
    server.shutdown()


def check(registry, endpoint):
    async def once():
        async with httpx.AsyncClient() as client:
            await registry._check(client, endpoint)
    asyncio.run(once())
    return endpoint.status, endpoint.current_operation_id


def test_a_late_busy_report_does_not_undo_a_finished_operation(worker):
    url, report = worker
    registry = WorkerRegistry()
    endpoint = registry.register("training-w1", "training", url, {}, None)
    assert check(registry, endpoint) == ("busy", "op_1")

    registry.mark_finished(endpoint, "op_1")
    assert (endpoint.status, endpoint.current_operation_id) == ("available", None)
    assert check(registry, endpoint) == ("available", None), "a stale report made the worker busy again"
    assert registry.select("training") is endpoint

    report["current_operation"] = "op_2"
    assert check(registry, endpoint) == ("busy", "op_2")
    report.update(worker_status="idle", current_operation=None)
    assert check(registry, endpoint) == ("available", None)
