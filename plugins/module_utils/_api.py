# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
#
# This module util is PRIVATE to the ktrdr.ops collection. It may change or go away
# without notice; do not use it from other collections.
"""The one HTTP client of ktrdr.ops: every module that talks to the ktrdr backend goes through it.

It owns the things every caller would otherwise get subtly wrong: joining the base URL with
``/api/v1`` whatever the user typed, a timeout on every request, retries with exponential
backoff and jitter (honouring ``Retry-After``) on the failures that are worth retrying, TLS
options, an optional bearer token, and errors that name the URL, the HTTP status and the
backend's own message (``detail`` or ``error.message``, the two envelopes ktrdr uses).
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import time
from urllib.parse import quote, urlsplit

from ansible.module_utils.basic import env_fallback, missing_required_lib

try:
    import requests

    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the managed host
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = exc

API_PREFIX = "/api/v1"

# Statuses where the request did not reach a healthy backend, so sending it again is safe:
# proxies (502/504) and ktrdr's own 503 (shutting down, or no worker of the asked type yet).
RETRY_STATUSES = frozenset((502, 503, 504))
# Methods that may be re-sent after a read timeout: the server may already have acted on them.
IDEMPOTENT_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE"))

BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 120.0


def api_argument_spec():
    """The options every API module shares (documented in the ``ktrdr.ops._api`` doc fragment).

    ``api_url`` is not ``required`` here because it may come from E(KTRDR_API_URL) and because
    ``ktrdr.ops.strategy`` works without it; client_from_module() insists on it.
    """
    return dict(
        api_url=dict(type="str", fallback=(env_fallback, ["KTRDR_API_URL"])),
        api_token=dict(type="str", no_log=True, fallback=(env_fallback, ["KTRDR_API_TOKEN"])),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        request_timeout=dict(type="float", default=10.0),
        retries=dict(type="int", default=5),
    )


class KtrdrAPIError(Exception):
    """A request that failed for good. ``str()`` is a complete, user-facing message."""

    def __init__(self, message, method=None, url=None, status=None, detail=None, body=None):
        super().__init__(message)
        self.method = method
        self.url = url
        self.status = status
        self.detail = detail
        self.body = body

    def as_result(self):
        """Context for ``fail_json``: what was asked, where, and what came back."""
        return dict(method=self.method, url=self.url, http_status=self.status, detail=self.detail)


def api_base_url(api_url):
    """``http://h:8000``, ``http://h:8000/``, ``http://h:8000/api/v1`` and ``.../api/v1/`` all give
    ``http://h:8000/api/v1``. A path prefix in front (a reverse proxy's ``/ktrdr``) is kept."""
    if not api_url or not str(api_url).strip():
        raise ValueError("api_url is empty; set it (or KTRDR_API_URL) to the backend, e.g. http://localhost:8000")
    url = str(api_url).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            "api_url %r is not an http(s) URL with a host; use e.g. http://localhost:8000 or https://ktrdr.example/api/v1" % url
        )
    if parts.query or parts.fragment:
        raise ValueError("api_url %r must not carry a query string or fragment" % url)
    path = parts.path.rstrip("/")
    if path.endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)].rstrip("/")
    return "%s://%s%s%s" % (parts.scheme, parts.netloc, path, API_PREFIX)


def join_url(api_url, path):
    """The full URL of ``path`` (``/operations/x`` or ``operations/x``) under the API base.
    A trailing slash on ``path`` is kept: ktrdr's ``GET /strategies/`` needs it."""
    path = "/" + str(path).lstrip("/") if path else ""
    return api_base_url(api_url) + path


def quote_segment(value):
    """One path segment, safe to put in a URL (operation ids and strategy names come from users)."""
    return quote(str(value), safe="")


def parse_retry_after(value, now=None):
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def backoff_delay(attempt, base=BACKOFF_BASE, cap=BACKOFF_CAP, retry_after=None, rng=random):
    """Delay before retry number ``attempt`` (0 for the first retry).

    Exponential (base * 2**attempt, capped) with "equal jitter": a random point in the upper
    half, so concurrent clients spread out but nobody retries at once. A server's Retry-After
    is a floor: we never come back earlier than asked.
    """
    ceiling = min(cap, base * (2 ** max(attempt, 0)))
    delay = ceiling / 2.0 + rng.uniform(0, ceiling / 2.0)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def _short(text, limit=500):
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "..."


