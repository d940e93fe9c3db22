#!/usr/bin/env bash
# Build the collection tarball from this checkout and install it into the collections path DEST,
# as a user would (ansible-galaxy collection build + install). Prints the installed collection's
# directory. Used by make test's package, sanity and images stages.
set -euo pipefail
dest=${1:?usage: scripts/install-collection.sh DEST}
cd "$(dirname "$0")/.."
rm -rf "$dest" && mkdir -p "$dest"
ansible-galaxy collection build --output-path "$dest" >/dev/null
# --no-deps: community.docker comes with the ansible package (requirements/controller.txt), and
# Galaxy is not reachable here; a user's `ansible-galaxy collection install` pulls it from Galaxy.
# Outside the checkout and with only DEST configured, so that the checkout's own copy is not taken
# for an installed one.
(cd "$dest" && env -u ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH="$dest" \
  ansible-galaxy collection install --no-deps -p "$dest" "$dest"/ktrdr-ops-*.tar.gz >/dev/null)
echo "$dest/ansible_collections/ktrdr/ops"
