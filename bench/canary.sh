#!/usr/bin/env bash
# Canary benchmark: `ansible-playbook playbooks/site.yml` against a fresh environment (images already
# built: the build step finds every tag) — the cold deployment — then the same command again,
# the no-op re-run (goal: changed=0, no container restarted, <= 15% of cold and <= 20 s beyond
# the set-up checks). profile_tasks' slowest tasks of both runs go into the doc.
# Writes the "Canary deployment" section of docs/benchmarks.md (between the bench:canary markers).
#
#   bash bench/canary.sh                       # KTRDR_BENCH_NOOP_RUNS=3 no-op re-runs (median)
#
# Environment "bench" (bench/inventory: ktrdr-bench-*, ports 31000/31003/31004/31432), purged
# (containers, network, volume, /var/lib/ktrdr/bench, artifacts/bench) before and after.
source "$(dirname "$0")/lib.sh"
work=${KTRDR_BENCH_DIR:-$repo/build/bench-canary}
inv=$repo/bench/inventory
project=ktrdr-bench
noop_runs=${KTRDR_BENCH_NOOP_RUNS:-3}

purge() {
  ansible-playbook -i "$inv" playbooks/teardown.yml -e ktrdr_purge=true >"$work/logs/teardown.log" 2>&1 || true
  rm -rf "$repo/artifacts/bench"
}
rm -rf "$work/logs"
mkdir -p "$work/logs"
trap purge EXIT

echo "bench: building the images if needed (not timed)"
play build "$inv" playbooks/build.yml
purge

# Set-up checks = everything before the first task of the build play (ansible's start-up,
# prechecks.yml, the lock, the comparison), read from profile_tasks' running total.
setup_of() {
  python3 - "$work/logs/$1.log" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
after = text.split("PLAY [Build the ktrdr images]", 1)
m = re.search(r"(\d+):(\d{2}):(\d{2}\.\d{3}) \*", after[1]) if len(after) == 2 else None
print(f"{int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]):.1f}" if m else "0")
PY
}

load_cold=$(load)
play cold "$inv" playbooks/site.yml
cold=$took cold_changed=$changed cold_setup=$(setup_of cold)
echo "bench: cold $cold s (set-up checks $cold_setup s, changed=$cold_changed, load $load_cold)"
before=$(started_at $project)

noops=() noop_loads=() noop_setups=() noop_changed=()
for i in $(seq "$noop_runs"); do
  noop_loads+=("$(load)")
  play "noop-$i" "$inv" playbooks/site.yml
  noops+=("$took") noop_changed+=("$changed") noop_setups+=("$(setup_of "noop-$i")")
  echo "bench: no-op $i: $took s (set-up checks ${noop_setups[-1]} s, changed=$changed, load ${noop_loads[-1]})"
done
after=$(started_at $project)
# The floor: a 2-task playbook (bench/floor.yml: inspect the backend container, ask its health),
# measured in the same run, as many times as the no-op.
floors=()
for i in $(seq "$noop_runs"); do
  play "floor-$i" "$inv" bench/floor.yml
  floors+=("$took")
done
floor=$(python3 -c "import sys; v = sorted(float(x) for x in sys.argv[1:]); print(v[len(v) // 2])" "${floors[@]}")
restarted=$([[ "$before" == "$after" ]] && echo none || echo "$(diff <(echo "$before") <(echo "$after") | grep -c '^>') container(s)")

# The median no-op run is the one reported (and profiled).
mid=$(python3 -c "
import sys; v = [float(x) for x in sys.argv[1:]]; print(sorted(range(len(v)), key=v.__getitem__)[len(v) // 2])" "${noops[@]}")
noop=${noops[$mid]} noop_setup=${noop_setups[$mid]}
read -r ratio beyond to_floor < <(python3 -c "print(f'{100 * $noop / $cold:.0f} {$noop - $noop_setup:.1f} {$noop / $floor:.1f}')")
all_changed=$(IFS=+; echo $((${noop_changed[*]})))
verdict() { python3 -c "print('met' if $1 else 'missed')"; }

cat > "$work/section.md" <<EOF
<!-- bench:canary:start (written by bench/canary.sh; do not edit by hand) -->
## Canary deployment: cold vs no-op re-run

Measured $(date -u +%F) with \`bash bench/canary.sh\` on $(nproc) CPUs (load average shown per run;
the machine was shared). Command of every run, against a fresh environment \`bench\`
(\`bench/inventory\`; images already built, so the build step only finds its tags):

    ansible-playbook -i bench/inventory playbooks/site.yml

| run | wall time | set-up checks | beyond set-up checks | \`changed\` | load (1 min / CPUs) |
|---|---:|---:|---:|---:|---|
| cold (from nothing) | $cold s | $cold_setup s | $(python3 -c "print(f'{$cold - $cold_setup:.1f}')") s | $cold_changed | $load_cold |
$(for i in "${!noops[@]}"; do echo "| no-op re-run $((i + 1))$([[ $i == "$mid" ]] && echo ' (median)') | ${noops[$i]} s | ${noop_setups[$i]} s | $(python3 -c "print(f'{${noops[$i]} - ${noop_setups[$i]}:.1f}')") s | ${noop_changed[$i]} | ${noop_loads[$i]} |"; done)

- No-op / cold: **${ratio}%** (goal ≤ 15%: $(verdict "$ratio <= 15")).
- No-op beyond the set-up checks: **$beyond s** (goal ≤ 20 s: $(verdict "$beyond <= 20")); whole no-op run $noop s.
- No-op against the floor (\`bench/floor.yml\`: inspect the backend container and ask its health, median of
  ${#floors[@]} runs: ${floors[*]} s → $floor s): **${to_floor}×** (goal ≤ 3.5×: $(verdict "$to_floor <= 3.5")); the no-op
  itself ${noop} s (goal ≤ 8 s: $(verdict "$noop <= 8")).
- No-op re-runs that stopped after the comparison (\`ktrdr.ops.converged\`: "Nothing to do", build, deploy and
  validation skipped): **$(grep -l "Nothing to do: every host is as the run of" "$work"/logs/noop-*.log 2>/dev/null | wc -l) of ${#noops[@]}**.
- \`changed\` over the no-op re-runs: **$all_changed** (goal 0); containers restarted by them (StartedAt compared): **$restarted**.

"Set-up checks" is ansible's start-up, \`playbooks/prechecks.yml\` (inventory, secrets, engine, ports, disk),
the deploy lock and the comparison with the last proven run (\`ktrdr.ops.converged\`), read from profile_tasks'
running total at the first task of the build play.

Slowest tasks (profile_tasks), cold run:

| task | time |
|---|---:|
$(top_tasks cold 10)

Slowest tasks, median no-op re-run:

| task | time |
|---|---:|
$(top_tasks "noop-$((mid + 1))" 10)

Logs: \`build/bench-canary/logs/\` (cold.log, noop-N.log).
<!-- bench:canary:end -->
EOF
replace_section canary "$work/section.md"
echo "bench: cold $cold s, no-op $noop s ($ratio%, $beyond s beyond set-up checks, ${to_floor}x the $floor s floor), changed=$all_changed, restarted: $restarted"
