#!/bin/sh
# Start the host's own Docker engine and keep it running (no systemd in the test hosts).
# Docker would only lift the read-only /proc sub-mounts with `--security-opt systempaths=unconfined`,
# which the Docker API (and so community.docker) cannot express; with CAP_SYS_ADMIN the host
# lifts them itself, so the inner engine can set its sysctls.
#   DOCKERD_ARGS          extra dockerd flags (e.g. --insecure-registry for the registry test)
#   KTRDR_TEST_REGISTRY=1 also run a plain-HTTP registry (Debian's docker-registry) on :5000
set -eu
for p in /proc/sys /proc/bus /proc/fs /proc/irq /proc/sysrq-trigger; do
    if grep -q " $p " /proc/self/mountinfo; then umount "$p" 2>/dev/null || true; fi
done
if [ "${KTRDR_TEST_REGISTRY:-0}" = 1 ]; then
    # Debian's default configuration asks for htpasswd credentials; the test registry needs none.
    printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\nhttp:\n  addr: :5000\n' \
        > /etc/ktrdr-test-registry.yml
    docker-registry serve /etc/ktrdr-test-registry.yml >>/var/log/registry.log 2>&1 &
fi
rm -f /var/run/docker.pid
# shellcheck disable=SC2086
exec dockerd --host unix:///var/run/docker.sock ${DOCKERD_ARGS:-} >>/var/log/dockerd.log 2>&1
