#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: torch_wheel_info
short_description: Tell what the torch wheel of each worker's wheelhouse is (CPU or CUDA) and label the worker by it
version_added: 0.2.0
description:
  - Reads C(torch/version.py) out of the torch wheel in each wheelhouse of O(wheelhouses), before anything is built, and
    decides the worker's C(io.ktrdr.torch) label - V(cpu), or V(cuda-<version>).
  - worker-gpu must get a CUDA build. worker-cpu should get a CPU build; when pip found only a CUDA build (no CPU build
    of that torch for the base's Python on any reachable index) it is refused, or with O(cpu_fallback=cuda) taken,
    labelled C(cuda-<version>) (never V(cpu)) and reported in a warning with its size cost.
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._attributes
  - ktrdr.ops._attributes.INFO_MODULE
options:
  wheelhouses:
    description: Worker key (V(worker_cpu), V(worker_gpu)) to the directory of its downloaded wheels.
    type: dict
    required: true
  cpu_fallback:
    description: What worker-cpu does with a CUDA build - V(cuda) takes it (with a warning), V(fail) refuses it.
    type: str
    choices: [cuda, fail]
    default: cuda
seealso:
  - module: ktrdr.ops.image_plan
"""

EXAMPLES = r"""
- name: Label the workers by their torch wheels
  ktrdr.ops.torch_wheel_info:
    wheelhouses:
      worker_cpu: /var/cache/ktrdr/wheelhouse/worker_cpu-0123456789ab
  register: wheels
"""

RETURN = r"""
torch:
  description: Per worker key, the wheel's file name, its CUDA version (null for CPU), the label, whether worker-cpu
    fell back to a CUDA build, and the MB the CUDA wheels (torch, nvidia-*, triton) weigh in the wheelhouse.
  returned: success
  type: dict
  sample:
    worker_cpu: {wheel: torch-2.8.0-cp313-cp313-manylinux_2_28_x86_64.whl, cuda: "12.8", label: cuda-12.8,
                 fallback: true, cuda_wheels_mb: 3321.4}
"""

import glob
import os
import re
import zipfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ktrdr.ops.plugins.module_utils import _image_plan as plan

_CUDA_WHEELS = re.compile(r"^(torch|triton|pytorch_triton|nvidia_[a-z0-9_]+|cuda_[a-z_]+)-", re.I)


def read_wheelhouse(path):
    wheels = sorted(glob.glob(os.path.join(path, "torch-*.whl")))
    if not wheels:
        raise plan.PlanError("%s holds no torch wheel: the download did not include torch; check the torch spec." % path)
    with zipfile.ZipFile(wheels[0]) as z:
        cuda = plan.wheel_cuda(z.read("torch/version.py").decode())
    size = sum(os.path.getsize(w) for w in glob.glob(os.path.join(path, "*.whl"))
               if _CUDA_WHEELS.match(os.path.basename(w)))
    return os.path.basename(wheels[0]), cuda, round(size / 1e6, 1)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            wheelhouses=dict(type="dict", required=True),
            cpu_fallback=dict(type="str", choices=["cuda", "fail"], default="cuda"),
        ),
        supports_check_mode=True,
    )
    out = {}
    try:
        for key, path in sorted(module.params["wheelhouses"].items()):
            wheel, cuda, size = read_wheelhouse(path)
            verdict = plan.torch_label(key, wheel, cuda, module.params["cpu_fallback"])
            if verdict["warning"]:
                module.warn("%s The CUDA wheels weigh %.0f MB." % (verdict["warning"], size))
            out[key] = {"wheel": wheel, "cuda": cuda, "label": verdict["label"], "fallback": verdict["fallback"],
                        "cuda_wheels_mb": size if cuda else 0.0}
    except (plan.PlanError, OSError, KeyError, zipfile.BadZipFile) as e:
        module.fail_json(msg=str(e))
    module.exit_json(changed=False, torch=out)


if __name__ == "__main__":
    main()
