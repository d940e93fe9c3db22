#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: status_info
short_description: What runs on a host of a ktrdr environment, since when, who put it there - in one call
version_added: 0.2.0
description:
  - Per host, read-only - the environment's containers (image, the image's content hash, the release each belongs to,
    state, health, start), the release manifest (current release and previous one, the rollback targets), the deploy
    lock (and whether it is stale), the last O(audit_lines) lines of the audit log (a line that is not JSON is named in
    RV(audit_problems), never fatal), the database's schema revision when the database runs here, the workers registered
    with the backend when O(api_url) is given, and the last canary verdict when the controller has a report.
  - B(Version skew) - every worker container carries the release it belongs to (label C(io.ktrdr.release)); a worker
    whose release differs from the backend's (O(backend_release), or the backend container's own label when the backend
    runs here) is listed in RV(skew) and named in a warning.
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._attributes
  - ktrdr.ops._attributes.INFO_MODULE
  - ktrdr.ops._docker
options:
  root_dir:
    description: The environment's directory on this host (C(ktrdr_root_dir)), where the manifest, lock and audit log are.
    type: path
    required: true
  project:
    description: The environment's container prefix and label (C(io.ktrdr.project)).
    type: str
    required: true
  backend_release:
    description: The backend's release, for hosts that run workers but no backend; empty - the backend container on this host.
    type: str
    default: ""
  api_url:
    description: The backend's API, as seen from this host, to list the registered workers; empty - not asked.
    type: str
    default: ""
  api_token:
    description: Bearer token for O(api_url).
    type: str
  audit_lines:
    description: How many of the newest audit lines to return (V(0) - the log is not read).
    type: int
    default: 10
  canary_report:
    description: Path on the controller of the canary's report (C(canary-report.json)); the action plugin reads it.
    type: path
  canary:
    description: Set by the action plugin (the report's verdict); not to be given.
    type: dict
    default: {}
attributes:
  action:
    description: Has an action plugin - it reads the canary report on the controller and judges whether a lock is stale.
    support: full
seealso:
  - module: ktrdr.ops.deploy_lock
  - module: ktrdr.ops.audit
  - module: ktrdr.ops.containers_info
"""

EXAMPLES = r"""
- name: What runs on this host
  ktrdr.ops.status_info:
    root_dir: /var/lib/ktrdr/prod
    project: ktrdr-prod
    api_url: http://127.0.0.1:8000
  register: status

- name: No worker of another release
  ansible.builtin.assert:
    that: status.skew | length == 0
"""

RETURN = r"""
host:
  description: The host's containers, release, lock and audit, as below, in one dictionary (what C(playbooks/status.yml) writes as JSON).
  returned: always
  type: dict
containers:
  description:
    - The environment's containers on this host (name, id (12 characters), component, kind, worker_id, image, image_id,
      content_hash, release, state, health, started_at).
  returned: always
  type: list
  elements: dict
