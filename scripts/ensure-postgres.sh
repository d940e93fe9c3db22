#!/usr/bin/env bash
# Make sure PostgreSQL server binaries (initdb, pg_ctl, postgres) exist for the reference
# service's live tests (deploy/reference/tests/stack.py starts its own throwaway cluster from
# them; no system service is used). Installs Debian's postgresql-15 with apt when missing.
set -euo pipefail

find_bin() {
  local d
  for d in ${KTRDR_PG_BIN:-} $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -rn); do
    if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then echo "$d"; return 0; fi
  done
  return 1
}

if bin=$(find_bin); then
  echo "ensure-postgres: PostgreSQL server binaries present in $bin ($("$bin/postgres" --version))"
  exit 0
fi
if [[ $(id -u) != 0 ]]; then
  echo "ensure-postgres: no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin and this user is not root." >&2
  echo "  Fix: as root run 'apt-get install postgresql-15' (or re-run this script as root), or set KTRDR_PG_BIN to a bin directory that has them." >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-postgres: no PostgreSQL server binaries and no apt-get on this machine." >&2
  echo "  Fix: install PostgreSQL (server) 13 or newer with the system's package manager, or set KTRDR_PG_BIN." >&2
  exit 1
fi
echo "ensure-postgres: installing Debian's PostgreSQL server (apt-get)"
apt-get update -qq
# Debian 12 ships postgresql-15; other releases get their default through the metapackage.
pkg=postgresql-15
apt-cache show "$pkg" >/dev/null 2>&1 || pkg=postgresql
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
if bin=$(find_bin); then
  echo "ensure-postgres: installed $pkg; server binaries in $bin ($("$bin/postgres" --version))"
  echo "ensure-postgres: (Debian may also have created its default cluster; the tests do not use it)"
else
  echo "ensure-postgres: installed $pkg but found no initdb/pg_ctl under /usr/lib/postgresql/*/bin" >&2
  exit 1
fi
