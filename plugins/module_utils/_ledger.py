# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""The records an operator reads about a live environment, kept on each host beside the release
manifest (<ktrdr_root_dir>): the deploy lock (deploy.lock), the audit log (audit.jsonl), the
release id every container carries, and the version-skew rule. Standard library only: the
modules import it on the managed host, the action plugins on the controller."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import time

LOCK_FILE = "deploy.lock"
AUDIT_FILE = "audit.jsonl"
MANIFEST_FILE = "releases.json"
RELEASE_LABEL = "io.ktrdr.release"
CONTENT_LABEL = "io.ktrdr.content-hash"
IMAGE_KEYS = ("postgres", "backend", "worker_cpu", "worker_gpu")


class LedgerError(Exception):
    pass


# --- release id ---------------------------------------------------------------------------------

def release_images(images):
    """The images that make a release: the four image keys, string values only."""
    return {k: v for k, v in (images or {}).items() if k in IMAGE_KEYS and isinstance(v, str) and v}


def host_image_keys(groups, backtest_count=1):
    """Which images of a release a host runs, in load order, from its inventory groups: ktrdr_db the
    database, ktrdr_backend the backend, CPU worker hosts worker_cpu, GPU worker hosts worker_gpu
    (and worker_cpu too while they run backtesting workers, which need no GPU)."""
    groups = set(groups or [])
    gpu = "ktrdr_gpu_workers" in groups
    worker = gpu or bool(groups & {"ktrdr_workers", "ktrdr_cpu_workers"})
    keys = {"postgres": "ktrdr_db" in groups, "backend": "ktrdr_backend" in groups,
            "worker_cpu": worker and (not gpu or int(backtest_count) > 0), "worker_gpu": gpu}
    return [k for k in IMAGE_KEYS if keys[k]]


def release_id(images):
    """A release is named after its images (the same images are the same release). Equal to the
    id the manifests have always used: (images | dictsort | to_json | hash('sha256'))[:12]."""
    pairs = sorted(release_images(images).items())
    return hashlib.sha256(json.dumps(pairs).encode("utf-8")).hexdigest()[:12]


# --- the release record (releases.json on each host) -------------------------------------------

def record_release(old, event, images, host_keys, schema_revision="", backup_path="", history=10,
                   env="", host="", now=None):
    """The host's manifest after an event: `distributed` (the images are on the host) or `deployed`
    (they now run: the release becomes current, the one before it previous, the rollback target).
    A release keeps its first distributed_at; the oldest beyond `history` are forgotten, never the
    current or the previous one. Pure: returns the new manifest and the release's id."""
    old = old or {}
    if event not in ("distributed", "deployed"):
        raise LedgerError("unknown release event %r (distributed, deployed)" % event)
    deployed = event == "deployed"
    images = {k: v for k, v in (images or {}).items() if k in IMAGE_KEYS and isinstance(v, str)}
    rid = release_id(images)
    now = now or iso(time.time())
    olds = list(old.get("releases") or [])
    entry = {"id": rid, "images": images, "distributed_at": now}
    entry.update(next((r for r in olds if r.get("id") == rid), {}))
    entry["host_images"] = [images[k] for k in IMAGE_KEYS if k in host_keys and k in images]
    becomes_current = deployed and old.get("current") != rid
    if becomes_current:
        entry["deployed_at"] = now
    if deployed and schema_revision:
        entry["schema_revision"] = schema_revision
    if deployed and backup_path:
        entry["backup_path"] = backup_path
    current = rid if deployed else old.get("current")
    previous = old.get("current") if becomes_current else old.get("previous")
    merged = [entry if r.get("id") == rid else r for r in olds]
    if not any(r.get("id") == rid for r in olds):
        merged.append(entry)
    droppable = [r["id"] for r in merged if r.get("id") not in (current, previous)]
    drop = set(droppable[:max(len(merged) - int(history), 0)])
    manifest = {"format": 1, "env": env, "host": host, "current": current, "previous": previous,
                "releases": [r for r in merged if r.get("id") not in drop]}
    return manifest, rid