def error_detail(body):
    """The backend's own explanation from an error body (parsed JSON or raw text).

    ktrdr answers errors in two envelopes: FastAPI's ``{"detail": str|obj|list}`` and its own
    ``{"success": false, "error": {"code", "message", "details"}}``. Returns a one-line string.
    """
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        return _short(body) or None
    if isinstance(body, dict):
        if "detail" in body:
            return _describe(body["detail"])
        err = body.get("error")
        if isinstance(err, dict):
            msg = err.get("message") or err.get("code") or ""
            details = err.get("details")
            if details:
                msg = "%s (%s)" % (msg, _describe(details)) if msg else _describe(details)
            return msg or None
        if isinstance(err, str):
            return err
        if body.get("message"):
            return str(body["message"])
    return _short(json.dumps(body, sort_keys=True, default=str))


def _describe(detail):
    if detail is None:
        return None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        # FastAPI's 422: [{"loc": ["body", "strategy_name"], "msg": "...", "type": "..."}]
        # ktrdr's VALIDATION_ERROR details: [{"field", "message", "type"}]
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = item.get("loc") or item.get("field")
                if isinstance(loc, (list, tuple)):
                    loc = ".".join(str(p) for p in loc)
                msg = item.get("msg") or item.get("message") or json.dumps(item, sort_keys=True, default=str)
                parts.append("%s: %s" % (loc, msg) if loc else str(msg))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    if isinstance(detail, dict):
        # ktrdr's 503 "no worker" object {error, worker_type, registered_workers, hint} and its
        # ConfigurationError object {message, error_code, context, details, suggestion}.
        head = detail.get("message") or detail.get("error") or detail.get("msg")
        extras = []
        for key in ("hint", "suggestion", "worker_type", "registered_workers"):
            if detail.get(key) not in (None, "", [], {}):
                extras.append("%s: %s" % (key, detail[key] if isinstance(detail[key], str) else json.dumps(detail[key], default=str)))
        if head:
            return "%s%s" % (head, " (%s)" % "; ".join(extras) if extras else "")
        return _short(json.dumps(detail, sort_keys=True, default=str))
    return str(detail)


