# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""Run inside a worker container (python -c): does the worker run an operation? It asks its own
GET /health (ktrdr contract 2.1: worker_status, current_operation) and prints one JSON line
{busy, operation, healthy} that the workers role's drain step reads."""
import json
import os
import urllib.request

port = os.environ.get("KTRDR_WORKER_PORT", "5003")
r = json.load(urllib.request.urlopen("http://127.0.0.1:%s/health" % port, timeout=5))
print(json.dumps({"busy": r.get("worker_status") == "busy" or bool(r.get("current_operation")),
                  "operation": r.get("current_operation"), "healthy": bool(r.get("healthy"))}))