release:
  description: The release the backend runs (its container's label) or O(backend_release).
  returned: always
  type: str
releases:
  description: The manifest - current, previous (the rollback target) and the releases it remembers.
  returned: always
  type: dict
lock:
  description: The deploy lock's record with C(status) (V(held), V(stale) or V(unknown)); null when free.
  returned: always
  type: dict
audit:
  description: The newest O(audit_lines) audit entries, oldest first.
  returned: always
  type: list
  elements: dict
audit_problems:
  description: Lines of the audit log that are not entries, each naming the file and line.
  returned: always
  type: list
  elements: str
schema_revision:
  description: The database's Alembic revision when the database container runs here; empty otherwise.
  returned: always
  type: str
workers:
  description: Workers registered with the backend (worker_id, worker_type, status, endpoint_url, image_revision); only with O(api_url).
  returned: always
  type: list
  elements: dict
skew:
  description: Workers whose release is not the backend's (worker_id, container, release, backend_release).
  returned: always
  type: list
  elements: dict
canary:
  description: The last canary verdict the controller has (verdict, checked_at, proven_at); empty without a report.
  returned: always
  type: dict
summary:
  description: The same as lines to print.
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ktrdr.ops.plugins.module_utils import _docker, _ledger
from ansible_collections.ktrdr.ops.plugins.module_utils._docker import HAS_DOCKER_SDK


def schema_revision(api, containers):
    db = next((c for c in containers if c["component"] == "db" and c["state"] == "running"), None)
    if db is None:
        return ""
    # The container's own environment names the login (its shell expands it): no second inspect.
    query = 'psql -U "$POSTGRES_USER" -d "${POSTGRES_DB:-$POSTGRES_USER}" -tAc "SELECT version_num FROM alembic_version"'
    code, out = _ledger.exec_output(api, db["name"], ["sh", "-c", query])
    return out if code == 0 else "unreadable: %s" % out[-200:]


def summary_lines(s):
    releases = s["releases"]
    lines = ["release %s (previous %s), %d container(s)" % (
        releases.get("current") or "none", releases.get("previous") or "none", len(s["containers"]))]
    for c in s["containers"]:
        lines.append("  %-28s %-34s %s/%s  release %s  since %s" % (
            c["name"], c["image"], c["state"], c["health"], c["release"] or "-", (c["started_at"] or "")[:19]))
    if s["schema_revision"]:
        lines.append("  schema revision %s" % s["schema_revision"])
    if s["workers"]:
        lines.append("  registered: " + ", ".join("%s (%s)" % (w["worker_id"], w["status"]) for w in s["workers"]))
    for k in s["skew"]:
        lines.append("  SKEW: worker %s (%s) runs release %s, the backend %s" % (k["worker_id"], k["container"], k["release"], k["backend_release"]))
    if s["lock"]:
        lines.append("  lock: %s [%s]" % (_ledger.describe_lock(s["lock"]), s["lock"].get("status", "held")))
    if s["canary"]:
        lines.append("  last canary: %s (%s)" % (s["canary"].get("verdict"), s["canary"].get("checked_at")))
    for e in s["audit"][-3:]:
        lines.append("  audit: %s %s %s %s -> %s (%s s)" % (
            e.get("at"), e.get("who"), e.get("play"), e.get("release"), e.get("result"), e.get("duration_s")))
    lines.extend("  audit log: " + b for b in s["audit_problems"])
    return lines


def main():
    argument_spec = _docker.docker_argument_spec()
    argument_spec.update(
        root_dir=dict(type="path", required=True),
        project=dict(type="str", required=True),
        backend_release=dict(type="str", default=""),
        api_url=dict(type="str", default=""),
        api_token=dict(type="str", no_log=True),
        audit_lines=dict(type="int", default=10),
        canary_report=dict(type="path"),
        canary=dict(type="dict", default={}),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    if not HAS_DOCKER_SDK:
        module.fail_json(msg="ktrdr.ops.status_info needs the Docker SDK for Python on the host (python3-docker; the "
                             "ktrdr.ops.docker_host role installs it)")
    problems = []
    try:
        api = _docker.client_from_params(p).api
        containers = _ledger.project_containers(api, p["project"])
    except Exception as exc:
        module.fail_json(msg="Cannot read the containers from the Docker engine at %s: %s" % (p["docker_host"], exc))
    try:
        releases = _ledger.manifest_summary(p["root_dir"])
    except _ledger.LedgerError as exc:
        releases = {"current": None, "previous": None, "releases": []}
        problems.append(str(exc))
    try:
        lock = _ledger.read_json(os.path.join(p["root_dir"], _ledger.LOCK_FILE))
    except _ledger.LedgerError as exc:
        lock = {"holder": "?", "status": "unreadable"}
        problems.append(str(exc))
    audit, bad = _ledger.read_audit(os.path.join(p["root_dir"], _ledger.AUDIT_FILE), p["audit_lines"]) if p["audit_lines"] > 0 else ([], [])
    try:
        revision = schema_revision(api, containers)
    except Exception as exc:
        revision = "unreadable: %s" % exc
    workers = []
    if p["api_url"]:
        try:
            workers = _ledger.registered_workers(p["api_url"], p.get("api_token"))
        except Exception as exc:
            problems.append("the backend at %s did not list its workers: %s" % (p["api_url"], exc))
    backend = p["backend_release"] or _ledger.backend_release(containers)
    status = {
        "containers": containers, "release": backend, "releases": releases, "lock": lock, "audit": audit,
        "audit_problems": [line[1] for line in bad], "schema_revision": revision, "workers": workers,
        "skew": _ledger.skew(containers, backend), "canary": p["canary"], "problems": problems,
    }
    status["summary"] = summary_lines(status)
    warnings = ["version skew: worker %s (container %s) runs release %s, the backend release %s: re-run the deploy "
                "(playbooks/site.yml or upgrade.yml) to bring it to the backend's release"
                % (k["worker_id"], k["container"], k["release"], k["backend_release"])
                for k in status["skew"]] + status["audit_problems"] + problems
    module.exit_json(changed=False, host=status, warnings=warnings, **status)


if __name__ == "__main__":
    main()
