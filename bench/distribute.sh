#!/usr/bin/env bash
# Distribution benchmark of the distribute role (no registry): the same release (ktrdr-postgres,
# ktrdr-backend, ktrdr-worker-cpu) to 1 fresh host, then to 3 fresh hosts at once; a second
# distribution (bytes sent, goal 0); a code-only change (only the new layers travel).
# The hosts are the Molecule remote scenario's Docker-in-Docker hosts (each its own engine).
# Writes the "Image distribution" section of docs/benchmarks.md (between the bench:distribute markers)
# and build/bench-distribute/results.json.
#
#   bash bench/distribute.sh
#
# Each timed run starts from fresh hosts and an empty export cache, so it includes the export on
# the build host. Everything it creates (hosts, volumes, network, the changed release's images) is
# removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export ANSIBLE_CONFIG=$repo/ansible.cfg PATH=$repo/.venv/bin:$PATH
work=${KTRDR_BENCH_DIR:-$repo/build/bench-distribute}
export KTRDR_BUILD_DIR=$work/build
inv=$repo/molecule/remote/inventory/hosts.yml
doc=$repo/docs/benchmarks.md
# The controller builds and distributes (the scenario's inventory names core as its build host).
all_images='{"ktrdr_image_keys": ["postgres", "backend", "worker_cpu"], "ktrdr_build_host": "localhost"}'

rm -rf "$work/logs" "$work/src-code"
mkdir -p "$work/logs"

destroy_hosts() { ansible-playbook -i "$inv" molecule/remote/destroy.yml >"$work/logs/destroy.log" 2>&1 || true; }
code_refs=""
cleanup() {
  destroy_hosts
  # Only the images of the code-only change (the release's own images stay).
  [[ -n $code_refs ]] && docker rmi $code_refs >/dev/null 2>&1 || true
  rm -rf "$work/src-code" "$work/build/distribute"
}
trap cleanup EXIT

play() {  # play LOG PLAYBOOK [args...]
  local log=$1; shift
  if ! ansible-playbook -i "$inv" "$@" >"$work/logs/$log.log" 2>&1; then
    echo "bench: $log failed; see $work/logs/$log.log" >&2
    tail -40 "$work/logs/$log.log" >&2
    exit 1
  fi
}

echo "bench: building the release (nothing is rebuilt when the images exist)"
play build molecule/remote/build-on-controller.yml

fresh_hosts() {
  destroy_hosts
  play create molecule/remote/create-hosts.yml
  rm -rf "$work/build/distribute"
}

