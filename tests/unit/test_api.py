"""The HTTP client: URL joining, backoff, Retry-After, error messages, and real requests to a local server."""

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.ktrdr.ops.plugins.module_utils import _api
from ansible_collections.ktrdr.ops.plugins.module_utils._api import (
    KtrdrAPIError,
    KtrdrClient,
    api_base_url,
    backoff_delay,
    error_detail,
    join_url,
    parse_retry_after,
)


@pytest.mark.parametrize(
    "given",
    [
        "http://h:8000",
        "http://h:8000/",
        "http://h:8000//",
        "http://h:8000/api/v1",
        "http://h:8000/api/v1/",
        " http://h:8000/api/v1// ",
    ],
)
def test_base_url_tolerates_slashes_and_suffix(given):
    assert api_base_url(given) == "http://h:8000/api/v1"


def test_base_url_keeps_a_proxy_prefix():
    assert api_base_url("https://example.org/ktrdr/") == "https://example.org/ktrdr/api/v1"
    assert api_base_url("https://example.org/ktrdr/api/v1") == "https://example.org/ktrdr/api/v1"


@pytest.mark.parametrize("bad", ["", "localhost:8000", "ftp://h/", "http://", "http://h:8000/?x=1"])
def test_base_url_rejects_what_is_not_a_base(bad):
    with pytest.raises(ValueError) as exc:
        api_base_url(bad)
    assert "api_url" in str(exc.value)


@pytest.mark.parametrize(
    "path,expected",
    [
        ("/operations/x", "http://h/api/v1/operations/x"),
        ("operations/x", "http://h/api/v1/operations/x"),
        ("/strategies/", "http://h/api/v1/strategies/"),
        ("", "http://h/api/v1"),
    ],
)
def test_join_url(path, expected):
    assert join_url("http://h/api/v1/", path) == expected


def test_quote_segment_keeps_ids_in_one_segment():
    assert _api.quote_segment("a/b c") == "a%2Fb%20c"


def test_parse_retry_after_seconds_and_dates():
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("100000") == _api.RETRY_AFTER_CAP
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 30))
    assert parse_retry_after(date, now=now) == pytest.approx(30.0, abs=1)


class Fixed:
    """An rng whose uniform() returns the upper bound (or the lower with low=True)."""

    def __init__(self, low=False):
        self.low = low

    def uniform(self, a, b):
        return a if self.low else b


def test_backoff_grows_exponentially_up_to_the_cap():
    high = [backoff_delay(i, rng=Fixed()) for i in range(8)]
    assert high[:6] == [1, 2, 4, 8, 16, 30]
    assert high[6:] == [30, 30]
    low = [backoff_delay(i, rng=Fixed(low=True)) for i in range(3)]
    assert low == [0.5, 1, 2]


def test_backoff_jitter_stays_in_the_upper_half():
    rng = random.Random(4)
    for attempt in range(6):
        ceiling = min(30, 2 ** attempt)
        for dummy in range(50):
            d = backoff_delay(attempt, rng=rng)
            assert ceiling / 2 <= d <= ceiling


def test_retry_after_is_a_floor():
    assert backoff_delay(0, retry_after=7, rng=Fixed()) == 7
    assert backoff_delay(5, retry_after=7, rng=Fixed()) == 30


@pytest.mark.parametrize(
    "body,expected",
    [
        ({"detail": "Operation not found: op_x"}, "Operation not found: op_x"),
        ({"detail": [{"loc": ["body", "strategy_name"], "msg": "field required", "type": "missing"}]},
         "body.strategy_name: field required"),
        ({"success": False, "error": {"code": "OPERATIONS-1", "message": "boom", "details": {}}}, "boom"),
        ({"success": False, "error": {
            "code": "VALIDATION_ERROR", "message": "Request validation failed",
            "details": [{"field": "initial_capital", "message": "must be > 0", "type": "value_error"}]}},
         "Request validation failed (initial_capital: must be > 0)"),
        ({"detail": {"error": "No training workers available", "worker_type": "training", "registered_workers": 0,
                     "hint": "start a training worker"}},
         "No training workers available (hint: start a training worker; worker_type: training; registered_workers: 0)"),
        ({"detail": {"message": "Strategy invalid", "error_code": "CONFIG", "suggestion": "add nn_inputs"}},
         "Strategy invalid (suggestion: add nn_inputs)"),
        ("<html>Bad gateway</html>", "<html>Bad gateway</html>"),
        (b"plain", "plain"),
        (None, None),
    ],
)
def test_error_detail_reads_both_envelopes(body, expected):
    assert error_detail(body) == expected


# -- real requests against a local HTTP server ------------------------------------------------------


