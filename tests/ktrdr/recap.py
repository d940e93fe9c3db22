"""Reads ansible-playbook output on stdin and checks its PLAY RECAP (parsed as the fault drills parse it,
tests/faults/drill.py Run.recap): `--changed N` fails (exit 1) unless every host reports changed=N and
none failed or was unreachable."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "faults"))
from drill import Run  # noqa: E402

want = int(sys.argv[sys.argv.index("--changed") + 1])
recap = Run("site.yml", 0, sys.stdin.read(), 0, "").recap
bad = {h: r for h, r in recap.items() if r.get("changed") != want or r.get("failed") or r.get("unreachable")}
print("recap: %s" % recap)
sys.exit(1 if bad or not recap else 0)
