#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: deploy_lock
short_description: The deploy lock of a ktrdr environment, taken on its backend host by every play that changes it
version_added: 0.2.0
description:
  - One lock per environment, a file C(deploy.lock) in O(root_dir) on the backend host, beside the release manifest. It
    records the holder (C(user@controller)), the playbook, the controller's process, the start time and a message.
  - Taking it is atomic on the host (the record is written to a temporary file and hard-linked to C(deploy.lock),
    which fails when the file exists), so two runs cannot both believe they hold it.
  - The same run taking it again (a playbook that imports another that takes it) counts a depth; it is removed when
    the outermost playbook releases it.
  - Its action plugin (on the controller) names the run, waits up to O(wait) seconds while another run holds it,
    printing who, and recognises a lock as B(stale) when its holder's run was on this controller and has ended (a
    killed or interrupted run) - a stale lock is not waited for, it must be broken (O(state=broken)).
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._attributes
options:
  root_dir:
    description: The environment's directory on the backend host (C(ktrdr_root_dir)); the lock is C(deploy.lock) in it.
    type: path
    required: true
  state:
    description:
      - V(acquired) takes the lock (waits while another run holds it); V(released) gives it back (refused when another
        run or user holds it); V(broken) removes whatever lock is there and returns whose it was; V(present) only reads it.
    type: str
    choices: [acquired, released, broken, present]
    default: acquired
  kind:
    description:
      - V(run) - held while the playbook runs (stale once that run has ended); V(maintenance) - held until released,
        whoever runs (C(playbooks/lock.yml)).
    type: str
    choices: [run, maintenance]
    default: run
  reason:
    description: Why the lock is held; shown to whoever waits for it.
    type: str
    default: ""
  env:
    description: The environment's name, recorded in the lock.
    type: str
    default: ""
  wait:
    description: Seconds to wait while another live run holds the lock; V(0) fails at once, naming the holder.
    type: int
    default: 900
  all:
    description: With O(state=released), drop every depth this run took (a run that failed half-way).
    type: bool
    default: false
  run:
    description:
      - Set by the action plugin (the run on the controller - id, holder, pid, play); not to be given.
    type: dict
    default: {}
attributes:
  action:
    description: Has an action plugin - the controller side names the run, waits and judges staleness.
    support: full
  check_mode:
    support: full
    details:
      - Reads the lock and says what a real run would do; writes nothing and does not wait.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - Taking and giving back the lock is the run's own bookkeeping, not a change to the environment, so it reports
        C(changed=false) (a converged re-run stays at changed=0). Breaking a lock reports C(changed=true).
notes:
  - A lock held from another controller cannot be judged from here; it is waited for, and the message says how to break it.
seealso:
  - module: ktrdr.ops.audit
  - module: ktrdr.ops.status_info
"""

EXAMPLES = r"""
- name: Take the environment's deploy lock (waits up to 15 min)
  ktrdr.ops.deploy_lock:
    root_dir: /var/lib/ktrdr/prod
    env: prod
  delegate_to: "{{ groups['ktrdr_backend'] | first }}"
  run_once: true

- name: Hold it for maintenance
  ktrdr.ops.deploy_lock:
    root_dir: /var/lib/ktrdr/prod
    kind: maintenance
    reason: "database VACUUM FULL, back at 14:00"

- name: Break a stale lock
  ktrdr.ops.deploy_lock:
    root_dir: /var/lib/ktrdr/prod
    state: broken
"""

RETURN = r"""
acquired:
  description: Whether this run holds the lock now (O(state=acquired)).
  returned: always
  type: bool
released:
  description: Whether the lock file is gone (O(state=released) or V(broken)).
  returned: always
  type: bool
lock:
  description: The lock's record (holder, user, controller, pid, play, since, kind, message, depth, run); null when there is none.
  returned: always
  type: dict
  sample: {holder: root@ci-1, play: site.yml, since: "2026-12-02T19:20:01Z", kind: run, message: "", depth: 1, pid: 4242}
status:
  description: V(free), V(mine), V(held) (another live run or a maintenance lock), V(stale) (its run has ended) or V(unknown) (held from another controller).
  returned: always
  type: str
waited:
  description: Seconds spent waiting for another run's lock.
  returned: always
  type: float
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ktrdr.ops.plugins.module_utils import _ledger


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root_dir=dict(type="path", required=True),
            state=dict(type="str", default="acquired", choices=["acquired", "released", "broken", "present"]),
            kind=dict(type="str", default="run", choices=["run", "maintenance"]),
            reason=dict(type="str", default=""),
            env=dict(type="str", default=""),
            wait=dict(type="int", default=900),
            all=dict(type="bool", default=False),
            run=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    p = module.params
    path = os.path.join(p["root_dir"], _ledger.LOCK_FILE)
    write = not module.check_mode
    run = p["run"]
    if p["state"] != "present" and p["state"] != "broken" and not run.get("id"):
        module.fail_json(msg="ktrdr.ops.deploy_lock runs through its action plugin, which names the run; call it as ktrdr.ops.deploy_lock")
    try:
        if p["state"] == "acquired":
            acquired, lock = _ledger.acquire(path, run, p["kind"], p["reason"], p["env"], write=write)
            module.exit_json(changed=False, acquired=acquired, released=False, lock=lock, status="mine" if acquired else "held", waited=0.0)
        if p["state"] == "released":
            released, lock = _ledger.release(path, run, everything=p["all"], write=write)
            module.exit_json(changed=False, acquired=not released, released=released, lock=lock, status="free" if released else "mine", waited=0.0)
        if p["state"] == "broken":
            lock = _ledger.break_lock(path, write=write)
            module.exit_json(changed=lock is not None, acquired=False, released=True, lock=lock, status="free", waited=0.0)
        lock = _ledger.read_json(path)
        module.exit_json(changed=False, acquired=False, released=lock is None, lock=lock, status="free" if lock is None else "held", waited=0.0)
    except (_ledger.LedgerError, OSError) as exc:
        module.fail_json(msg="deploy lock %s: %s" % (path, exc))


if __name__ == "__main__":
    main()
