#!/usr/bin/env bash
# make test-ktrdr KTRDR_SRC=<ktrdr checkout>: the proofs on real ktrdr (not in CI, which has no checkout).
#   1. the canary on the checkout, with no other flag (make canary KTRDR_SRC=...), and its re-run (changed=0)
#   2. ktrdr's own scripts/test-canary.sh as ktrdr ships it: its verdict, and what its operations really did
#   3. the backend-restart drills on ktrdr (hard kill, graceful restart: every worker listed again in 60 s)
#      and a re-run of site.yml that converges
#   4. the strategy verdicts of all of ktrdr's strategies against its running backend's validate endpoint
# Each step's log and timing go to $KTRDR_TEST_OUT (artifacts/test-ktrdr); summary.json sums them up.
set -uo pipefail
: "${KTRDR_SRC:?set KTRDR_SRC to a ktrdr checkout (make test-ktrdr KTRDR_SRC=/path/to/ktrdr)}"
src=$(cd "$KTRDR_SRC" && pwd -P) || exit 2
[ -f "$src/pyproject.toml" ] && [ -d "$src/ktrdr" ] || { echo "test-ktrdr: $src is not a ktrdr checkout" >&2; exit 2; }
out=${KTRDR_TEST_OUT:-artifacts/test-ktrdr}
mkdir -p "$out"
inventory=${INVENTORY:-inventories/local}
port=$(.venv/bin/python - "$inventory" <<'P'
import sys, yaml
print(yaml.safe_load(open(sys.argv[1] + "/group_vars/all.yml")).get("ktrdr_backend_port", 8000))
P
)
api="http://127.0.0.1:$port/api/v1"
commit=$(git -C "$src" rev-parse HEAD 2>/dev/null || echo unknown)
declare -A verdict seconds

step() {  # step NAME COMMAND...: runs it, logs to $out/NAME.log, records pass/fail and seconds
  local name=$1; shift
  local t0=$SECONDS
  echo "== test-ktrdr: $name"
  "$@" > "$out/$name.log" 2>&1
  local rc=$?
  seconds[$name]=$((SECONDS - t0))
  verdict[$name]=$([ $rc -eq 0 ] && echo passed || echo failed)
  echo "   $name: ${verdict[$name]} in ${seconds[$name]} s (log: $out/$name.log)"
  return $rc
}

site() { ansible-playbook -i "$inventory" playbooks/site.yml -e "ktrdr_source_dir=$src"; }
rerun_changed_zero() { site | tee /dev/stderr | .venv/bin/python tests/ktrdr/recap.py --changed 0; }

step canary make canary "KTRDR_SRC=$src" || true
step canary_rerun rerun_changed_zero || true
step ktrdr_test_canary env "CANARY_API_URL=$api" .venv/bin/python tests/ktrdr/test_canary_sh.py "$src/scripts/test-canary.sh" "$out/ktrdr-test-canary.json" || true
step restart_drills env "KTRDR_API_URL=$api" "KTRDR_INVENTORY=$inventory" "KTRDR_SRC=$src" \
  .venv/bin/python -m pytest -q -rP -p no:cacheprovider tests/ktrdr/test_reregistration.py || true
step strategies env "KTRDR_API_URL=$api" "KTRDR_SRC=$src" \
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/ktrdr/test_strategies.py -k backend || true

python3 - "$out/summary.json" "$commit" "$src" <<P
import json, sys
steps = {$(for k in "${!verdict[@]}"; do printf '"%s": {"verdict": "%s", "seconds": %s}, ' "$k" "${verdict[$k]}" "${seconds[$k]}"; done)}
json.dump({"ktrdr_commit": sys.argv[2], "ktrdr_src": sys.argv[3], "steps": steps}, open(sys.argv[1], "w"), indent=2, sort_keys=True)
print(json.dumps(steps, sort_keys=True))
P
for k in "${!verdict[@]}"; do [ "${verdict[$k]}" = passed ] || exit 1; done
