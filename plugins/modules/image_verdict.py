#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: image_verdict
short_description: Judge the probed split images - torch absent or present as labelled, no root, the backend's size budget
version_added: 0.2.0
description:
  - Takes what the images role's probe found in each image (O(probes)), their sizes and torch labels, and fails with every
    problem at once - the backend contains a forbidden module (torch), a worker's torch is not the build its
    C(io.ktrdr.torch) label says, an image runs as root, or the backend breaks its size budget.
  - The size budget is the backend's size as a fraction of worker-cpu's (O(max_ratio)); an absolute cap (O(max_mb)) is
    opt-in. Over budget, the message names the backend's five largest packages.
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._attributes
  - ktrdr.ops._attributes.INFO_MODULE
options:
  images:
    description:
      - Image key (V(backend), V(worker_cpu), V(worker_gpu), ...) to at least C(ref) and C(torch) (the C(io.ktrdr.torch)
        label - V(absent), V(cpu) or V(cuda-<version>)), as the images role plans them.
    type: dict
    required: true
  probes:
    description:
      - Image key to what the probe found in it - C(torch) (version or null), C(cuda), C(uid), C(modules) (name to
        present), C(packages) (distribution to bytes). Only the images probed are judged.
    type: dict
    required: true
  sizes:
    description: Image reference to its size in bytes.
    type: dict
    default: {}
  forbidden_modules:
    description: Python modules the backend must not contain.
    type: list
    elements: str
    default: [torch]
  max_ratio:
    description: Largest backend size as a fraction of worker-cpu's; 0 disables the check.
    type: float
    default: 0.4
  max_mb:
    description: Largest backend size in MB (10^6 bytes); 0 (the default) disables the check.
    type: float
    default: 0
seealso:
  - module: ktrdr.ops.torch_wheel_info
"""

EXAMPLES = r"""
- name: Judge the images
  ktrdr.ops.image_verdict:
    images:
      backend: {ref: "ktrdr-backend:0123456789ab", torch: absent}
      worker_cpu: {ref: "ktrdr-worker-cpu:0123456789ab", torch: cpu}
    probes: "{{ probes }}"
    sizes: {"ktrdr-backend:0123456789ab": 210000000, "ktrdr-worker-cpu:0123456789ab": 900000000}
"""

RETURN = r"""
summary:
  description: One line per image - ref, torch as found, size.
  returned: success
  type: list
  elements: str
  sample: ["ktrdr-worker-cpu:0123456789ab: torch 2.8.0 (CUDA build, running on CPU), 6120.4 MB"]
backend_largest:
  description: The backend's five largest packages, as C(name (MB)).
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ktrdr.ops.plugins.module_utils import _image_plan as plan


def merged(images, probes, sizes):
    """Every planned image with its probe ({} when not probed) and its size."""
    return {k: dict(v or {}, probe=probes.get(k) or {}, size=sizes.get((v or {}).get("ref"), 0)) for k, v in images.items()}


def problems_of(images, forbidden, max_ratio, max_mb):
    out = []
    for key, img in sorted(images.items()):
        probe, ref, label = img.get("probe") or {}, img.get("ref", key), img.get("torch", "")
        if not probe:
            continue
        if probe.get("uid") == 0:
            out.append("%s runs as root." % ref)
        if key == "backend":
            found = sorted(m for m in forbidden if (probe.get("modules") or {}).get(m))
            if found:
                out.append("%s contains %s: the backend's requirement list must not pull these in." % (ref, ", ".join(found)))
            continue
        want_cuda = label[len("cuda-"):] if label.startswith("cuda-") else None
        if probe.get("torch") is None:
            out.append("%s has no torch." % ref)
        elif probe.get("cuda") != want_cuda:
            out.append("%s is labelled io.ktrdr.torch=%s but its torch %s reports CUDA %s." % (
                ref, label, probe.get("torch"), probe.get("cuda")))
    backend, cpu = images.get("backend") or {}, images.get("worker_cpu") or {}
    budget = plan.budget_problems(int(backend.get("size") or 0), int(cpu.get("size") or 0), max_ratio, max_mb,
                                  (backend.get("probe") or {}).get("packages"))
    if budget:
        out.append("%s: %s." % (backend.get("ref", "backend"), "; ".join(budget)))
    return out


def summary_of(images):
    lines = []
    for key, img in sorted(images.items()):
        probe, label = img.get("probe") or {}, img.get("torch", "")
        if not probe:
            lines.append("%s: %.1f MB" % (img.get("ref", key), int(img.get("size") or 0) / 1e6))
            continue
        torch = "no torch" if probe.get("torch") is None else "torch %s (%s)" % (
            probe["torch"], "CPU build" if label == "cpu" else
            ("CUDA build, running on CPU" if key == "worker_cpu" else "CUDA %s" % probe.get("cuda")))
        lines.append("%s: %s, %.1f MB" % (img.get("ref", key), torch, int(img.get("size") or 0) / 1e6))
    return lines


def main():
    module = AnsibleModule(
        argument_spec=dict(
            images=dict(type="dict", required=True),
            probes=dict(type="dict", required=True),
            sizes=dict(type="dict", default={}),
            forbidden_modules=dict(type="list", elements="str", default=["torch"]),
            max_ratio=dict(type="float", default=0.4),
            max_mb=dict(type="float", default=0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    images = merged(p["images"], p["probes"], p["sizes"])
    problems = problems_of(images, p["forbidden_modules"], p["max_ratio"], p["max_mb"])
    largest = plan.largest(((images.get("backend") or {}).get("probe") or {}).get("packages"))
    if problems:
        module.fail_json(msg=" ".join(problems), problems=problems, backend_largest=largest)
    module.exit_json(changed=False, summary=summary_of(images), backend_largest=largest)


if __name__ == "__main__":
    main()
