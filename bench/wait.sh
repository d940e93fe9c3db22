#!/usr/bin/env bash
# Operation wait latency: how long after an operation's completed_at (written into the database)
# the ktrdr.ops.operation module returns (goal <= 1 s). Trainings and backtests of the canary
# strategy, one after the other, each started and waited for by the module with its defaults, run
# as Ansible runs it (a Python process reading its arguments); then longer operations (the
# backend's dummy operation, 20 s and 45 s) the module attaches to by id.
# Writes the "Operation wait latency" section of docs/benchmarks.md (between the bench:wait markers).
#
#   bash bench/wait.sh      # KTRDR_BENCH_WAIT_ROUNDS=4 trainings + 4 backtests, KTRDR_BENCH_WAIT_DUMMIES="20 45"
#
# It deploys the environment "bench" (bench/inventory, playbooks/deploy.yml, not timed) and purges
# it on exit, like bench/canary.sh.
source "$(dirname "$0")/lib.sh"
work=${KTRDR_BENCH_DIR:-$repo/build/bench-wait}
inv=$repo/bench/inventory
rounds=${KTRDR_BENCH_WAIT_ROUNDS:-4}
dummies=${KTRDR_BENCH_WAIT_DUMMIES:-20 45}  # seconds of each long (dummy) operation

purge() {
  ansible-playbook -i "$inv" playbooks/teardown.yml -e ktrdr_purge=true >"$work/logs/teardown.log" 2>&1 || true
  rm -rf "$repo/artifacts/bench"
}
rm -rf "$work/logs"
mkdir -p "$work/logs"
trap purge EXIT

echo "bench: deploying the environment bench (not timed)"
purge
play build "$inv" playbooks/build.yml
play deploy "$inv" playbooks/deploy.yml
load_start=$(load)

python3 - "$repo" "$work" "$rounds" "$dummies" <<'EOF' | tee "$work/latency.txt"
import datetime, json, os, subprocess, sys, time
repo, work, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
dummy_seconds = [float(x) for x in sys.argv[4].split()]
module = os.path.join(repo, "plugins", "modules", "operation.py")
env = dict(os.environ, PYTHONPATH=os.path.join(repo, ".ansible", "collections"))
common = {"api_url": "http://127.0.0.1:31000", "strategy": "v3_e2e_test", "timeout": 900}

def run(args):
    path = os.path.join(work, "args.json")
    json.dump({"ANSIBLE_MODULE_ARGS": {k: v for k, v in dict(common, **args).items() if v is not None}}, open(path, "w"))
    proc = subprocess.run([sys.executable, module, path], env=env, capture_output=True, text=True)
    returned = datetime.datetime.now(datetime.timezone.utc)
    result = json.loads(proc.stdout)
    if result.get("failed") or result.get("status") != "completed":
        sys.exit("bench: operation failed: %s" % result.get("msg"))
    done = datetime.datetime.fromisoformat(result["operation"]["completed_at"].replace("Z", "+00:00"))
    return result, (returned - done).total_seconds()

rows = []
for i in range(rounds):
    tr, lat = run({"operation_type": "training"})
    rows.append(("training", tr["duration_seconds"], lat, len(tr["progress_log"])))
    bt, lat = run({"operation_type": "backtesting", "model_path": tr["summary"]["model_path"],
                   "start_date": "2024-01-01", "end_date": "2024-06-30"})
    rows.append(("backtesting", bt["duration_seconds"], lat, len(bt["progress_log"])))
    print("bench: round %d: training %.1f s (returned %.2f s after completed_at), backtest %.1f s (%.2f s)"
          % (i + 1, rows[-2][1], rows[-2][2], rows[-1][1], rows[-1][2]), file=sys.stderr)
# Longer operations, where a grown poll delay would cost most: the backend's own dummy operation
# (100 progress steps over the given seconds; the reference backend takes the length as a knob),
# started over HTTP and waited for by the module attaching to its id.
import urllib.request
for seconds in dummy_seconds:
    req = urllib.request.Request("%s/api/v1/dummy/start?duration_seconds=%g" % (common["api_url"], seconds), method="POST")
    op_id = json.load(urllib.request.urlopen(req, timeout=30))["data"]["operation_id"]
    r, lat = run({"operation_id": op_id, "strategy": None})
    rows.append(("dummy-%gs" % seconds, r["duration_seconds"], lat, len(r["progress_log"])))
    print("bench: dummy %g s operation: returned %.2f s after completed_at" % (seconds, lat), file=sys.stderr)
for r in rows:
    print("%s %.2f %.3f %d" % r)
EOF
load_end=$(load)

python3 - "$work/latency.txt" "$work/section.md" "$rounds" "$load_start" "$load_end" "$(nproc)" <<'EOF'
import datetime, statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
out, rounds, load_start, load_end, cpus = sys.argv[2:]
lat = [float(r[2]) for r in rows]
table = "\n".join("| %d | %s | %s s | **%.2f s** | %s |" % (i + 1, r[0], r[1], float(r[2]), r[3]) for i, r in enumerate(rows))
worst = max(lat)
open(out, "w").write(f"""<!-- bench:wait:start (written by bench/wait.sh; do not edit by hand) -->
## Operation wait latency

Measured {datetime.date.today().isoformat()} with `bash bench/wait.sh` on {cpus} CPUs (load {load_start} at the start,
{load_end} at the end). {rounds} trainings of `v3_e2e_test` and a backtest of each model, one after the other, on
the environment `bench` (one worker of each type), each started and waited for by `ktrdr.ops.operation` with
its default poll settings; then longer operations (the backend's dummy operation, 100 progress steps over
20 s and 45 s, started over HTTP) that the module attaches to by `operation_id`. The module runs as Ansible
runs it (`python plugins/modules/operation.py args.json`); latency = the moment the module process returned
− the operation's `completed_at` (written into the database; same machine, same clock).

| # | operation | run time | latency | progress samples |
|---|---|---:|---:|---:|
{table}

Latency: median **{statistics.median(lat):.2f} s**, worst **{worst:.2f} s** (goal ≤ 1 s: {"met" if worst <= 1 else "missed"}).
Ansible's own task overhead (result processing, callbacks) comes on top when the module runs in a playbook.
<!-- bench:wait:end -->
""")
EOF
replace_section wait "$work/section.md"
echo "bench: wait latency written to $doc"