def write_json(path, data):
    """Whole or not at all: a temp file in the same directory, renamed over the old one."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    tmp = _write_temp(directory, json.dumps(data, indent=4, sort_keys=True) + "\n")
    os.replace(tmp, path)


# --- who runs ------------------------------------------------------------------------------------

def _proc_start(pid):
    """(start ticks of pid as a string, its start as epoch seconds), or ("", None) without /proc."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])
        with open("/proc/stat") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith("btime "))
        return str(ticks), round(btime + ticks / os.sysconf("SC_CLK_TCK"), 1)
    except (OSError, ValueError, IndexError, StopIteration):
        return "", None


def _playbooks(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            return playbooks_in(fh.read().decode("utf-8", "replace").split("\0"))
    except OSError:
        return ""


def playbooks_in(args):
    """The playbook names on an ansible-playbook command line."""
    # The playbooks are the arguments that are not options nor their values (-i hosts.yml, -e @vars.yml).
    with_value = {"-i", "--inventory", "--inventory-file", "-e", "--extra-vars", "-l", "--limit", "-t", "--tags",
                  "--skip-tags", "--vault-password-file", "--vault-id", "-u", "--user", "-c", "--connection", "-f", "--forks"}
    books, skip = [], True  # args[0] is the interpreter or the script
    for i, a in enumerate(args):
        if skip or not a:
            skip = False
            continue
        if a in with_value:
            skip = True
        elif not a.startswith(("-", "@")) and a.endswith((".yml", ".yaml")) and (i == 0 or args[i - 1] not in with_value):
            books.append(os.path.basename(a))
    return " ".join(books)


def _namespace():
    """This machine's boot and PID namespace: two containers with one hostname differ here."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            boot = fh.read().strip()
        return "%s/%d" % (boot, os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def controller_run(pid=None, user=None):
    """The run this controller process belongs to: the ansible-playbook process (the parent of the
    worker that runs an action plugin), who started it and when."""
    pid = pid or os.getppid()
    ticks, started = _proc_start(pid)
    controller = socket.gethostname()
    if user is None:
        import getpass
        user = getpass.getuser()
    return {
        "id": "%s:%d:%s" % (controller, pid, ticks),
        "user": user,
        "controller": controller,
        "holder": "%s@%s" % (user, controller),
        "pid": pid,
        "namespace": _namespace(),
        "play": _playbooks(pid),
        "started_at": started if started is not None else round(time.time(), 1),
    }


def run_alive(run, here=None):
    """True/False when the run's controller is this machine (its process lives, and is the same
    process: same start ticks), None when it ran elsewhere (cannot tell)."""
    here = here or socket.gethostname()
    if not run or run.get("controller") != here:
        return None
    theirs, mine = run.get("namespace") or "", _namespace()
    if theirs and mine and theirs != mine:
        # Another boot of this machine: that run has ended. Another PID namespace: cannot tell.
        return False if theirs.split("/")[0] != mine.split("/")[0] else None
    pid = int(run.get("pid") or 0)
    if pid <= 0:
        return False
    ticks = _proc_start(pid)[0]
    if ticks:
        return run.get("id", "").endswith(":" + ticks)
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


# --- files ---------------------------------------------------------------------------------------

def _write_temp(directory, data):
    fd, tmp = tempfile.mkstemp(prefix=".ktrdr-", dir=directory)
    with os.fdopen(fd, "w") as fh:
        fh.write(data)
    os.chmod(tmp, 0o644)
    return tmp


def read_json(path):
    """The JSON object in path, None when there is no file; LedgerError naming the file otherwise."""
    try:
        with open(path) as fh:
            text = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LedgerError("cannot read %s: %s" % (path, exc))
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LedgerError("%s is not JSON (%s): move it away or fix it" % (path, exc))
    if not isinstance(data, dict):
        raise LedgerError("%s holds no JSON object: move it away or fix it" % path)
    return data


# --- the lock ------------------------------------------------------------------------------------

def describe_lock(lock):
    what = "for maintenance" if lock.get("kind") == "maintenance" else "by %s" % (lock.get("play") or "a playbook run")
    text = "held %s since %s by %s (pid %s)" % (what, lock.get("since", "?"), lock.get("holder", "?"), lock.get("pid", "?"))
    if lock.get("message"):
        text += ": %r" % lock["message"]
    return text


def acquire(path, run, kind="run", message="", env="", write=True):
    """Take the lock at path for run. Returns (acquired, lock): acquired False and the holder's
    record when another run holds it. Atomic: the record is written to a temporary file and linked
    to path, which fails if path exists. The same run taking it again (a playbook that imports
    another) counts a depth instead."""
    directory = os.path.dirname(path)
    record = {
        "format": 1, "env": env, "kind": kind, "message": message, "depth": 1,
        "run": run["id"], "holder": run["holder"], "user": run["user"], "controller": run["controller"],
        "pid": run["pid"], "namespace": run.get("namespace", ""), "play": run.get("play", ""), "since": iso(time.time()),
    }
    held = read_json(path)
    if held is not None and held.get("run") != run["id"]:
        return False, held
    if not write:
        return True, held or record
    if held is not None:
        held["depth"] = int(held.get("depth", 1)) + 1
        os.replace(_write_temp(directory, json.dumps(held, sort_keys=True)), path)
        return True, held
    os.makedirs(directory, exist_ok=True)
    tmp = _write_temp(directory, json.dumps(record, sort_keys=True))
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False, read_json(path) or {}
    finally:
        os.unlink(tmp)
    return True, record


def release(path, run, everything=False, write=True):
    """Give the lock back. Returns (released, lock): released True when the file is gone (or was
    not there). Only the run that holds it, or its user on the same controller for a maintenance
    lock, may release it; LedgerError otherwise. everything: drop every depth (a failed run)."""
    held = read_json(path)
    if held is None:
        return True, None
    if everything:
        mine = held.get("run") == run["id"]  # a failed run gives back only its own lock, never a maintenance one
    else:
        mine = held.get("run") == run["id"] or (held.get("kind") == "maintenance" and held.get("holder") == run["holder"])
    if not mine and (everything or not write):
        return False, held  # (in check mode the lock was only read, another's is left as it is)
    if not mine:
        raise LedgerError("the deploy lock is %s, not by this run: wait until its holder releases it, or break it "
                          "with ansible-playbook playbooks/lock.yml -e ktrdr_lock=break" % describe_lock(held))
    depth = 0 if everything else int(held.get("depth", 1)) - 1
    if not write:
        return depth <= 0, held
    if depth > 0:
        held["depth"] = depth
        os.replace(_write_temp(os.path.dirname(path), json.dumps(held, sort_keys=True)), path)
        return False, held
    os.unlink(path)
    return True, held


def break_lock(path, write=True):
    """Remove whatever lock is at path; returns the record it removed (None when none)."""
    try:
        held = read_json(path)
    except LedgerError:
        held = {"holder": "?", "note": "unreadable lock file"}
    if held is not None and write:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    return held


# --- the audit log -------------------------------------------------------------------------------

def append_audit(path, entry):
    """One JSON line, appended with a single write (O_APPEND: lines of concurrent writers do not mix)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # after a line cut off mid-write, start a new one
        os.write(fd, line)
    finally:
        os.close(fd)


