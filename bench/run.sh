#!/usr/bin/env bash
# `make bench`: every benchmark of the project, each writing its section of docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/build.sh
bash bench/distribute.sh
