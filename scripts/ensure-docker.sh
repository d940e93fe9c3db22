#!/usr/bin/env bash
# Make sure a Docker engine answers, for this project's own commands (make canary, make test).
# Real users' hosts get their engine from the ktrdr.ops.docker_host role instead.
set -euo pipefail
log=${KTRDR_DOCKERD_LOG:-/var/log/ktrdr-dockerd.log}

if docker info >/dev/null 2>&1; then
  echo "ensure-docker: engine $(docker version -f '{{.Server.Version}}') answers"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-docker: no Docker engine answers and this user is not root." >&2
  echo "  Fix: start dockerd (or install Debian's docker.io) as root, or add this user to the docker group, then re-run." >&2
  exit 1
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-docker: no engine installed; installing Debian's docker.io"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
echo "ensure-docker: starting dockerd (log: $log)"
# No systemd on these machines: run dockerd in its own session so it outlives this shell.
setsid dockerd >"$log" 2>&1 </dev/null &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "ensure-docker: engine $(docker version -f '{{.Server.Version}}') answers"
    exit 0
  fi
  sleep 1
done
echo "ensure-docker: dockerd did not answer within 60 s; read $log" >&2
exit 1
