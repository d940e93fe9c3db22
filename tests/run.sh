#!/usr/bin/env bash
# `make test`: every suite, in dependency order, each one against real parts
# (PostgreSQL, uvicorn, the Docker engine). Run from the repo root with the venv on PATH.
# KTRDR_TEST_ONLY="unit reference" runs a subset.
set -euo pipefail
cd "$(dirname "$0")/.."

stages=${KTRDR_TEST_ONLY:-"lint package sanity unit reference images modules reliability canary gpu faults"}
declare -A took
failed=0

# pytest exits 5 when it collected nothing; a suite that exists must collect something.
run_pytest() { pytest -q -p no:cacheprovider "$@"; }

stage() {
  local name=$1; shift
  [[ " $stages " == *" $name "* ]] || return 0
  echo "=== [$name] $*"
  local t0=$SECONDS
  if "$@"; then took[$name]="ok $((SECONDS - t0))s"; else took[$name]="FAILED $((SECONDS - t0))s"; failed=1; fi
}

lint() {
  # The whole repository (.ansible-lint says what is left out, and why); the example inventory's
  # vault opens with its published dummy password, so its variables are linted too.
  ANSIBLE_VAULT_PASSWORD_FILE=$PWD/inventories/homelab-example/vault-password.dummy.txt ansible-lint
}

# The collection as users get it: built into a tarball and installed outside the checkout. The
# package stage tests the tarball and the installed copy; the images stage builds from that copy
# with a build record of its own (build/installed/images.json, so the checkout's stays the
# checkout's) and the checkout's cache (wheelhouses, debootstrap base): same tags, nothing rebuilt.
# The canary stage deploys from that copy with its default paths (~/.cache/ktrdr.ops).
installed=$(mktemp -d /tmp/ktrdr-ops-installed.XXXXXX)
install_once() {
  [[ -d $installed/ansible_collections ]] || bash scripts/install-collection.sh "$installed" >/dev/null
}
images_installed() {
  mkdir -p build/cache build/installed && ln -sfn ../cache build/installed/cache && install_once &&
    KTRDR_COLLECTIONS_PATH=$installed KTRDR_BUILD_DIR=$PWD/build/installed molecule test -s images
}
canary_installed() {
  install_once && env -u KTRDR_BUILD_DIR -u KTRDR_ARTIFACTS_DIR KTRDR_COLLECTIONS_PATH=$installed molecule test -s canary
}

cleanup() {
  # Keep the disk free across runs: only what tests leave dangling, never the built images in use.
  docker container prune -f --filter "label=io.ktrdr.test=true" >/dev/null 2>&1 || true
  docker image prune -f >/dev/null 2>&1 || true
  docker volume prune -f --filter "label=io.ktrdr.test=true" >/dev/null 2>&1 || true
  rm -rf "$installed"
}
trap cleanup EXIT

bash scripts/ensure-postgres.sh

stage lint lint
stage package run_pytest tests/package
# On the installed tarball, once per ansible-core that meta/runtime.yml claims.
stage sanity bash scripts/sanity.sh
stage unit run_pytest tests/unit
stage reference run_pytest deploy/reference/tests
stage images images_installed
stage modules run_pytest tests/modules
stage reliability run_pytest tests/reliability
stage canary canary_installed
# Skips with one line saying what is missing where there is no NVIDIA GPU + toolkit.
stage gpu molecule test -s gpu
# Fault drills (also alone: make test-faults), ~15 min with the operate drills; the dockerd drill only with KTRDR_FAULTS_DOCKERD=1.
stage faults run_pytest tests/faults

echo "=== summary"
passed=0; nfailed=0
for k in "${!took[@]}"; do
  printf '  %-10s %s\n' "$k" "${took[$k]}"
  if [[ ${took[$k]} == ok* ]]; then passed=$((passed + 1)); else nfailed=$((nfailed + 1)); fi
done
echo "stages: $passed passed, $nfailed failed"
exit $failed
