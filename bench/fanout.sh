#!/usr/bin/env bash
# Fan-out benchmark: `ansible-playbook playbooks/deploy.yml` with 1 worker host, then with 4,
# the database and backend already running on a fifth (localhost): fresh workers (cold), then
# the no-op re-run. The worker "hosts" are aliases of this machine (bench/inventory-fanout), so
# the numbers show what Ansible adds per host (forks, connections, one run of every task per
# host); the containers of all four share this machine's CPUs, which separate hosts would not.
# Writes the "Worker hosts: 1 vs 4" section of docs/benchmarks.md (between the bench:fanout markers).
#
#   bash bench/fanout.sh
#
# Environment "bench-fanout" (ktrdr-bench-fanout*, ports 31500/31532 and 315N3/315N4 on host N),
# published on the docker0 gateway address only; purged before and after.
source "$(dirname "$0")/lib.sh"
work=${KTRDR_BENCH_DIR:-$repo/build/bench-fanout}
inv=$repo/bench/inventory-fanout
# Every "host" reaches the others through this address: reachable from every Docker network of
# this machine, not from other machines.
# (the default bridge's IPAM often names only the subnet: its gateway is then the first address).
address=$(docker network inspect bridge -f '{{json .IPAM.Config}}' | python3 -c "
import ipaddress, json, sys
c = (json.load(sys.stdin) or [{}])[0]
print(c.get('Gateway') or (next(ipaddress.ip_network(c['Subnet']).hosts()) if c.get('Subnet') else ''))")
[[ -n $address ]] || { echo "bench: no gateway address on Docker's bridge network" >&2; exit 1; }
vars=(-e "bench_address=$address")

purge() {  # purge [LIMIT]
  ansible-playbook -i "$inv" playbooks/teardown.yml -e ktrdr_purge=true "${vars[@]}" ${1:+-l "$1"} \
    >"$work/logs/teardown.log" 2>&1 || true
}
rm -rf "$work/logs"
mkdir -p "$work/logs"
trap purge EXIT

echo "bench: building the images if needed and deploying the database and backend (not timed)"
purge
play build "$inv" playbooks/build.yml "${vars[@]}"
play core "$inv" playbooks/deploy.yml -l localhost "${vars[@]}"

declare -A took_of changed_of load_of
for n in 1 4; do
  hosts=$(seq -s, -f 'bench-w%g' 1 "$n")
  for run in cold noop; do
    load_of[$n-$run]=$(load)
    play "$n-$run" "$inv" playbooks/deploy.yml -l "localhost,$hosts" "${vars[@]}"
    took_of[$n-$run]=$took changed_of[$n-$run]=$changed
    echo "bench: $n worker host(s), $run: $took s (changed=$changed, load ${load_of[$n-$run]})"
  done
  purge "$hosts"
done

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
per_host() { python3 -c "print(f'{($1 - $2) / 3:.1f}')"; }
cat > "$work/section.md" <<EOF
<!-- bench:fanout:start (written by bench/fanout.sh; do not edit by hand) -->
## Worker hosts: 1 vs 4

Measured $(date -u +%F) with \`bash bench/fanout.sh\` on $(nproc) CPUs, forks = $(sed -n 's/^forks *= *//p' ansible.cfg)
(ansible.cfg). The database and backend run on \`localhost\` (deployed first, not timed); the worker hosts
\`bench-w1\`…\`bench-w4\` (\`bench/inventory-fanout\`) each run one backtesting and one training worker. Commands:

    ansible-playbook -i bench/inventory-fanout playbooks/deploy.yml -l localhost,bench-w1 -e bench_address=$address
    ansible-playbook -i bench/inventory-fanout playbooks/deploy.yml -l localhost,bench-w1,bench-w2,bench-w3,bench-w4 -e bench_address=$address

each twice: fresh worker hosts (cold: directories, market data, containers until healthy, registration),
then the no-op re-run. The worker hosts are torn down between the two sizes.

| worker hosts | cold | no-op re-run | \`changed\` (no-op) | load (1 min / CPUs) cold, no-op |
|---:|---:|---:|---:|---|
| 1 | ${took_of[1-cold]} s | ${took_of[1-noop]} s | ${changed_of[1-noop]} | ${load_of[1-cold]}, ${load_of[1-noop]} |
| 4 | ${took_of[4-cold]} s (**$(ratio "${took_of[4-cold]}" "${took_of[1-cold]}")×**) | ${took_of[4-noop]} s (**$(ratio "${took_of[4-noop]}" "${took_of[1-noop]}")×**) | ${changed_of[4-noop]} | ${load_of[4-cold]}, ${load_of[4-noop]} |

Each extra worker host adds $(per_host "${took_of[4-noop]}" "${took_of[1-noop]}") s to the no-op run and $(per_host "${took_of[4-cold]}" "${took_of[1-cold]}") s to the cold one.

How to read it: the four "hosts" are aliases of this machine with the local connection, each its own
environment to Docker (own project name, containers, network, ports and directories), whose workers reach
the backend and PostgreSQL like remote workers do, through published ports at an advertised address (the
docker0 gateway). Ansible runs every task once per host in parallel forks, exactly as for real hosts:
the same task dispatch, templating and module runs per host, which is what the **no-op** ratio shows.
Here, though, the module runs of all five "hosts" also share this machine's $(nproc) CPUs, where real hosts
would each run their own, so both ratios are upper bounds; SSH (not used here) adds a connection per
host, which pipelining keeps to one round trip per task. The **cold** ratio overstates the most: eight
workers start on the same CPUs (torch imports, health checks) instead of two per machine.
<!-- bench:fanout:end -->
EOF
replace_section fanout "$work/section.md"
echo "bench: 1 host ${took_of[1-cold]}/${took_of[1-noop]} s, 4 hosts ${took_of[4-cold]}/${took_of[4-noop]} s (cold/no-op)"
