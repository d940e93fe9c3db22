#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: wheelhouse
short_description: Download the wheels of a requirement list for a target Python and platform, once, atomically
version_added: 0.2.0
description:
  - Runs C(pip download --only-binary=:all:) with the build host's own pip (its index, proxy and CA settings) for the
    Python version, ABI and platform tags of an image's base, into O(dest).
  - pip writes into C(<dest>.partial), which is renamed to O(dest) only once complete; when O(dest) exists nothing is
    downloaded. A failed download leaves nothing behind and fails naming each requirement pip could not find and, with
    O(lock), the line of the source's C(uv.lock) that pins it.
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports whether O(dest) would be downloaded; writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  dest:
    description: The wheelhouse directory (named after its inputs by the caller).
    type: path
    required: true
  requirements:
    description: The requirement file pip reads (C(-r)).
    type: path
    required: true
  pip_python:
    description: The Python whose pip downloads.
    type: path
    required: true
  python_version:
    description: The target Python version (C(3.13.5)).
    type: str
    required: true
  platforms:
    description: The platform tags the target accepts, newest first (C(manylinux_2_41_x86_64), ...).
    type: list
    elements: str
    required: true
  extra_index_url:
    description: An extra index for this list (PyTorch's CPU index, say); empty for none.
    type: str
    default: ""
  extra_args:
    description: More arguments for C(pip download).
    type: list
    elements: str
    default: []
  lock:
    description: The source's C(uv.lock), to name the line that pins a requirement pip could not find.
    type: path
  label:
    description: What the list is for, in messages (the image key).
    type: str
    default: ""
seealso:
  - module: ktrdr.ops.image_plan
"""

EXAMPLES = r"""
- name: Download the backend's wheels
  ktrdr.ops.wheelhouse:
    dest: /var/cache/ktrdr/wheelhouse/backend-0123456789ab
    requirements: /var/cache/ktrdr/inputs/backend/ktrdr-image.txt
    pip_python: /usr/bin/python3
    python_version: 3.13.5
    platforms: [manylinux_2_41_x86_64, manylinux2014_x86_64, linux_x86_64]
    lock: /src/ktrdr/uv.lock
    label: backend
"""

RETURN = r"""
dest:
  description: The wheelhouse directory.
  returned: always
  type: str
wheels:
  description: How many wheels it holds (after a download, or already).
  returned: success
  type: int
missing:
  description: On failure, each requirement pip could not find, with the uv.lock line that pins it when known.
  returned: failure
  type: list
  elements: str
  sample: ["pyyaml==99.0.0 (uv.lock line 1143: version = \"99.0.0\")"]
"""

import os
import re
import shutil

from ansible.module_utils.basic import AnsibleModule

_NOT_FOUND = re.compile(r"No matching distribution found for (\S+)")


def lock_line(lock_text, requirement):
    """The 1-based line of uv.lock that pins requirement ('name==version'), as 'line N: <text>', or ''."""
    name = re.split(r"[=<>!~;\[ ]", requirement, 1)[0]
    norm = re.sub(r"[-_.]+", "-", name).lower()
    lines = (lock_text or "").splitlines()
    for i, line in enumerate(lines):
        m = re.match(r'^name\s*=\s*"([^"]+)"', line)
        if m and re.sub(r"[-_.]+", "-", m.group(1)).lower() == norm and i + 1 < len(lines) \
                and lines[i + 1].startswith("version"):
            return "line %d: %s" % (i + 2, lines[i + 1].strip())
    return ""


def explain(stderr, lock_path):
    lock_text = ""
    if lock_path and os.path.isfile(lock_path):
        with open(lock_path, encoding="utf-8") as f:
            lock_text = f.read()
    out = []
    for req in _NOT_FOUND.findall(stderr or ""):
        where = lock_line(lock_text, req)
        out.append("%s (%s %s)" % (req, os.path.basename(lock_path), where) if where else req)
    return out


def _count(path):
    return len([n for n in os.listdir(path) if n.endswith(".whl")])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type="path", required=True),
            requirements=dict(type="path", required=True),
            pip_python=dict(type="path", required=True),
            python_version=dict(type="str", required=True),
            platforms=dict(type="list", elements="str", required=True),
            extra_index_url=dict(type="str", default=""),
            extra_args=dict(type="list", elements="str", default=[]),
            lock=dict(type="path"),
            label=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    p = module.params
    dest, partial = p["dest"], p["dest"] + ".partial"
    if os.path.isdir(dest):
        module.exit_json(changed=False, dest=dest, wheels=_count(dest))
    if module.check_mode:
        module.exit_json(changed=True, dest=dest, wheels=0)
    major, minor = p["python_version"].split(".")[:2]
    argv = [p["pip_python"], "-m", "pip", "download", "--disable-pip-version-check", "--progress-bar", "off",
            "--dest", partial, "--only-binary=:all:", "--implementation", "cp", "--python-version", p["python_version"],
            "--abi", "cp%s%s" % (major, minor)] + ["--platform=%s" % t for t in p["platforms"]]
    if p["extra_index_url"]:
        argv += ["--extra-index-url", p["extra_index_url"]]
    argv += p["extra_args"] + ["-r", p["requirements"]]
    shutil.rmtree(partial, ignore_errors=True)
    rc, stdout, stderr = module.run_command(argv)
    if rc != 0:
        shutil.rmtree(partial, ignore_errors=True)
        errors = [line for line in (stderr or "").splitlines() if line.startswith("ERROR: ")]
        missing = explain(stderr, p["lock"])
        module.fail_json(
            msg="pip could not download the wheels of %s (Python %s, %s): %s" % (
                p["label"] or p["requirements"], p["python_version"], p["platforms"][0] if p["platforms"] else "",
                ("no release of %s for this Python and platform on the index" % ", ".join(missing)) if missing
                else (" ".join(errors) or (stderr or stdout)[-600:])),
            missing=missing, rc=rc, stderr=(stderr or "")[-3000:], cmd=" ".join(argv), dest=dest)
    os.rename(partial, dest)
    module.exit_json(changed=True, dest=dest, wheels=_count(dest))


if __name__ == "__main__":
    main()
