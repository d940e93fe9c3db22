#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: release_record
short_description: Record in a host's release manifest that a release was distributed to it or now runs on it
version_added: 0.2.0
description:
  - The manifest (C(releases.json), in the environment's directory on the host) says which releases the host holds, which
    one runs (C(current)) and which ran before it (C(previous), what rollback returns to). Upgrade, rollback, prune and
    status read it.
  - A release is named after its images (filter M(ktrdr.ops.release_id) gives the same id); an entry keeps its first
    C(distributed_at). O(event=deployed) makes it current (the one before becomes previous) and stores O(schema_revision)
    and O(backup_path) with it.
  - The oldest releases beyond O(history) are forgotten, never the current or the previous one.
  - The file is rewritten only when the manifest changed (a temp file renamed over it), so a converged re-run changes
    nothing.
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._attributes
options:
  path:
    description: The manifest file.
    type: path
    required: true
  event:
    description: V(distributed) (the images are on the host) or V(deployed) (they now run).
    type: str
    choices: [distributed, deployed]
    required: true
  images:
    description: The release's images (keys C(postgres), C(backend), C(worker_cpu), C(worker_gpu); other keys are ignored).
    type: dict
    required: true
  host_keys:
    description: Which of the images this host holds (its C(host_images) in the entry).
    type: list
    elements: str
    default: []
  schema_revision:
    description: With O(event=deployed) - the database revision that goes with the release.
    type: str
    default: ""
  backup_path:
    description: With O(event=deployed) - the pg_dump taken before the release's migrations.
    type: str
    default: ""
  history:
    description: How many releases the manifest remembers.
    type: int
    default: 10
  env:
    description: The environment's name, written in the manifest.
    type: str
    default: ""
  host:
    description: The inventory host, written in the manifest.
    type: str
    default: ""
attributes:
  check_mode:
    support: full
    details:
      - Returns the manifest it would write and writes nothing.
  diff_mode:
    support: full
  idempotent:
    support: partial
    details:
      - The same event with the same images changes nothing; a new release changes the manifest once.
seealso:
  - module: ktrdr.ops.status_info
"""

EXAMPLES = r"""
- name: Mark the release as deployed
  ktrdr.ops.release_record:
    path: /var/lib/ktrdr/prod/releases.json
    event: deployed
    images: "{{ ktrdr_images }}"
    host_keys: [backend, worker_cpu]
    schema_revision: 0007_operations_index
    env: prod
    host: "{{ inventory_hostname }}"
  register: release
"""

RETURN = r"""
id:
  description: The release's id (12 hex digits).
  returned: always
  type: str
  sample: 3f0c9a51b2de
manifest:
  description: The manifest as written (or, in check mode, as it would be).
  returned: always
  type: dict
  sample:
    format: 1
    env: prod
    host: ktrdr-core
    current: 3f0c9a51b2de
    previous: 9a1b2c3d4e5f
    releases:
      - id: 3f0c9a51b2de
        images: {backend: "ktrdr-backend:1a2b3c4d5e6f"}
        host_images: ["ktrdr-backend:1a2b3c4d5e6f"]
        distributed_at: "2026-12-03T06:00:00Z"
        deployed_at: "2026-12-03T06:01:10Z"
        schema_revision: 0007_operations_index
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ktrdr.ops.plugins.module_utils import _ledger


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            event=dict(type="str", required=True, choices=["distributed", "deployed"]),
            images=dict(type="dict", required=True),
            host_keys=dict(type="list", elements="str", default=[], no_log=False),
            schema_revision=dict(type="str", default=""),
            backup_path=dict(type="str", default=""),
            history=dict(type="int", default=10),
            env=dict(type="str", default=""),
            host=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        old = _ledger.read_json(p["path"])
        manifest, rid = _ledger.record_release(
            old, p["event"], p["images"], p["host_keys"], p["schema_revision"], p["backup_path"],
            p["history"], p["env"], p["host"])
        changed = manifest != old
        if changed and not module.check_mode:
            _ledger.write_json(p["path"], manifest)
    except (_ledger.LedgerError, OSError) as exc:
        module.fail_json(msg="%s: %s" % (p["path"], exc))
    result = dict(changed=changed, id=rid, manifest=manifest)
    if module._diff:
        result["diff"] = dict(before=json.dumps(old or {}, indent=2, sort_keys=True) + "\n",
                              after=json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                              before_header=p["path"], after_header=p["path"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