class KtrdrClient:
    """Requests against one ktrdr backend. Independent of AnsibleModule so it can be tested alone."""

    def __init__(
        self,
        api_url,
        api_token=None,
        validate_certs=True,
        ca_path=None,
        request_timeout=10.0,
        retries=5,
        sleep=time.sleep,
        rng=random,
        session=None,
    ):
        if not HAS_REQUESTS:  # pragma: no cover
            raise KtrdrAPIError("The Python library 'requests' is required on the managed host: %s" % REQUESTS_IMPORT_ERROR)
        self.base_url = api_base_url(api_url)
        self.request_timeout = float(request_timeout)
        self.retries = max(int(retries), 0)
        self._sleep = sleep
        self._rng = rng
        self.session = session or requests.Session()
        self.session.headers["Accept"] = "application/json"
        self.session.headers["User-Agent"] = "ktrdr.ops"
        if api_token:
            self.session.headers["Authorization"] = "Bearer %s" % api_token
        self.verify = (ca_path or True) if validate_certs else False
        # One line per retry (method, URL, why, delay): modules return it, so a slow run explains itself.
        self.retry_log = []

    def url(self, path):
        return self.base_url + ("/" + str(path).lstrip("/") if path else "")

    def request(self, method, path, json_body=None, params=None, expected=(200,), retry=True, timeout=None):
        """Send one request (with retries) and return ``(status, parsed JSON or text)``.

        Raises KtrdrAPIError when the backend cannot be reached after the retries, or answers
        with a status outside ``expected``.
        """
        method = method.upper()
        url = self.url(path)
        attempts = (self.retries if retry else 0) + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                resp = self.session.request(
                    method,
                    url,
                    json=json_body,
                    params=params,
                    timeout=self.request_timeout if timeout is None else timeout,
                    verify=self.verify,
                    allow_redirects=True,
                )
            except requests.exceptions.SSLError as exc:
                # Certificates do not fix themselves between attempts.
                raise KtrdrAPIError(
                    "TLS error talking to %s %s: %s (set ca_path to the CA bundle, or validate_certs=false for a test backend)"
                    % (method, url, exc),
                    method=method,
                    url=url,
                )
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                read_timeout = isinstance(exc, requests.exceptions.ReadTimeout)
                # A connect failure never reached the server: always safe to resend. A read timeout
                # may have started a training already, so only idempotent methods are resent.
                if last or (read_timeout and method not in IDEMPOTENT_METHODS):
                    what = "timed out after %ss" % self.request_timeout if read_timeout else "could not connect"
                    raise KtrdrAPIError(
                        "%s %s %s (%d attempt%s): %s" % (method, url, what, attempt + 1, "" if attempt == 0 else "s", _root_cause(exc)),
                        method=method,
                        url=url,
                    )
                delay = backoff_delay(attempt, rng=self._rng)
                self.retry_log.append("%s %s: %s; retry %d/%d in %.1fs" % (method, url, type(exc).__name__, attempt + 1, attempts - 1, delay))
                self._sleep(delay)
                continue

            if resp.status_code in RETRY_STATUSES and not last:
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                delay = backoff_delay(attempt, retry_after=retry_after, rng=self._rng)
                self.retry_log.append(
                    "%s %s: HTTP %d%s; retry %d/%d in %.1fs"
                    % (method, url, resp.status_code, " (Retry-After %s)" % resp.headers["Retry-After"] if retry_after is not None else "",
                       attempt + 1, attempts - 1, delay)
                )
                self._sleep(delay)
                continue

            body = _parse_body(resp)
            if resp.status_code not in expected:
                detail = error_detail(body)
                raise KtrdrAPIError(
                    "%s %s returned HTTP %d%s" % (method, url, resp.status_code, ": %s" % detail if detail else ""),
                    method=method,
                    url=url,
                    status=resp.status_code,
                    detail=detail,
                    body=body,
                )
            return resp.status_code, body
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)[1]

    def post(self, path, json_body=None, **kwargs):
        return self.request("POST", path, json_body=json_body, **kwargs)[1]

    def delete(self, path, json_body=None, **kwargs):
        return self.request("DELETE", path, json_body=json_body, **kwargs)[1]


def _parse_body(resp):
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return resp.text


def _root_cause(exc):
    """requests wraps urllib3 wraps socket errors; the innermost one says what actually happened."""
    seen = set()
    cur = exc
    while True:
        nxt = getattr(cur, "reason", None) or cur.__cause__ or cur.__context__
        if nxt is None or id(nxt) in seen or not isinstance(nxt, BaseException):
            break
        seen.add(id(nxt))
        cur = nxt
    text = str(cur) or type(cur).__name__
    return _short(text, 300)


def client_from_module(module):
    """A KtrdrClient from the shared options; fails the module cleanly on a bad api_url."""
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"), exception=str(REQUESTS_IMPORT_ERROR))
    p = module.params
    if not p.get("api_url"):
        module.fail_json(msg="api_url is required: set it (or the environment variable KTRDR_API_URL) to the ktrdr backend, e.g. http://localhost:8000")
    if p.get("request_timeout") is not None and p["request_timeout"] <= 0:
        module.fail_json(msg="request_timeout must be a positive number of seconds, got %s" % p["request_timeout"])
    if p.get("retries") is not None and p["retries"] < 0:
        module.fail_json(msg="retries must be 0 or more, got %s" % p["retries"])
    try:
        return KtrdrClient(
            p["api_url"],
            api_token=p.get("api_token"),
            validate_certs=p.get("validate_certs", True),
            ca_path=p.get("ca_path"),
            request_timeout=p.get("request_timeout") or 10.0,
            retries=p.get("retries") if p.get("retries") is not None else 5,
        )
    except ValueError as exc:
        module.fail_json(msg=str(exc))
