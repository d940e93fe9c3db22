# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
#
# This doc fragment is PRIVATE to the ktrdr.ops collection; do not use it from other collections.

from __future__ import annotations


class ModuleDocFragment:
    # The connection options of every module that talks to the ktrdr backend
    # (plugins/module_utils/_api.py, api_argument_spec()).
    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - Base URL of the ktrdr backend, with or without the C(/api/v1) suffix and trailing slashes
        (V(http://backend:8000), V(http://backend:8000/api/v1/) and so on all work).
      - If not set, the environment variable E(KTRDR_API_URL) is used.
    type: str
  api_token:
    description:
      - "Bearer token sent as C(Authorization: Bearer <token>)."
      - Upstream ktrdr does not check tokens; set it when a reverse proxy in front of the backend does.
      - If not set, the environment variable E(KTRDR_API_TOKEN) is used.
    type: str
  validate_certs:
    description:
      - Verify the backend's TLS certificate for C(https) URLs.
      - Only set V(false) for a throwaway test backend.
    type: bool
    default: true
  ca_path:
    description:
      - A PEM file (or OpenSSL hashed directory) with the CA certificates that sign the backend's certificate.
    type: path
  request_timeout:
    description:
      - Timeout in seconds for each single HTTP request (connect and read).
      - This is separate from the overall deadline of a module that waits (its C(timeout) option).
    type: float
    default: 10
  retries:
    description:
      - How many times a request is sent again when the backend cannot be reached or answers
        502, 503 or 504, with exponential backoff and jitter between attempts (1 s, 2 s, 4 s, ... up to 30 s).
      - A C(Retry-After) header from the backend is honoured as the least time to wait.
      - A POST that timed out while reading the answer is never sent again, because the backend may already have acted on it.
      - V(0) disables retries.
    type: int
    default: 5
requirements:
  - requests (Python library on the managed host)
notes:
  - Errors name the URL, the HTTP status and the backend's own message (C(detail) or C(error.message)).
"""
