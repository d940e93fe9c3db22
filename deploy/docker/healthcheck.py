"""HEALTHCHECK of the ktrdr images: standard library only (no curl in the images).

Usage: healthcheck.py DEFAULT_PORT PATH

The port is, in this order: $KTRDR_HEALTHCHECK_PORT, the `--port N` of the command the container
runs (PID 1 is tini, whose command line carries uvicorn's), DEFAULT_PORT. So one image serves a
backtest worker on 5003 and a training worker on 5004 without a healthcheck override. A JSON
body with "healthy": false fails the check too (ktrdr answers 200 even when unhealthy). Workers are
checked on / and never on /health, which ktrdr's workers take for the backend (see the Dockerfiles).
"""

import json
import os
import sys
import urllib.request


def port_from_cmdline(default):
    try:
        with open("/proc/1/cmdline", "rb") as handle:
            args = handle.read().decode(errors="replace").split("\0")
    except OSError:
        return default
    for i, arg in enumerate(args):
        if arg == "--port" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--port="):
            return arg.split("=", 1)[1]
    return default


def main():
    default_port, path = sys.argv[1], sys.argv[2]
    port = os.environ.get("KTRDR_HEALTHCHECK_PORT") or port_from_cmdline(default_port)
    url = "http://127.0.0.1:%s%s" % (port, path)
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            body = response.read()
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        print("unhealthy: %s: %s" % (url, exc))
        return 1
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("healthy") is False:
        print("unhealthy: %s says %s" % (url, body[:200].decode(errors="replace")))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