class Script:
    """Answers from a list, one per request, and records what was asked."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []


@pytest.fixture
def server():
    script = Script([])

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            script.requests.append(dict(method=self.command, path=self.path, headers=dict(self.headers), body=body))
            status, headers, payload, delay = script.answers.pop(0)
            if delay:
                time.sleep(delay)
            data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = handle_any

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    script.url = "http://127.0.0.1:%d/" % httpd.server_address[1]
    yield script
    httpd.shutdown()
    httpd.server_close()


def make_client(url, **kw):
    sleeps = []
    kw.setdefault("retries", 3)
    c = KtrdrClient(url, sleep=sleeps.append, rng=Fixed(), **kw)
    return c, sleeps


def test_get_joins_url_and_sends_token(server):
    server.answers = [(200, {}, {"status": "ok"}, 0)]
    c, sleeps = make_client(server.url + "api/v1/", api_token="s3cret")
    assert c.get("/health") == {"status": "ok"}
    req = server.requests[0]
    assert req["path"] == "/api/v1/health"
    assert req["headers"]["Authorization"] == "Bearer s3cret"
    assert sleeps == []


def test_retries_503_honouring_retry_after_then_succeeds(server):
    server.answers = [
        (503, {"Retry-After": "5"}, {"detail": "shutting down"}, 0),
        (502, {}, b"bad gateway", 0),
        (200, {}, [{"worker_id": "w1"}], 0),
    ]
    c, sleeps = make_client(server.url)
    assert c.get("/workers") == [{"worker_id": "w1"}]
    assert sleeps == [5, 2]  # Retry-After 5 beats the 1 s backoff; then the 2 s step
    assert len(c.retry_log) == 2
    assert "HTTP 503 (Retry-After 5)" in c.retry_log[0]


def test_gives_up_after_retries_with_url_status_and_detail(server):
    server.answers = [(504, {}, {"detail": "upstream timeout"}, 0)] * 4
    c, sleeps = make_client(server.url)
    with pytest.raises(KtrdrAPIError) as exc:
        c.get("/workers")
    err = exc.value
    assert err.status == 504
    assert str(err) == "GET %sapi/v1/workers returned HTTP 504: upstream timeout" % server.url
    assert len(sleeps) == 3


def test_client_errors_are_not_retried(server):
    server.answers = [(404, {}, {"detail": "Operation not found: op_nope"}, 0)]
    c, sleeps = make_client(server.url)
    with pytest.raises(KtrdrAPIError) as exc:
        c.get("/operations/op_nope")
    assert exc.value.status == 404
    assert exc.value.detail == "Operation not found: op_nope"
    assert "/api/v1/operations/op_nope returned HTTP 404" in str(exc.value)
    assert sleeps == []


def test_connection_refused_is_retried_then_named():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    c, sleeps = make_client("http://127.0.0.1:%d" % port, retries=2)
    with pytest.raises(KtrdrAPIError) as exc:
        c.get("/health")
    msg = str(exc.value)
    assert msg.startswith("GET http://127.0.0.1:%d/api/v1/health could not connect (3 attempts)" % port)
    assert "refused" in msg.lower()
    assert sleeps == [1, 2]


def test_read_timeout_retries_get_but_not_post(server):
    server.answers = [(200, {}, {}, 1.0), (200, {}, {"ok": True}, 0)]
    c, sleeps = make_client(server.url, request_timeout=0.3)
    assert c.get("/slow") == {"ok": True}
    assert sleeps == [1]
    time.sleep(0.8)  # let the slow handler finish

    server.answers = [(200, {}, {}, 1.0)]
    c, sleeps = make_client(server.url, request_timeout=0.3)
    with pytest.raises(KtrdrAPIError) as exc:
        c.post("/trainings/start", json_body={"strategy_name": "x"})
    assert "timed out after 0.3s" in str(exc.value)
    assert sleeps == []  # a POST that may have started a training is never re-sent
    time.sleep(0.8)


def test_post_sends_json(server):
    server.answers = [(200, {}, {"success": True, "task_id": "op_training_1"}, 0)]
    c, sleeps = make_client(server.url)
    assert c.post("/trainings/start", json_body={"strategy_name": "v3_e2e_test"})["task_id"] == "op_training_1"
    assert json.loads(server.requests[0]["body"]) == {"strategy_name": "v3_e2e_test"}


def test_no_retry_when_disabled(server):
    server.answers = [(503, {}, {"detail": "no worker"}, 0)]
    c, sleeps = make_client(server.url, retries=0)
    with pytest.raises(KtrdrAPIError) as exc:
        c.get("/workers")
    assert exc.value.status == 503
    assert sleeps == []


def test_tls_error_is_not_retried_and_says_what_to_do(server):
    # An http server spoken to over https fails the TLS handshake.
    c, sleeps = make_client(server.url.replace("http://", "https://"))
    with pytest.raises(KtrdrAPIError) as exc:
        c.get("/health")
    assert "TLS error" in str(exc.value) and "ca_path" in str(exc.value)
    assert sleeps == []