def read_audit(path, last=10):
    """(the last entries, newest last; [(line number, why)] for lines that are not JSON objects).
    A truncated or foreign line is named, never fatal."""
    entries, bad = [], []
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        return [], [(0, "cannot read %s: %s" % (path, exc))]
    for number, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line.decode("utf-8"))
            if not isinstance(entry, dict):
                raise ValueError("not a JSON object")
            entries.append(entry)
        except ValueError as exc:
            bad.append((number, "%s line %d is not an audit entry (%s): %s" % (path, number, str(exc)[:80], line[:80].decode("utf-8", "replace"))))
    return entries[-last:] if last else entries, bad


# --- skew ----------------------------------------------------------------------------------------

def skew(containers, backend_release):
    """Workers (and a backend) whose release label differs from backend_release, or that carry none."""
    if not backend_release:
        return []
    return [{"worker_id": c.get("worker_id") or c["name"], "container": c["name"], "release": c.get("release") or "none",
             "backend_release": backend_release}
            for c in containers
            if (c.get("kind") == "worker" or c.get("component") == "backend") and c.get("release") != backend_release]


# --- what runs -----------------------------------------------------------------------------------

def project_containers(api, project):
    """The environment's containers on one engine (a docker SDK APIClient): name, component,
    image, its content hash, the release it belongs to, state, health, start. Never the env."""
    out, hashes = [], {}
    for c in api.containers(all=True, filters={"label": "io.ktrdr.project=%s" % project}):
        try:
            i = api.inspect_container(c["Id"])
        except Exception:  # removed between the list and the inspection
            continue
        config, state = i.get("Config") or {}, i.get("State") or {}
        labels = config.get("Labels") or {}
        if i["Image"] not in hashes:
            try:
                hashes[i["Image"]] = ((api.inspect_image(i["Image"]).get("Config") or {}).get("Labels") or {}).get(CONTENT_LABEL, "")
            except Exception:
                hashes[i["Image"]] = ""
        out.append(dict(
            role_of((i.get("Name") or "").lstrip("/"), labels), id=i["Id"][:12],
            image=config.get("Image"), image_id=i["Image"], content_hash=hashes[i["Image"]],
            state=state.get("Status"), health=(state.get("Health") or {}).get("Status") or "none",
            started_at=state.get("StartedAt"),
        ))
    return sorted(out, key=lambda c: c["name"])


