#!/usr/bin/env bash
# `ansible-test sanity` on what ships — the collection built into a tarball and installed (see
# scripts/install-collection.sh) — on every ansible-core that meta/runtime.yml's requires_ansible
# claims, the newest patch of each. Local and offline (no Docker, no registry). Run from anywhere
# with the venv on PATH (make test does both).
#   scripts/sanity.sh [ansible-test args, e.g. --test pylint]
#   KTRDR_SANITY_CORES="2.19.14" scripts/sanity.sh    # one version only
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
cores=${KTRDR_SANITY_CORES:-"2.17.14 2.18.19 2.19.14"}

# ansible-test runs each single-version test (pylint, pep8, validate-modules, yamllint, ...) in its
# own venv under ~/.ansible/test/venv, made with --without-pip and bootstrapped by get-pip.py
# downloaded from ci-files.testing.ansible.com. That host is not reachable here (only the PyPI
# proxy is), so when the cache lacks the script, put in its place one that does the same job with
# the pip wheel bundled in Python's own ensurepip: it installs the pinned pip from the index, and
# the venvs then install their pinned requirements the usual way. ansible-test reuses the venvs on
# later runs (they are keyed by requirement hash).
stand_in_get_pip() {
  local python=$1 pip_version get_pip
  pip_version=$("$python" - <<'PY'
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version='3.11'))['pip'])
PY
)
  get_pip=~/.ansible/test/cache/get_pip_${pip_version//./_}.py
  # (rewritten each run when it is ours, so a change here reaches it; a real one is left alone)
  if [[ -s $get_pip ]] && ! grep -q '^# Stand-in for get-pip.py written by ktrdr.ops' "$get_pip"; then return; fi
  mkdir -p "$(dirname "$get_pip")"
  cat >"$get_pip" <<'PY'
# Stand-in for get-pip.py written by ktrdr.ops scripts/sanity.sh (the real one is not reachable
# offline): runs the pip wheel that ships in ensurepip to install the pip ansible-test asks for.
import glob
import os
import sys

import ensurepip

sys.path.insert(0, sorted(glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), '_bundled', 'pip-*.whl')))[-1])
from pip._internal.cli.main import main  # noqa: E402

# --no-setuptools/--no-wheel are get-pip's own options (do not add those packages): nothing to do.
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
sys.exit(main(['install', '--upgrade', '--force-reinstall'] + args))
PY
}

# The ansible-core of the controller venv, or one venv per other version under .venv/cores/.
core_bin() {
  local v=$1
  if [[ $(python -c 'import ansible; print(ansible.__version__)') == "$v" ]]; then dirname "$(command -v python)"; return; fi
  local venv=$checkout/.venv/cores/$v
  if [[ ! -x $venv/bin/ansible-test ]]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q "ansible-core==$v" >&2
  fi
  echo "$venv/bin"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
installed=$(bash scripts/install-collection.sh "$tmp/installed")
failed=0
for v in $cores; do
  bin=$(core_bin "$v")
  stand_in_get_pip "$bin/python"
  # ansible-test wants the collection at .../ansible_collections/ktrdr/ops in a git work tree; the
  # ignore file of this version (tests/ is dev-only, so it is not in the tarball) is added to a copy.
  dest=$tmp/$v/ansible_collections/ktrdr/ops
  mkdir -p "$dest/tests/sanity"
  cp -a "$installed/." "$dest/"
  cp "tests/sanity/ignore-${v%.*}.txt" "$dest/tests/sanity/"
  git -C "$dest" init -q && git -C "$dest" add -A
  echo "--- ansible-test sanity, ansible-core $v, on the installed tarball"
  # --python 3.11: the controller's Python; the multi-version tests (compile, import) would
  #   otherwise try every Python ansible-core supports.
  # --skip-test shellcheck: shellcheck is not part of the pinned toolchain (requirements/dev.txt);
  #   without the skip the test would run or not depending on what the machine happens to have.
  # ANSIBLE_CONFIG unset: ansible-test points Ansible at the copy itself.
  (cd "$dest" && env -u ANSIBLE_CONFIG "$bin/ansible-test" sanity --python 3.11 --color no --skip-test shellcheck "$@") || failed=1
done
exit $failed
