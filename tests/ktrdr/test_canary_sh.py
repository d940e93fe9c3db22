"""Runs ktrdr's own scripts/test-canary.sh as ktrdr ships it (against CANARY_API_URL) and reports
its verdict next to what its operations really did: the script starts a training and a backtest,
looks at them once, cancels them and counts that as passed; here each operation it started is
followed to its end through the API. Writes the report (JSON) to the path given; exit 0 when the
script ran, whatever it judged.

    python3 tests/ktrdr/test_canary_sh.py <ktrdr>/scripts/test-canary.sh <report.json>
"""
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

script, report_path = sys.argv[1], sys.argv[2]
api = os.environ["CANARY_API_URL"].rstrip("/")
proc = subprocess.run(["bash", script], capture_output=True, text=True, timeout=600, env=dict(os.environ, TERM="dumb"))
output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
# Its summary reads "Passed: N" / "Failed: N".
counts = dict((k.lower(), int(v)) for k, v in re.findall(r"^\s*(Passed|Failed):\s*(\d+)", output, re.M))


def operation(op_id):
    with urllib.request.urlopen("%s/operations/%s" % (api, op_id), timeout=15) as r:
        return json.load(r)["data"]


ops = {}
for kind, op_id in re.findall(r"(Training|Backtest) started: (\S+)", output):
    deadline, o = time.monotonic() + 120, operation(op_id)
    while o["status"] not in ("completed", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(2)
        o = operation(op_id)
    ops[kind.lower()] = {"id": op_id, "status": o["status"], "error": o.get("error_message")}
report = {"script": script, "exit_code": proc.returncode, "verdict": counts, "operations": ops,
          "output_tail": output[-3000:]}
with open(report_path, "w") as f:
    json.dump(report, f, indent=2)
print(json.dumps({k: report[k] for k in ("exit_code", "verdict", "operations")}, indent=2))
