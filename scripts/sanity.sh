#!/usr/bin/env bash
# `ansible-test sanity` on this checkout, locally (no Docker, no registry). Run from anywhere
# with the venv on PATH (make test does both).
#
# ansible-test wants the collection at .../ansible_collections/ktrdr/ops inside a git work tree,
# so the checkout's files (tracked, and untracked but not ignored) are copied into a temp tree and
# `git add`ed there (nothing is committed). Extra arguments go to ansible-test (e.g. --test pylint).
set -euo pipefail
cd "$(dirname "$0")/.."

# ansible-test runs each single-version test (pylint, pep8, validate-modules, yamllint,
# ansible-doc, ...) in its own venv under ~/.ansible/test/venv, made with --without-pip and
# bootstrapped by get-pip.py downloaded from ci-files.testing.ansible.com. That host is not
# reachable here (only the PyPI proxy is), so when the cache lacks the script, put in its place
# one that does the same job with the pip wheel bundled in Python's own ensurepip: it installs
# the pinned pip from the index, and the venvs then install their pinned requirements the usual
# way. ansible-test reuses the venvs on later runs (they are keyed by requirement hash).
pip_version=$(python - <<'EOF'
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version='3.11'))['pip'])
EOF
)
get_pip=~/.ansible/test/cache/get_pip_${pip_version//./_}.py
# (rewritten each run when it is ours, so a change here reaches it; a real one is left alone)
if [[ ! -s $get_pip ]] || grep -q '^# Stand-in for get-pip.py written by ktrdr.ops' "$get_pip"; then
  mkdir -p "$(dirname "$get_pip")"
  cat >"$get_pip" <<'EOF'
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
EOF
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/ansible_collections/ktrdr/ops
mkdir -p "$dest"
git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
  # (a tracked file deleted in the work tree is not part of what is being tested)
  if [[ -e $f ]]; then cp --parents -P -- "$f" "$dest"; fi
done
git -C "$dest" init -q
git -C "$dest" add -A

cd "$dest"
# ansible-test points Ansible at the copy itself; the checkout's ansible.cfg would point it back.
unset ANSIBLE_CONFIG
# --python 3.11: the controller's Python; the multi-version tests (compile, import) would
#   otherwise try every Python ansible-core supports.
# --exclude deploy/reference/: the reference ktrdr service, shipped as a build context and tested
#   by the `reference` stage; it is not collection content (no Ansible code loads it) and follows
#   ktrdr's code style, not Ansible's pylint policy (which forbids e.g. the names `_` and `bar`).
# --skip-test shellcheck: shellcheck is not part of the pinned toolchain (requirements/dev.txt);
#   without the skip the test would run or not depending on what the machine happens to have.
ansible-test sanity --python 3.11 --color no \
  --exclude deploy/reference/ \
  --skip-test shellcheck \
  "$@"
