# Shared by the deployment benchmarks (bench/canary.sh, bench/wait.sh, bench/fanout.sh): sourced,
# not run. Each benchmark deploys its own short-lived environment and purges it on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
export ANSIBLE_CONFIG=$repo/ansible.cfg PATH=$repo/.venv/bin:$PATH
# profile_tasks (enabled in ansible.cfg) prints a timestamp per task and the slowest tasks at the end.
export PROFILE_TASKS_TASK_OUTPUT_LIMIT=${PROFILE_TASKS_TASK_OUTPUT_LIMIT:-12}
doc=$repo/docs/benchmarks.md

load() {  # the 1-minute load average and the CPU count, e.g. "1.52/2"
  echo "$(cut -d' ' -f1 /proc/loadavg)/$(nproc)"
}

# play LOG INVENTORY PLAYBOOK [args...]: ansible-playbook into $work/logs/LOG.log; sets $took
# (wall seconds, one decimal) and $changed (the sum of changed= over the recap's hosts).
play() {
  local log=$1 inv=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  if ! ansible-playbook -i "$inv" "$@" >"$work/logs/$log.log" 2>&1; then
    echo "bench: $log failed; see $work/logs/$log.log" >&2
    tail -40 "$work/logs/$log.log" >&2
    exit 1
  fi
  t1=$(date +%s.%N)
  took=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
  changed=$(sed -n '/PLAY RECAP/,$p' "$work/logs/$log.log" | grep -Eo 'changed=[0-9]+' | cut -d= -f2 | awk '{s += $1} END {print s + 0}')
}

# started_at PROJECT: "name StartedAt" of every container of the project, sorted.
started_at() {
  docker ps -aq --filter "label=io.ktrdr.project=$1" | xargs -r docker inspect -f '{{.Name}} {{.State.StartedAt}}' | sort
}

# top_tasks LOG N: the N slowest tasks of profile_tasks' recap as Markdown table rows.
top_tasks() {
  python3 - "$work/logs/$1.log" "$2" <<'EOF'
import re, sys
text = open(sys.argv[1]).read().split("TASKS RECAP", 1)[-1]
rows = re.findall(r"^(.+?) -{3,} ([0-9.]+)s$", text, re.M)
for name, sec in rows[: int(sys.argv[2])]:
    print(f"| {name.strip().replace('|', '/')} | {float(sec):.1f} s |")
EOF
}

# replace_section NAME FILE: put FILE's text between the bench:NAME markers of docs/benchmarks.md.
replace_section() {
  python3 - "$doc" "$1" "$2" <<'EOF'
import os, re, sys
path, name, section = sys.argv[1], sys.argv[2], open(sys.argv[3]).read().strip()
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
pattern = re.compile(r"<!-- bench:%s:start.*?<!-- bench:%s:end -->" % (name, name), re.S)
text = pattern.sub(lambda m: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
open(path, "w").write(text)
EOF
}