def exec_output(api, container, argv, environment=None):
    """(exit code, output) of argv run in a container (a docker SDK APIClient)."""
    exec_id = api.exec_create(container, argv, environment=environment)["Id"]
    out = api.exec_start(exec_id).decode("utf-8", "replace").strip()
    return api.exec_inspect(exec_id).get("ExitCode"), out


def registered_workers(api_url, api_token=None):
    """The workers the backend at api_url lists: worker_id, worker_type, status, endpoint_url, image_revision."""
    from ansible_collections.ktrdr.ops.plugins.module_utils._api import KtrdrClient
    body = KtrdrClient(api_url, api_token=api_token, request_timeout=5.0, retries=1).get("/workers")
    listed = body if isinstance(body, list) else (body or {}).get("workers", [])
    return [{"worker_id": w.get("worker_id"), "worker_type": w.get("worker_type"), "status": w.get("status"),
             "endpoint_url": w.get("endpoint_url"), "image_revision": (w.get("capabilities") or {}).get("image_revision", "")}
            for w in listed]


def role_of(name, labels):
    """What a container is in the environment, from the labels the roles give it."""
    return {"name": name, "component": labels.get("io.ktrdr.component", ""),
            "kind": labels.get("io.ktrdr.kind") or ("worker" if labels.get("io.ktrdr.worker-id") else ""),
            "worker_id": labels.get("io.ktrdr.worker-id", ""), "release": labels.get(RELEASE_LABEL, "")}


def release_skew(containers, release):
    """skew() over containers as ktrdr.ops.containers_info lists them (name and labels)."""
    return skew([role_of(c["name"], c.get("labels") or {}) for c in containers], release)


def backend_release(containers):
    return next((c["release"] for c in containers if c["component"] == "backend"), "")


def manifest_summary(root_dir):
    """current / previous release of the host's manifest and the releases it remembers."""
    m = read_json(os.path.join(root_dir, MANIFEST_FILE)) or {}
    return {"current": m.get("current"), "previous": m.get("previous"),
            "releases": [{k: r.get(k) for k in ("id", "images", "deployed_at", "schema_revision") if k in r}
                         for r in m.get("releases") or []]}
