#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: converged
short_description: Is a host still as the last proven run of site.yml left it - asked in one call
version_added: 0.3.0
description:
  - B(Compare) (the default) - the action plugin digests what the controller feeds this run (every collection setting
    of the host - C(ktrdr_*) and the role-prefixed ones - one salted digest each; the source trees O(trees) by names,
    sizes and times; the collection's own playbooks, plugins, roles and meta by content), the module reads what the
    host has (the environment's containers with their id, image, state, health and start; the images O(images) name;
    the current release; the schema revision read by logging in with O(db_password); the strategy files and their
    SHA-256; the market data files; the mode and owner of O(dirs); the workers registered with the backend at
    O(api_url)), and both are compared with the record the last proven run left on the controller. RV(converged) says
    whether nothing differs; RV(differences) names every difference.
  - The comparison keeps the digests of this run's inputs on the controller (C(<record_dir>/<inventory_hostname>.pending.json),
    mode 0600) and never returns them; a host that differs loses its record, so a run that does not end proven leaves none.
  - B(Record) (O(record=true), at the end of a run that deployed and validated) - the host is read again and written,
    with the inputs kept by the comparison at the start of the run, as C(<record_dir>/<inventory_hostname>.json) on the
    controller. The records are the controller's memory, not a change of the environment - the module reports
    C(changed=false); check mode writes nothing.
  - Never returns a value of a setting or its digest, only its name when it changed; never the containers' environment.
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._attributes
  - ktrdr.ops._docker
  - ktrdr.ops._attributes.ACTIONGROUP_DOCKER
options:
  project:
    description: The environment's container prefix and label (C(io.ktrdr.project)).
    type: str
    required: true
  root_dir:
    description: The environment's directory on this host; its release manifest names the current release.
    type: path
    required: true
  record_dir:
    description: Directory on the controller of the records, one file per host.
    type: path
    required: true
  record:
    description: V(false) - compare; V(true) - write the record (after a comparison in the same run).
    type: bool
    default: false
  allow_skip:
    description: Whether the run may skip its steps when the host is converged (RV(skip)); V(false) - a full run all the same.
    type: bool
    default: true
  trees:
    description:
      - Source trees on the controller whose files feed the run (the ktrdr checkout, the strategies); empty names are left out.
      - A tree the controller does not have never matches (its files may be on a build host) - every run is then done in full.
    type: list
    elements: str
    default: []
  images:
    description: The build's images (C(ktrdr_images) - the build record, whose image keys name them - or a list of references); each is looked up on the engine.
    type: raw
    default: {}
  strategies_dir:
    description: The strategies directory on this host (empty - not read).
    type: str
    default: ""
  data_dir:
    description: The market data directory on this host (empty - not read).
    type: str
    default: ""
  dirs:
    description: Directories whose mode and owner are compared.
    type: list
    elements: str
    default: []
  db_user:
    description: The database login; with a running database container here the schema revision is read with it.
    type: str
    default: ""
  db_name:
    description: The database.
    type: str
    default: ""
  db_password:
    description: Its password - a login it no longer opens is a difference.
    type: str
    default: ""
  api_url:
    description: The backend's API as seen from this host, to list the registered workers (empty - not asked).
    type: str
    default: ""
  api_token:
    description: Bearer token for O(api_url).
    type: str
attributes:
  action:
    description: Has an action plugin - the digests and the records are on the controller.
    support: full
  check_mode:
    support: full
    details:
      - It reads in check mode; O(record=true) writes nothing in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - It changes nothing on the host; the record is written with C(changed=false).
notes:
  - The comparison errs one way only - a touched source file, a changed setting, a restarted container or a worker that
    registered again is a difference, and the run is done in full (which then finds nothing to do and records anew).
  - The records are kept with mode 0600 - their salted digests of the settings include the secrets'.
seealso:
  - module: ktrdr.ops.status_info
"""

EXAMPLES = r"""
- name: Compare this host with the last proven run
  ktrdr.ops.converged:
    project: ktrdr-local
    root_dir: /var/lib/ktrdr/local
    record_dir: "{{ ktrdr_artifacts_dir }}/converged"
    trees: ["{{ ktrdr_source_dir }}"]
    images: "{{ ktrdr_images }}"
    strategies_dir: /var/lib/ktrdr/local/strategies
  register: state

- name: Say why a full run is needed
  ansible.builtin.debug:
    var: state.differences
  when: not state.converged
"""

RETURN = r"""
converged:
  description: Nothing differs from the record (V(false) with O(record=true)).
  returned: always
  type: bool
skip:
  description: RV(converged) and O(allow_skip) - the run may skip its steps for this host.
  returned: always
  type: bool
differences:
  description: Every difference, one line each (a setting or tree by name, a container by name and field).
  returned: always
  type: list
  elements: str
observed:
  description: What the host has, as compared.
  returned: always
  type: dict
recorded_at:
  description: When the record compared with was written (empty - none).
  returned: always
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ktrdr.ops.plugins.module_utils import _converged, _docker, _ledger
from ansible_collections.ktrdr.ops.plugins.module_utils._docker import HAS_DOCKER_SDK


def image_refs(images):
    """The references of ktrdr_images (the build record: its image keys) or of a plain list."""
    if isinstance(images, dict):
        return sorted(_ledger.release_images(images).values())
    return [str(i) for i in images or [] if i]


def main():
    argument_spec = _docker.docker_argument_spec()
    argument_spec.update(
        project=dict(type="str", required=True),
        root_dir=dict(type="path", required=True),
        record_dir=dict(type="path", required=True),
        record=dict(type="bool", default=False),
        allow_skip=dict(type="bool", default=True),
        trees=dict(type="list", elements="str", default=[]),
        images=dict(type="raw", default={}),
        strategies_dir=dict(type="str", default=""),
        data_dir=dict(type="str", default=""),
        dirs=dict(type="list", elements="str", default=[]),
        db_user=dict(type="str", default=""),
        db_name=dict(type="str", default=""),
        db_password=dict(type="str", default="", no_log=True),
        api_url=dict(type="str", default=""),
        api_token=dict(type="str", no_log=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    if not HAS_DOCKER_SDK:
        module.fail_json(msg="ktrdr.ops.converged needs the Docker SDK for Python on the host (python3-docker; the "
                             "ktrdr.ops.docker_host role installs it)")
    workers = None
    if p["api_url"]:
        try:
            workers = [w["worker_id"] for w in _ledger.registered_workers(p["api_url"], p.get("api_token"))]
        except Exception as exc:  # a backend that does not answer is a difference, not an error
            workers = ["(the backend at %s did not answer: %s)" % (p["api_url"], exc)]
    try:
        release = _ledger.manifest_summary(p["root_dir"]).get("current") if os.path.isdir(p["root_dir"]) else ""
    except _ledger.LedgerError as exc:
        release = "(unreadable: %s)" % exc
    try:
        api = _docker.client_from_params(p).api
        observed = _converged.observe(
            api, p["project"], images=image_refs(p["images"]), strategies_dir=p["strategies_dir"], data_dir=p["data_dir"],
            dirs=p["dirs"], db={"user": p["db_user"], "name": p["db_name"], "password": p["db_password"]},
            workers=workers, release=release)
    except Exception as exc:
        module.fail_json(msg="Cannot read the environment %s from the Docker engine at %s: %s" % (p["project"], p["docker_host"], exc))
    module.exit_json(changed=False, observed=observed)


if __name__ == "__main__":
    main()
