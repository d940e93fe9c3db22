#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: workers_info
short_description: List the workers registered with a ktrdr backend, optionally waiting for them
version_added: 0.1.0
description:
  - Reads C(GET /api/v1/workers) and returns every registered worker (type, status, endpoint, capabilities including GPU and image revision).
  - With O(wait_for), polls until at least the given number of usable workers of each type are registered, and fails with a
    message naming what is missing when O(timeout) runs out.
  - With O(image_revision), only workers that report that revision in C(capabilities.image_revision) count, so a wait after an
    upgrade ends when the new workers (not the old ones) have registered.
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._api
  - ktrdr.ops._attributes
  - ktrdr.ops._attributes.INFO_MODULE
  - ktrdr.ops._attributes.ACTIONGROUP_API
options:
  worker_type:
    description:
      - Only list workers of this type.
    type: str
    choices: [backtesting, training, cpu_training, gpu_host, agent_design, agent_assessment]
  wait_for:
    description:
      - "Mapping of worker type to the least number of usable workers of that type, for example C({backtesting: 1, training: 1})."
      - A worker is usable when its status is C(available) or C(busy) (not C(temporarily_unavailable)).
      - The module polls until every count is met, or fails when O(timeout) is over.
    type: dict
  image_revision:
    description:
      - Only count (in RV(counts) and for O(wait_for)) workers whose C(capabilities.image_revision) equals this value.
      - All workers are still listed in RV(workers).
    type: str
  gpu:
    description:
      - Only count workers whose C(capabilities.gpu) is this value (V(true) to wait for a GPU training worker).
    type: bool
  timeout:
    description:
      - Seconds to wait for O(wait_for) to be met. Ignored without O(wait_for).
    type: float
    default: 120
  poll_interval:
    description:
      - Seconds between two looks at the worker list at first; the delay grows to 10 s with jitter.
    type: float
    default: 2
notes:
  - ktrdr workers register themselves with the backend at start-up and every few seconds after a backend restart, so a wait
    right after starting the containers is expected to need a few polls.
seealso:
  - module: ktrdr.ops.operation
"""

EXAMPLES = r"""
- name: Wait until one backtest and one training worker of the new image are registered
  ktrdr.ops.workers_info:
    api_url: http://localhost:8000
    wait_for:
      backtesting: 1
      training: 1
    image_revision: "{{ ktrdr_image_revision }}"
    timeout: 180
  register: workers

- name: Show which training workers have a GPU
  ansible.builtin.debug:
    msg: "{{ workers.workers | selectattr('worker_type', '==', 'training') | map(attribute='capabilities.gpu') | list }}"

- name: Fail unless a GPU training worker is usable
  ktrdr.ops.workers_info:
    api_url: http://localhost:8000
    wait_for:
      training: 1
    gpu: true
    timeout: 60
"""

RETURN = r"""
workers:
  description: Every registered worker as the backend reports it (filtered by O(worker_type) only).
  returned: always
  type: list
  elements: dict
  sample:
    - worker_id: training-worker-1
      worker_type: training
      endpoint_url: http://training-worker-1:5004
      status: available
      current_operation_id: null
      capabilities: {gpu: false, torch_version: 2.13.0+cpu, image_revision: 3f2a9c1d0b7e}
      last_health_check: "2026-11-22T21:50:01.123456+00:00"
      last_healthy_at: "2026-11-22T21:50:01.123456+00:00"
      health_check_failures: 0
      metadata: {}
counts:
  description:
    - Number of usable workers (status C(available) or C(busy)) per worker type, counting only those that match
      O(image_revision) and O(gpu) when given. Types with no worker are absent, except those named in O(wait_for) (shown as 0).
  returned: always
  type: dict
  sample: {backtesting: 1, training: 1}
status_counts:
  description: Number of workers per type and status, regardless of the filters.
  returned: always
  type: dict
  sample: {backtesting: {available: 1}, training: {busy: 1, temporarily_unavailable: 1}}
waited_seconds:
  description: How long the module waited for O(wait_for) (0 when it was met at once or not asked).
  returned: always
  type: float
  sample: 4.1
retry_log:
  description: One line per HTTP request that had to be retried.
  returned: always
  type: list
  elements: str
  sample: []
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ktrdr.ops.plugins.module_utils._api import (
    KtrdrAPIError,
    api_argument_spec,
    client_from_module,
)
from ansible_collections.ktrdr.ops.plugins.module_utils._wait import PollSchedule

USABLE = ("available", "busy")


