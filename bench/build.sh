#!/usr/bin/env bash
# Build benchmarks of the images role: cold build, no-op rebuild, code-only rebuild, image sizes.
# Writes the "Image builds" section of docs/benchmarks.md (between the bench:build markers).
#
#   bash bench/build.sh                      # the reference service (deploy/reference)
#   KTRDR_SRC=/path/to/ktrdr bash bench/build.sh
#   KTRDR_BUILD_GPU=true bash bench/build.sh # also ktrdr-worker-gpu (downloads several GB once)
#
# It builds under other names (bench-ktrdr-*) and in its own build directory, with its own
# debootstrap base, wheelhouse and pip cache, so "cold" is really cold (no layer, wheel or HTTP
# cache to hit) and the images the project uses are left alone. Everything it creates is removed at
# the end; only the logs (build/bench/logs) and docs/benchmarks.md remain.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export ANSIBLE_CONFIG=$repo/ansible.cfg PATH=$repo/.venv/bin:$PATH
work=${KTRDR_BENCH_DIR:-$repo/build/bench}
src=${KTRDR_SRC:-$repo/deploy/reference}
doc=$repo/docs/benchmarks.md
prefix=bench-

rm -rf "$work/build" "$work/src-"* "$work/logs"
mkdir -p "$work/logs"
cat > "$work/vars.json" <<EOF
{"images_names": {"backend": "${prefix}ktrdr-backend", "worker_cpu": "${prefix}ktrdr-worker-cpu",
                  "worker_gpu": "${prefix}ktrdr-worker-gpu", "postgres": "${prefix}ktrdr-postgres"},
 "images_base_name": "${prefix}ktrdr-base"}
EOF

remove_bench_images() {
  docker ps -aq --filter "name=ktrdr-probe-${prefix}" | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker images --format '{{.Repository}}:{{.Tag}}' | grep "^${prefix}ktrdr-" | xargs -r docker rmi -f >/dev/null 2>&1 || true
}
cleanup() {
  remove_bench_images
  rm -rf "$work/build" "$work/src-"*
}
trap cleanup EXIT

# Snapshots of the source, so a tree being edited meanwhile cannot skew the runs.
cp -a "$src" "$work/src-base"
cp -a "$src" "$work/src-code"
pkg_init=$(cd "$work/src-code" && ls ktrdr/__init__.py)
printf '\n# bench: a code-only change (%s)\n' "$(date -u +%FT%TZ)" >> "$work/src-code/$pkg_init"

declare -A took changed
run() {  # run LABEL SOURCE_DIR [extra env...]
  local label=$1 source=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  if ! env "$@" KTRDR_BUILD_DIR="$work/build" KTRDR_SOURCE_DIR="$source" \
      ansible-playbook -i inventories/local playbooks/build.yml -e @"$work/vars.json" >"$work/logs/$label.log" 2>&1; then
    echo "bench: the $label build failed; see $work/logs/$label.log" >&2
    tail -30 "$work/logs/$label.log" >&2
    exit 1
  fi
  t1=$(date +%s.%N)
  took[$label]=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
  changed[$label]=$(grep -Eo 'changed=[0-9]+' "$work/logs/$label.log" | tail -1 | cut -d= -f2)
  echo "bench: $label ${took[$label]} s (changed=${changed[$label]})"
}

remove_bench_images
run cold "$work/src-base" PIP_CACHE_DIR="$work/build/pip-cache"
cp "$work/build/images.json" "$work/logs/images-cold.json"
run noop "$work/src-base"
run code "$work/src-code"
run code-noop "$work/src-code"

python3 - "$work" "$doc" "$src" "${took[cold]}" "${took[noop]}" "${took[code]}" "${took[code-noop]}" \
  "${changed[noop]}" "${changed[code-noop]}" <<'EOF'
import json, os, platform, re, subprocess, sys, datetime
work, doc, src, cold, noop, code, code_noop, ch_noop, ch_code_noop = sys.argv[1:]
cold, noop, code, code_noop = map(float, (cold, noop, code, code_noop))
report = json.load(open(os.path.join(work, "logs", "images-cold.json")))
log = open(os.path.join(work, "logs", "cold.log")).read()

def task_time(name):
    m = re.findall(r"ktrdr\.ops\.images : " + re.escape(name) + r"[^\n]*?-+ ([0-9.]+)s", log)
    return sum(float(x) for x in m)

def mb(n):
    return n / 1e6 if n else 0

docker_v = subprocess.run(["docker", "version", "-f", "{{.Server.Version}}"], capture_output=True, text=True).stdout.strip()
sizes = report["sizes"]
rows = []
names = {"backend": "ktrdr-backend", "worker_cpu": "ktrdr-worker-cpu", "worker_gpu": "ktrdr-worker-gpu",
         "postgres": "ktrdr-postgres"}
for key in ("backend", "worker_cpu", "worker_gpu", "postgres"):
    if key in sizes and sizes[key]:
        probe = report.get("probes", {}).get(key, {})
        torch = probe.get("torch") or "-"
        cuda = probe.get("cuda") or "-"
        rows.append(f"| `{names[key]}` | {mb(sizes[key]):.0f} | `{report['torch'][key]}` | {torch} | {cuda} |")
ratio = sizes["backend"] / sizes["worker_cpu"]
section = f"""<!-- bench:build:start (written by bench/build.sh; do not edit by hand) -->
## Image builds

Measured {datetime.date.today().isoformat()} with `bash bench/build.sh` (`make bench`) on {os.cpu_count()} cores,
Docker engine {docker_v}, builder `{report['builder']}`, base `{report['base_source']}`
(Python {report['base_probe'].get('python')}), source `{os.path.relpath(src, os.path.dirname(os.path.dirname(doc)))}`.
The bench builds under other names (`bench-ktrdr-*`) with its own build directory, debootstrap base,
wheelhouse and pip cache, so the cold run hits no cache of any kind; the machine is shared, so
times carry some noise.

| run | wall time | `changed` | what happens |
|---|---:|---:|---|
| cold | {cold:.0f} s | - | debootstrap base ({task_time('Debootstrap the Debian base once (about a minute)'):.0f} s), wheelhouses ({task_time("Download the missing wheelhouses with the build host's pip (once per set of inputs)"):.0f} s), builds ({task_time("Build with the engine's legacy builder (community.docker.docker_image)") + task_time('Build with buildx (community.docker.docker_image_build)'):.0f} s), probes |
| no-op rebuild | {noop:.1f} s | {ch_noop} | nothing to build: tags exist, probes cached in images.json |
| code-only rebuild | {code:.1f} s ({100 * code / cold:.0f}% of cold) | - | one line added to `ktrdr/__init__.py`: new backend and worker-cpu tags; only the source layers rebuild, then two probes |
| no-op after it | {code_noop:.1f} s | {ch_code_noop} | |

| image | MB | label `io.ktrdr.torch` | torch | `torch.version.cuda` |
|---|---:|---|---|---|
{chr(10).join(rows)}

Backend / worker-cpu size: **{ratio:.2f}** (budget 0.40). MB = 10^6 bytes, as `docker images` shows.

Reproduce: `make bench`, or `bash bench/build.sh` (`KTRDR_SRC=/path/to/ktrdr` for a real checkout,
`KTRDR_BUILD_GPU=true` to include `ktrdr-worker-gpu`). Logs: `build/bench/logs/`.
<!-- bench:build:end -->"""

text = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n"
pattern = re.compile(r"<!-- bench:build:start.*?<!-- bench:build:end -->", re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: section, text)
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(doc, "w").write(text)
print(section)
EOF
