"""Drill 5: an image transfer interrupted half-way, then re-run (roles/distribute, archive path).

A host with its own Docker engine (Docker-in-Docker, molecule/remote/create-hosts.yml) gets the
PostgreSQL image from the build host through distribute.yml: export (ktrdr.ops.image_bundle on the build
host) -> copy (the docker connection pipes it into `dd` on the host) -> docker load -> verify.
The drill kills ansible-playbook (and every process it started) twice: once while the export is
being written, once while the archive is being copied; then a re-run must converge, and the run
after that must send nothing.
"""

from __future__ import annotations

import glob
import json
import os
import re
import time

import docker
import pytest

from drill import BUILD_DIR, DOCKER, HERE, ROOT, ansible_ok, finish_playbook, kill_tree, start_playbook, wait_for

INVENTORY = os.path.join(HERE, "inventory-dind")
HOST = "ktrdr-faults-dind"
EXPORTS = os.path.join(BUILD_DIR, "distribute", "exports")


def _postgres_ref() -> str:
    with open(os.path.join(BUILD_DIR, "images.json")) as fh:
        record = json.load(fh)
    return record.get("images", record)["postgres"]


def _inner(*argv: str):
    """A command on the test host (its own engine answers `docker` there)."""
    rc, out = DOCKER.containers.get(HOST).exec_run(list(argv))
    return rc, out.decode("utf-8", "replace").strip()


def _report() -> dict:
    with open(os.path.join(BUILD_DIR, "distribute-report.json")) as fh:
        return json.load(fh)["hosts"][HOST]


def _remove_host() -> None:
    for name in (HOST,):
        try:
            DOCKER.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass
    for vol in (HOST + "-docker", HOST + "-shared"):
        try:
            DOCKER.volumes.get(vol).remove(force=True)
        except docker.errors.NotFound:
            pass
    for net in DOCKER.networks.list(names=[HOST]):
        net.remove()


@pytest.fixture
def dind_host():
    """The test host, made fresh (an empty engine); removed with its volumes and network after."""
    _remove_host()
    ansible_ok(os.path.join(ROOT, "molecule", "remote", "create-hosts.yml"), inventory=INVENTORY)
    yield HOST
    _remove_host()


def _wait_seen(proc, what: str, seen, timeout: float = 600):
    """Poll seen() until it answers; fail if the run ended first."""
    deadline = time.monotonic() + timeout
    while True:
        found = seen()
        if found:
            return found
        assert proc.poll() is None, "distribute.yml ended (rc %s) before %s; log %s" % (proc.returncode, what, proc.log)
        assert time.monotonic() < deadline, "no %s within %.0f s; log %s" % (what, timeout, proc.log)
        time.sleep(0.2)


def _kill(proc) -> None:
    kill_tree(proc)
    finish_playbook(proc)


def _partial_exports() -> list[str]:
    return [p for p in glob.glob(os.path.join(EXPORTS, "*.tmp")) if os.path.getsize(p) > 20_000_000]


def _copy_client() -> str:
    """The archive's path on the host while the docker connection's put_file copies it (`docker
    exec -i <host> ... dd of=<remote tmp>/.source.tar`, a process of this machine; modules travel
    the same way as AnsiballZ_*.py), else ''."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        m = re.search(r"docker\S* exec .*%s .*dd of='?(\S+/\.?source\b[^\s']*)" % HOST, cmd)
        if m:
            return m.group(1)
    return ""


def _copying() -> bool:
    top = DOCKER.containers.get(HOST).top(ps_args="-eo pid,args")
    return any(re.match(r"\s*dd of=", str(p[-1])) for p in top["Processes"])


def test_interrupted_transfer_rerun_converges(dind_host):
    ref = _postgres_ref()
    repo = ref.rsplit(":", 1)[0].replace("/", "_")
    # No cached export of the image: the first run has to write one.
    for path in glob.glob(os.path.join(EXPORTS, repo + "_*")):
        os.unlink(path)

    # 1. Killed while the build host writes the export.
    run = start_playbook("distribute.yml", inventory=INVENTORY)
    _wait_seen(run, "export being written", _partial_exports)
    _kill(run)
    assert not glob.glob(os.path.join(EXPORTS, repo + "_*.tar")), "a half-written export carries its final name"
    assert glob.glob(os.path.join(EXPORTS, "*.tmp")), "the interrupted export left no partial file (not interrupted?)"

    # 2. Killed while the archive is copied to the host. The moment the copy starts, the host is
    #    slowed to 1% of a CPU (its cgroup quota), so the kill always lands mid-copy.
    run = start_playbook("distribute.yml", inventory=INVENTORY)
    target = _wait_seen(run, "archive copy to the host", _copy_client)
    host = DOCKER.containers.get(HOST)
    host.update(cpu_period=100000, cpu_quota=1000)
    try:
        partial = host.attrs["GraphDriver"]["Data"]["MergedDir"] + target
        wait_for("the copy to write", lambda: os.path.exists(partial) and os.path.getsize(partial) > 0, 120, interval=0.1)
        _kill(run)
    finally:
        host.update(cpu_quota=-1)
    wait_for("the copy on the host to stop", lambda: not _copying(), 60)
    export_size = os.path.getsize(glob.glob(os.path.join(EXPORTS, repo + "_*.tar"))[0])
    size = os.path.getsize(partial)
    assert size < export_size, "the copy was not cut short: %d of %d bytes" % (size, export_size)
    print("copy cut at %d of %d bytes (%s)" % (size, export_size, target))
    rc = _inner("docker", "image", "inspect", ref)[0]
    assert rc != 0, "%s is on the host although its transfer was interrupted" % ref

    # 3. The re-run converges: the image is there with the build's content hash.
    ansible_ok("distribute.yml", inventory=INVENTORY)
    assert _report()["bytes_sent"] > 0
    rc, label = _inner("docker", "image", "inspect", "--format", '{{ index .Config.Labels "io.ktrdr.content-hash" }}', ref)
    built = DOCKER.images.get(ref).labels["io.ktrdr.content-hash"]
    assert rc == 0 and label == built, "host has %s with content hash %r, the build %r" % (ref, label, built)
    assert not glob.glob(os.path.join(EXPORTS, "*.tmp")), "partial exports left on the build host: %s" % os.listdir(EXPORTS)
    rc, staged = _inner("sh", "-c", "ls -A /var/lib/ktrdr/images")
    assert staged == "", "archives left in the host's staging directory: %s" % staged

    # 4. ... and stays converged: nothing more to send.
    ansible_ok("distribute.yml", inventory=INVENTORY)
    assert _report()["bytes_sent"] == 0 and _report()["sent"] == [], _report()
