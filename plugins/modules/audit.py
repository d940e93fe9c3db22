#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: audit
short_description: Append one line to a host's audit log of a ktrdr environment - who ran what, which release, the result
version_added: 0.2.0
description:
  - Every playbook that changes an environment ends with this on each of its hosts (and a failed one in its rescue), so
    that C(audit.jsonl) in O(root_dir), beside the release manifest, answers who put which release where, when, and how
    it went.
  - One JSON object per line - C(at), C(who) (C(user@controller)), C(play), C(run), C(host), C(env), C(release) (the
    host's current release), C(images) (each container of the environment on this host - its image and the image's
    content hash), C(schema_revision), C(result), C(duration_s) (since the playbook started) and C(message) (O(detail)).
  - The line is written with one C(O_APPEND) write, so lines of concurrent writers do not interleave.
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._attributes
  - ktrdr.ops._attributes.ACTIONGROUP_DOCKER
  - ktrdr.ops._docker
options:
  root_dir:
    description: The environment's directory on this host (C(ktrdr_root_dir)); the log is C(audit.jsonl) in it.
    type: path
    required: true
  project:
    description: The environment's container prefix and label (C(io.ktrdr.project)); its containers are listed.
    type: str
    required: true
  env:
    description: The environment's name.
    type: str
    default: ""
  result:
    description: How the run went (V(ok), V(failed), V(rolled-back), V(lock-broken), ...).
    type: str
    default: ok
  schema_revision:
    description: The database revision that goes with the release; empty - the one the host's manifest records for its current release.
    type: str
    default: ""
  detail:
    description: A line of context (the failure's cause, the maintenance message).
    type: str
    default: ""
  run:
    description: Set by the action plugin (who runs, since when); not to be given.
    type: dict
    default: {}
attributes:
  action:
    description: Has an action plugin that names the run on the controller.
    support: full
  check_mode:
    support: full
    details:
      - Returns the entry it would write and writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Each call appends a line (the run's own record); it reports C(changed=false) so that a converged re-run reads
        changed=0.
seealso:
  - module: ktrdr.ops.status_info
  - module: ktrdr.ops.deploy_lock
"""

EXAMPLES = r"""
- name: Record this run in the host's audit log
  ktrdr.ops.audit:
    root_dir: /var/lib/ktrdr/prod
    project: ktrdr-prod
    env: prod
    result: ok
"""

RETURN = r"""
entry:
  description: The line written (or, in check mode, that would be).
  returned: always
  type: dict
  sample: {at: "2026-12-02T19:31:07Z", who: root@ci-1, play: site.yml, host: gpu-1, env: prod, release: 3f2a9c1d0b7e,
           images: {ktrdr-prod-training-1: {image: "ktrdr-worker-gpu:9b1c2d3e4f5a", content_hash: 9b1c2d3e4f5a}},
           schema_revision: a1b2c3d4e5f6, result: ok, duration_s: 41.2, message: ""}
path:
  description: The audit log.
  returned: always
  type: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ktrdr.ops.plugins.module_utils import _docker, _ledger
from ansible_collections.ktrdr.ops.plugins.module_utils._docker import HAS_DOCKER_SDK


def main():
    argument_spec = _docker.docker_argument_spec()
    argument_spec.update(
        root_dir=dict(type="path", required=True),
        project=dict(type="str", required=True),
        env=dict(type="str", default=""),
        result=dict(type="str", default="ok"),
        schema_revision=dict(type="str", default=""),
        detail=dict(type="str", default=""),
        run=dict(type="dict", default={}),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p, run = module.params, module.params["run"]
    path = os.path.join(p["root_dir"], _ledger.AUDIT_FILE)
    containers, note = [], ""
    try:
        if not HAS_DOCKER_SDK:
            raise RuntimeError("the Docker SDK for Python is missing")
        containers = _ledger.project_containers(_docker.client_from_params(p).api, p["project"])
    except Exception as exc:  # the audit must never hide the run's own result
        note = "containers not read: %s" % exc
    try:
        manifest = _ledger.manifest_summary(p["root_dir"])
    except _ledger.LedgerError as exc:
        manifest, note = {"current": None, "releases": []}, (note + "; " if note else "") + str(exc)
    release = manifest["current"]
    schema = p["schema_revision"] or next((r.get("schema_revision", "") for r in manifest["releases"] if r.get("id") == release), "")
    now = time.time()
    entry = {
        "at": _ledger.iso(now), "who": run.get("holder", ""), "play": run.get("play", ""), "run": run.get("id", ""),
        "host": run.get("host", ""), "env": p["env"], "release": release,
        "images": {c["name"]: {"image": c["image"], "content_hash": c["content_hash"], "release": c["release"]} for c in containers},
        "schema_revision": schema, "result": p["result"],
        "duration_s": round(now - float(run["started_at"]), 1) if run.get("started_at") else None,
        "message": "; ".join(x for x in (p["detail"], note) if x),
    }
    if not module.check_mode:
        try:
            _ledger.append_audit(path, entry)
        except OSError as exc:
            module.fail_json(msg="cannot append to the audit log %s: %s (is %s writable by this user?)" % (path, exc, p["root_dir"]))
    module.exit_json(changed=False, entry=entry, path=path)


if __name__ == "__main__":
    main()
