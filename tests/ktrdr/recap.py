"""Reads ansible-playbook output on stdin and checks its PLAY RECAP: `--changed N` fails (exit 1) unless
every host reports changed=N and none failed or was unreachable."""
import re
import sys

want = int(sys.argv[sys.argv.index("--changed") + 1])
recap = {m.group(1): dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2)))
         for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", sys.stdin.read(), re.M)}
bad = {h: r for h, r in recap.items() if r.get("changed") != want or r.get("failed") or r.get("unreachable")}
print("recap: %s" % recap)
sys.exit(1 if bad or not recap else 0)
