#!/usr/bin/env bash
# `make bench`: every benchmark of the project, each writing its section of docs/benchmarks.md.
# Each one removes what it created (images, containers, volumes, directories) when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/build.sh       # image builds: cold, no-op, code-only, sizes
bash bench/distribute.sh  # image distribution to 1 and 3 hosts without a registry
bash bench/canary.sh      # site.yml: cold deployment vs no-op re-run, profile_tasks top tasks
bash bench/wait.sh        # ktrdr.ops.operation: latency after an operation completes
bash bench/fanout.sh      # deploy.yml with 1 vs 4 worker hosts
