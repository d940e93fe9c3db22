# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""Has anything changed since the last run of site.yml that converged and proved the environment?

Two halves: what the controller feeds a run (variables, source trees, the collection's own files:
``inputs``) and what a host has (``observe``: containers, images, release, schema revision, strategy
files, market data, shared directories, registered workers). ``differences`` compares both with the
record the last proven run left, and names every difference; none means the run has nothing to do."""

from __future__ import annotations

import hashlib
import json
import os
import secrets

# Directories of a source tree that are not build input (VCS, virtualenvs, caches).
SKIP_DIRS = {"__pycache__", "node_modules"}


def _sha(data):
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode("utf-8")).hexdigest()


def canonical(value):
    """JSON text of a variable's value, the same for the same value (sorted keys, anything else as str)."""
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def tree_digest(path, content=False):
    """Digest of the files under path: their names, sizes and modification times (content=True: their
    bytes, for small trees). A touched file counts as changed - a full run, which then finds nothing
    to do. Hidden directories (.git, .venv) and caches are skipped. A missing path has digest ''."""
    if not path or not os.path.exists(path):
        return ""
    sha = hashlib.sha256()
    if os.path.isfile(path):
        walk = [(os.path.dirname(path), [], [os.path.basename(path)])]
    else:
        walk = os.walk(path)
    for top, dirs, files in walk:
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        for name in sorted(files):
            full = os.path.join(top, name)
            try:
                st = os.stat(full)
            except OSError:
                continue
            sha.update(os.path.relpath(full, path).encode("utf-8", "surrogateescape") + b"\0")
            if content:
                with open(full, "rb") as fh:
                    sha.update(hashlib.sha256(fh.read()).digest())
            else:
                sha.update(b"%d:%d\0" % (st.st_size, st.st_mtime_ns))
    return sha.hexdigest()


def inputs(variables, trees, collection_root, salt):
    """What a run is fed: one salted digest per variable (names only are compared and shown, never
    values), one digest per source tree (a tree the controller does not have never matches: its
    files may be elsewhere, on a build host), one of the collection's own files."""
    return {
        "variables": {name: _sha(salt + canonical(value))[:16] for name, value in variables.items()},
        "trees": {path: tree_digest(path) or "missing:" + secrets.token_hex(8) for path in sorted(set(p for p in trees if p))},
        # Its code by content; deploy/ (Dockerfiles, the reference service) by names, sizes and times.
        "collection": "".join([tree_digest(os.path.join(collection_root, d), content=True)[:16]
                               for d in ("playbooks", "plugins", "roles", "meta")]
                              + [tree_digest(os.path.join(collection_root, "deploy"))[:16]]),
    }


def _diff_names(what, old, new):
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(k for k in set(old) & set(new) if old[k] != new[k])
    parts = (["%s added" % ", ".join(added)] if added else []) + (["%s removed" % ", ".join(removed)] if removed else []) \
        + (["%s changed" % ", ".join(changed)] if changed else [])
    return ["%s: %s" % (what, "; ".join(parts))] if parts else []


def differences(recorded, current_inputs, observed):
    """Every way the host differs from the recorded run, as lines to show; [] when it is the same."""
    if not recorded:
        return ["no run of site.yml has converged and proved this host from this controller yet"]
    old_in = recorded.get("inputs") or {}
    out = _diff_names("variables", old_in.get("variables") or {}, current_inputs["variables"])
    out += _diff_names("source trees", old_in.get("trees") or {}, current_inputs["trees"])
    if old_in.get("collection") != current_inputs["collection"]:
        out.append("the collection ktrdr.ops itself changed (its playbooks, plugins, roles, meta or deploy files)")
    old = recorded.get("observed") or {}
    before = {c["name"]: c for c in old.get("containers") or []}
    now = {c["name"]: c for c in observed.get("containers") or []}
    for name in sorted(set(before) | set(now)):
        b, n = before.get(name), now.get(name)
        if b is None:
            out.append("container %s is new" % name)
        elif n is None:
            out.append("container %s is gone" % name)
        else:
            out.extend("container %s: %s was %s, is %s" % (name, key, b.get(key), n.get(key))
                       for key in ("id", "image_id", "state", "health", "started_at") if b.get(key) != n.get(key))
    for key, what in (("images", "images on the engine"), ("strategies", "strategy files"), ("data", "market data files"),
                      ("dirs", "shared directories")):
        out += _diff_names(what, old.get(key) or {}, observed.get(key) or {})
    for key, what in (("release", "the current release"), ("schema_revision", "the schema revision"),
                      ("workers", "the registered workers")):
        if old.get(key) != observed.get(key):
            out.append("%s was %s, is %s" % (what, old.get(key) or "none", observed.get(key) or "none"))
    return out


# --- host side -------------------------------------------------------------------------------------

def _files(path, pattern_ext=None, content=False):
    """name -> sha256 (content) or size of the plain files directly in path; {} when it is missing."""
    out = {}
    try:
        names = os.listdir(path)
    except OSError:
        return out
    for name in sorted(names):
        full = os.path.join(path, name)
        if (pattern_ext and not name.endswith(pattern_ext)) or not os.path.isfile(full):
            continue
        if content:
            with open(full, "rb") as fh:
                out[name] = hashlib.sha256(fh.read()).hexdigest()[:16]
        else:
            out[name] = os.path.getsize(full)
    return out


def _dirs(paths):
    out = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out[path] = "missing"
            continue
        out[path] = "%o %d:%d" % (st.st_mode & 0o7777, st.st_uid, st.st_gid)
    return out


def _image_ids(api, refs):
    out = {}
    for ref in refs:
        try:
            out[ref] = api.inspect_image(ref)["Id"]
        except Exception:  # not there: a full run builds or sends it
            out[ref] = ""
    return out


def _authenticated_revision(api, containers, db):
    """The schema revision, read by logging in with the configured password over the network alias
    db (as the backend does, and as the database role checks it): '' without a running database here, 'refused: ...' when the login or the query fails."""
    running = next((c for c in containers if c["component"] == "db" and c["state"] == "running"), None)
    if running is None or not db.get("user"):
        return ""
    argv = ["psql", "-h", "db", "-U", db["user"], "-d", db.get("name") or db["user"], "-tAc",
            "SELECT version_num FROM alembic_version"]
    from ansible_collections.ktrdr.ops.plugins.module_utils._ledger import exec_output
    code, out = exec_output(api, running["name"], argv, environment={"PGPASSWORD": db.get("password") or ""})
    return out if code == 0 else "refused: %s" % out[-200:]


def observe(api, project, images=(), strategies_dir="", data_dir="", dirs=(), db=None, workers=None, release=None):
    """What this host has, as compared between runs (containers without their environment)."""
    from ansible_collections.ktrdr.ops.plugins.module_utils import _ledger
    containers = _ledger.project_containers(api, project)
    return {
        "containers": [{k: c[k] for k in ("name", "id", "image_id", "state", "health", "started_at") if k in c}
                       for c in containers],
        "images": _image_ids(api, sorted(set(images))),
        "strategies": _files(strategies_dir, ".yaml", content=True) if strategies_dir else {},
        "data": _files(data_dir) if data_dir else {},
        "dirs": _dirs(sorted(set(dirs))),
        "release": release or "",
        "schema_revision": _authenticated_revision(api, containers, db or {}),
        "workers": sorted(workers or []),
    }
