"""The registry's health check against a real HTTP worker stand-in: an answer to a request sent
before the backend changed the worker's state itself (it saw the worker's operation finish) is
older news and is ignored; an answer to a later request is taken, busy or idle."""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from ktrdr.api.services.worker_registry import WorkerRegistry


@pytest.fixture
def worker():
    """A /health endpoint that answers what `report` holds; while `hold` is set it answers only
    once `release` is set (a slow answer still on its way)."""
    report = {"worker_status": "busy", "current_operation": "op_1"}
    hold, received, release = threading.Event(), threading.Event(), threading.Event()

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = json.dumps({"healthy": True, **report}).encode()
            if hold.is_set():
                received.set()
                release.wait(10)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", report, hold, received, release
    release.set()
    server.shutdown()


async def check(registry, endpoint):
    async with httpx.AsyncClient() as client:
        await registry._check(client, endpoint)
    return endpoint.status, endpoint.current_operation_id


def test_an_answer_older_than_the_finish_does_not_make_the_worker_busy_again(worker):
    url, report, hold, received, release = worker
    registry = WorkerRegistry()
    endpoint = registry.register("training-w1", "training", url, {}, None)

    async def scenario():
        assert await check(registry, endpoint) == ("busy", "op_1")
        # A health check asks while op_1 still runs; its answer ("busy with op_1") is slow ...
        hold.set()
        late = asyncio.create_task(check(registry, endpoint))
        assert await asyncio.to_thread(received.wait, 10)
        # ... the backend sees op_1 finish and frees the worker; then the late answer arrives.
        registry.mark_finished(endpoint, "op_1")
        assert (endpoint.status, endpoint.current_operation_id) == ("available", None)
        release.set()
        assert await late == ("available", None), "an answer older than the finish made the worker busy again"
        assert registry.select("training") is endpoint
        hold.clear()
        # A later answer is taken as it is: still busy with op_1 (a cancel the job has not seen
        # yet), a new operation, idle.
        assert await check(registry, endpoint) == ("busy", "op_1")
        report["current_operation"] = "op_2"
        assert await check(registry, endpoint) == ("busy", "op_2")
        report.update(worker_status="idle", current_operation=None)
        assert await check(registry, endpoint) == ("available", None)

    asyncio.run(scenario())