def count_workers(workers, image_revision=None, gpu=None):
    """(counts of usable matching workers per type, counts per type and status)."""
    counts = {}
    status_counts = {}
    for w in workers:
        wtype = w.get("worker_type") or "unknown"
        status = w.get("status") or "unknown"
        status_counts.setdefault(wtype, {})
        status_counts[wtype][status] = status_counts[wtype].get(status, 0) + 1
        caps = w.get("capabilities") or {}
        if status not in USABLE:
            continue
        if image_revision is not None and caps.get("image_revision") != image_revision:
            continue
        if gpu is not None and bool(caps.get("gpu")) != gpu:
            continue
        counts[wtype] = counts.get(wtype, 0) + 1
    return counts, status_counts


def shortfall(wait_for, counts):
    """{type: (have, need)} for every type still below its count."""
    return {t: (counts.get(t, 0), n) for t, n in sorted(wait_for.items()) if counts.get(t, 0) < n}


def describe_shortfall(missing, workers, image_revision=None, gpu=None):
    parts = []
    for wtype, (have, need) in missing.items():
        of_type = [w for w in workers if w.get("worker_type") == wtype]
        notes = []
        unusable = [w for w in of_type if w.get("status") not in USABLE]
        if unusable:
            notes.append("%d %s" % (len(unusable), "/".join(sorted({w.get("status") or "unknown" for w in unusable}))))
        if image_revision is not None:
            other = sorted({str((w.get("capabilities") or {}).get("image_revision")) for w in of_type
                            if (w.get("capabilities") or {}).get("image_revision") != image_revision})
            if other:
                notes.append("other image revision: %s" % ", ".join(other))
        if gpu is not None:
            wrong = [w for w in of_type if bool((w.get("capabilities") or {}).get("gpu")) != gpu]
            if wrong:
                notes.append("%d with gpu=%s" % (len(wrong), not gpu))
        parts.append("%s >= %d (have %d%s)" % (wtype, need, have, "; registered but not counted: " + ", ".join(notes) if notes else ""))
    return ", ".join(parts)


def main():
    argument_spec = api_argument_spec()
    argument_spec.update(
        worker_type=dict(type="str", choices=["backtesting", "training", "cpu_training", "gpu_host", "agent_design", "agent_assessment"]),
        wait_for=dict(type="dict"),
        image_revision=dict(type="str"),
        gpu=dict(type="bool"),
        timeout=dict(type="float", default=120.0),
        poll_interval=dict(type="float", default=2.0),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params

    wait_for = {}
    for wtype, n in (p["wait_for"] or {}).items():
        try:
            n = int(n)
        except (TypeError, ValueError):
            module.fail_json(msg="wait_for.%s must be a whole number of workers, got %r" % (wtype, n))
        if n < 0:
            module.fail_json(msg="wait_for.%s must be 0 or more, got %d" % (wtype, n))
        wait_for[wtype] = n
    if p["poll_interval"] <= 0:
        module.fail_json(msg="poll_interval must be positive, got %s" % p["poll_interval"])

    client = client_from_module(module)
    params = {"worker_type": p["worker_type"]} if p["worker_type"] else None
    schedule = PollSchedule(p["poll_interval"], 10.0, p["timeout"] if wait_for else 0)

    while True:
        try:
            workers = client.get("/workers", params=params)
        except KtrdrAPIError as exc:
            module.fail_json(msg=str(exc), retry_log=client.retry_log, **exc.as_result())
        if not isinstance(workers, list):
            # ktrdr returns a bare list; an object here means this is not (this version of) ktrdr.
            module.fail_json(msg="GET %s returned %s, expected a JSON list of workers" % (client.url("/workers"), type(workers).__name__),
                             body=workers)
        counts, status_counts = count_workers(workers, p["image_revision"], p["gpu"])
        for wtype in wait_for:
            counts.setdefault(wtype, 0)
        missing = shortfall(wait_for, counts)
        if not missing:
            break
        if schedule.expired():
            module.fail_json(
                msg="Timed out after %.0fs waiting for workers at %s: need %s"
                % (schedule.elapsed(), client.url("/workers"), describe_shortfall(missing, workers, p["image_revision"], p["gpu"])),
                workers=workers,
                counts=counts,
                status_counts=status_counts,
                waited_seconds=round(schedule.elapsed(), 1),
                retry_log=client.retry_log,
            )
        time.sleep(schedule.next_delay())

    module.exit_json(
        changed=False,
        workers=workers,
        counts=counts,
        status_counts=status_counts,
        waited_seconds=round(schedule.elapsed(), 1) if wait_for else 0.0,
        retry_log=client.retry_log,
    )


if __name__ == "__main__":
    main()