declare -A took sent skipped phases
phase() {  # phase LOG TASK-NAME-PREFIX -> seconds from the profile_tasks recap (0 when it did not run)
  grep -E "^ktrdr.ops.distribute : $2" "$work/logs/$1.log" | grep -Eo '[0-9.]+s$' | tr -d s | head -1 | grep . || echo 0
}
run() {  # run LABEL LIMIT [extra args...]
  local label=$1 limit=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  play "$label" playbooks/distribute.yml -l "$limit" -e "$all_images" "$@"
  t1=$(date +%s.%N)
  took[$label]=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
  read -r sent[$label] skipped[$label] < <(python3 -c "
import json; r = json.load(open('$KTRDR_BUILD_DIR/distribute-report.json'))
print(r['bytes_sent'], sum(h['bytes_skipped'] for h in r['hosts'].values()))")
  cp "$KTRDR_BUILD_DIR/distribute-report.json" "$work/logs/$label.report.json"
  phases[$label]="$(phase "$label" 'Make the archives') s / $(phase "$label" 'Copy the archive') s / $(phase "$label" 'Load the archive') s"
  echo "bench: $label ${took[$label]} s, ${sent[$label]} bytes sent, ${skipped[$label]} bytes of layers left out"
}

fresh_hosts
run one_host ktrdr-remote-w1
fresh_hosts
run three_hosts ktrdr-remote-core,ktrdr-remote-w1,ktrdr-remote-w2
run second ktrdr-remote-core,ktrdr-remote-w1,ktrdr-remote-w2

echo "bench: a code-only change (only the source layer differs)"
# Same image names as the release: the images role reuses its builder stage, as in a real upgrade,
# so only the source layer is new.
refs() { python3 -c "import json; d = json.load(open('$KTRDR_BUILD_DIR/images.json')); print(' '.join(d[k] for k in ('backend', 'worker_cpu')))"; }
release_refs=$(refs)
cp -a deploy/reference "$work/src-code"
printf '\n# bench: a code-only change (%s)\n' "$(date -u +%FT%TZ)" >> "$work/src-code/ktrdr/__init__.py"
play build-code molecule/remote/build-on-controller.yml -e ktrdr_source_dir="$work/src-code"
code_refs=$(comm -13 <(tr ' ' '\n' <<<"$release_refs" | sort) <(refs | tr ' ' '\n' | sort) | tr '\n' ' ')
run code_change ktrdr-remote-core,ktrdr-remote-w1,ktrdr-remote-w2

ratio=$(python3 -c "print(f'{${took[three_hosts]} / ${took[one_host]}:.2f}')")
size=$(python3 -c "
import json; r = json.load(open('$work/logs/one_host.report.json')); print(f\"{r['bytes_sent'] / 1e6:.0f}\")")
mb() { python3 -c "print(f'{$1 / 1e6:.1f}')"; }
cpus=$(nproc)
cat > "$work/results.json" <<EOF
{"one_host_s": ${took[one_host]}, "three_hosts_s": ${took[three_hosts]}, "ratio": $ratio,
 "second_s": ${took[second]}, "second_bytes": ${sent[second]},
 "code_change_s": ${took[code_change]}, "code_change_bytes": ${sent[code_change]}, "code_change_bytes_left_out": ${skipped[code_change]},
 "per_host_mb": $size, "cpus": $cpus}
EOF

section=$(cat <<EOF
<!-- bench:distribute:start -->
### Image distribution (bench/distribute.sh, $(date -u +%F), $cpus CPUs shared by controller and hosts)

Release: ktrdr-postgres + ktrdr-backend + ktrdr-worker-cpu to each host, ${size} MB per host after the
base layer they share is sent once; no registry (export → copy → load → verify). Hosts are
Docker-in-Docker containers with their own engines, all on this machine.

| run | wall time | export / copy / load | sent | layers left out |
|---|---:|---:|---:|---:|
| 1 fresh host | ${took[one_host]} s | ${phases[one_host]} | $(mb "${sent[one_host]}") MB | $(mb "${skipped[one_host]}") MB |
| 3 fresh hosts at once | ${took[three_hosts]} s (**${ratio}×** one host; goal ≤ 1.5×) | ${phases[three_hosts]} | $(mb "${sent[three_hosts]}") MB | $(mb "${skipped[three_hosts]}") MB |
| second distribution, 3 hosts | ${took[second]} s | ${phases[second]} | **${sent[second]} bytes** (goal 0) | – |
| code-only change, 3 hosts | ${took[code_change]} s | ${phases[code_change]} | $(mb "${sent[code_change]}") MB | $(mb "${skipped[code_change]}") MB |

The export runs once whatever the number of hosts; copies and loads run on all hosts at once. Here
the three "hosts" and the controller share this machine's CPUs and disk, so three loads cost three
times the CPU of one: the load column is what grows. On separate machines each host unpacks on its
own CPUs and only the controller's upload is shared.
<!-- bench:distribute:end -->
EOF
)
python3 - "$doc" "$section" <<'EOF'
import re, sys
path, section = sys.argv[1], sys.argv[2]
text = open(path).read() if __import__("os").path.exists(path) else ""
pattern = re.compile(r"<!-- bench:distribute:start -->.*?<!-- bench:distribute:end -->", re.S)
text = pattern.sub(lambda m: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
open(path, "w").write(text)
EOF
echo "bench: 1 host ${took[one_host]} s, 3 hosts ${took[three_hosts]} s (${ratio}x), second ${sent[second]} bytes; see $doc"
