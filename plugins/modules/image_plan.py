#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: image_plan
short_description: Read a ktrdr source tree and decide the base, the database base and the torch of the split images
version_added: 0.2.0
description:
  - Reads the source tree O(source_dir) on the build host (C(pyproject.toml), C(uv.lock), the requirement files, the git
    revision) and decides, before anything is built, what the images role builds from.
  - B(Base) - O(base_image) when set; else the lowest Python that a Debian suite of O(suites) ships and the source's
    C(requires-python) admits, as the registry image C(python:X.Y-slim) (tried first) and that suite (the debootstrap
    fallback). ktrdr (C(>=3.12,<3.14)) gets Python 3.13 on trixie, the reference (C(>=3.11)) 3.11 on bookworm.
  - B(Database base) - the Debian suite that ships O(postgres_major), independent of the application's Python, so that
    the PostgreSQL major never changes because the application's Python did.
  - B(torch) - each worker's requirement is its explicit spec when set, else C(torch==<version>) when C(uv.lock) pins
    torch, else the default. worker-cpu adds O(torch_cpu_index_url) only when that index answers; otherwise the build
    host's pip configuration decides and M(ktrdr.ops.torch_wheel_info) tells afterwards what it got.
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads files and, when O(torch_cpu_index_url) is set, sends one HTTP GET to it; changes nothing, in check mode or not.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  idempotent:
    support: full
options:
  source_dir:
    description: The ktrdr source tree (a real ktrdr checkout or the reference service).
    type: path
    required: true
  base_image:
    description: An explicit base image for the Python images (C(ktrdr_base_image)); empty decides from C(requires-python).
    type: str
    default: ""
  suite:
    description: An explicit Debian suite for the debootstrap base (C(images_debootstrap_suite)); empty decides.
    type: str
    default: ""
  suites:
    description: The Debian suites a base can be made from, with the Python version each ships.
    type: dict
    default: {bookworm: 3.11.2, trixie: 3.13.5}
  debootstrap:
    description: The inputs of the Debian base images (debootstrap), which name them.
    type: dict
    default: {}
    suboptions:
      name:
        description: The image name (the tag is C(<suite>-<hash of the inputs>)).
        type: str
        default: ktrdr-base
      mirror:
        description: The Debian mirror.
        type: str
        default: http://deb.debian.org/debian
      packages:
        description: The packages installed into the root file system.
        type: list
        elements: str
        default: [python3, python3-venv, tini, ca-certificates]
  postgres_major:
    description: The PostgreSQL major of the database image.
    type: int
    default: 15
  postgres_suites:
    description: The Debian suite that ships each PostgreSQL major.
    type: dict
    default: {"15": bookworm, "17": trixie}
  torch_cpu_spec:
    description: An explicit torch requirement for worker-cpu; empty takes the lock's version, else O(torch_default_cpu_spec).
    type: str
    default: ""
  torch_cuda_spec:
    description: An explicit torch requirement for worker-gpu; empty takes the lock's version, else O(torch_default_cuda_spec).
    type: str
    default: ""
  torch_default_cpu_spec:
    description: worker-cpu's torch when neither a spec nor the lock says.
    type: str
    default: torch==2.13.0
  torch_default_cuda_spec:
    description: worker-gpu's torch when neither a spec nor the lock says.
    type: str
    default: torch==2.14.1
  torch_cpu_index_url:
    description: The CPU wheel index worker-cpu uses when it answers; empty uses only the build host's pip configuration.
    type: str
    default: https://download.pytorch.org/whl/cpu
  torch_cuda_index_url:
    description: An extra index for worker-gpu's torch; empty for none.
    type: str
    default: ""
  index_timeout:
    description: Seconds the probe of O(torch_cpu_index_url) may take.
    type: int
    default: 5
notes:
  - A C(uv.lock) older than C(pyproject.toml) (the project's requirements it records differ) is refused before
    anything is exported (C(uv export --frozen) would export the old lock). This check needs Python 3.11 or later on
    the build host (C(tomllib)).
  - A source needs C(pyproject.toml), the package directory C(ktrdr/), and either C(requirements/backend.txt) +
    C(requirements/worker.txt) or a C(uv.lock); otherwise the module fails naming what is missing.
seealso:
  - module: ktrdr.ops.torch_wheel_info
  - module: ktrdr.ops.image_verdict
"""

EXAMPLES = r"""
- name: Decide the base and the torch of each image
  ktrdr.ops.image_plan:
    source_dir: /src/ktrdr
  register: plan

- name: Say it
  ansible.builtin.debug:
    msg: "{{ plan.base.reason }}; worker-cpu installs {{ plan.torch.worker_cpu.spec }}"
"""

RETURN = r"""
source:
  description: What the source tree says.
  returned: success
  type: dict
  contains:
    dir: {description: "The source directory, symlinks resolved.", type: str}
    version: {description: "[project] version, else ktrdr/__init__.py's __version__, else 0+unknown.", type: str}
    revision: {description: "The git commit, with C(-dirty) when tracked files changed; C(unknown) outside git.", type: str}
    requires_python: {description: "[project] requires-python, empty when unset.", type: str}
    layout: {description: "V(requirements) (requirements/*.txt) or V(uv) (uv.lock).", type: str}
    torch_locked: {description: "The torch version uv.lock pins, empty when none.", type: str}
  sample: {dir: /src/ktrdr, version: 1.0.7.2, revision: 2c5c7173, requires_python: ">=3.12,<3.14", layout: uv,
           torch_locked: 2.8.0}
base:
  description: The base of the Python images.
  returned: success
  type: dict
  contains:
    image: {description: "The registry image to use when the engine has or can pull it.", type: str}
    suite: {description: "The Debian suite to debootstrap otherwise (bookworm when only O(base_image) fits).", type: str}
    debootstrap: {description: "The Debian base of that suite: C(ref) (image:tag) and C(dir) (cache directory name).",
                  type: dict}
    python: {description: "The Python minor chosen (null for an explicit O(base_image)).", type: str}
    reason: {description: "Why, in one line for the build summary.", type: str}
  sample: {image: python:3.13-slim, suite: trixie, python: "3.13", reason: "requires-python >=3.12,<3.14: Python 3.13 (...)"}
postgres:
  description: The database image's major and the suite its base is made from.
  returned: success
  type: dict
  sample: {major: 15, suite: bookworm, debootstrap: {ref: "ktrdr-base:bookworm-0123456789ab", dir: bookworm-0123456789ab}}
torch:
  description: Per worker, the torch requirement (C(spec)), where it came from (C(from)), the extra index used (C(index)).
  returned: success
  type: dict
  sample: {worker_cpu: {spec: torch==2.8.0, from: "the source's uv.lock", index: "", index_note: "..."}}
"""

import os
import subprocess

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.ktrdr.ops.plugins.module_utils import _image_plan as plan


def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _revision(source_dir):
    def git(*args):
        return subprocess.run(["git", "-C", source_dir] + list(args), capture_output=True, text=True, check=False)
    try:
        head = git("rev-parse", "HEAD")
    except OSError:
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".").stdout.strip()
    return head.stdout.strip() + ("-dirty" if dirty else "")


def _check_lock(source_dir, pyproject_text, lock_text):
    """Refuse a uv.lock older than pyproject.toml (Python >= 3.11 has tomllib; older build hosts skip this)."""
    try:
        import tomllib
    except ImportError:
        return
    if lock_text is None:
        return
    try:
        pyproject, lock = tomllib.loads(pyproject_text), tomllib.loads(lock_text)
    except tomllib.TOMLDecodeError as e:
        raise plan.PlanError("%s: pyproject.toml or uv.lock is not valid TOML (%s). Fix the file, or run `uv lock`."
                             % (source_dir, e))
    missing, stale = plan.lock_drift(pyproject, lock)
    if missing or stale:
        raise plan.PlanError(
            "%s/uv.lock is older than its pyproject.toml: %s%s. Run `uv lock` in %s and commit uv.lock, so that the "
            "images install what pyproject.toml asks for." % (
                source_dir, ("pyproject.toml asks for %s, which uv.lock does not record" % ", ".join(missing)) if missing else "",
                ("%suv.lock records %s, which pyproject.toml no longer asks for" % ("; " if missing else "", ", ".join(stale)))
                if stale else "", source_dir))


def read_source(source_dir):
    """The facts of a source tree; raises PlanError naming what is missing."""
    if not os.path.isdir(source_dir):
        raise plan.PlanError("%s is not a directory: point ktrdr_source_dir (make canary KTRDR_SRC=...) at a ktrdr "
                             "checkout." % source_dir)
    pyproject_text = _read(os.path.join(source_dir, "pyproject.toml"))
    if pyproject_text is None:
        raise plan.PlanError("%s has no pyproject.toml: a ktrdr source tree declares its package, version and "
                             "requires-python there. Point ktrdr_source_dir at a ktrdr checkout." % source_dir)
    project = plan.read_pyproject(pyproject_text)
    have_reqs = all(os.path.isfile(os.path.join(source_dir, "requirements", n)) for n in ("backend.txt", "worker.txt"))
    lock = _read(os.path.join(source_dir, "uv.lock"))
    missing = []
    if not os.path.isdir(os.path.join(source_dir, "ktrdr")):
        missing.append("the package directory ktrdr/")
    if not have_reqs and lock is None:
        missing.append("a uv.lock (or requirements/backend.txt + requirements/worker.txt, locked, torch not listed)")
    if missing:
        raise plan.PlanError("%s does not look like a ktrdr source tree: it lacks %s. Point ktrdr_source_dir at such "
                             "a tree." % (source_dir, " and ".join(missing)))
    _check_lock(source_dir, pyproject_text, lock)
    version = project["version"]
    if not version:
        init = _read(os.path.join(source_dir, "ktrdr", "__init__.py")) or ""
        found = [line.split("=", 1)[1].strip().strip("'\"") for line in init.splitlines()
                 if line.startswith("__version__")]
        version = found[0] if found else "0+unknown"
    return {
        "dir": os.path.realpath(source_dir),
        "version": version,
        "revision": _revision(source_dir),
        "requires_python": project["requires_python"] or "",
        "layout": "requirements" if have_reqs else "uv",
        "torch_locked": plan.locked_version(lock, "torch") or "",
    }


def _answers(url, timeout):
    try:
        open_url(url.rstrip("/") + "/", method="GET", timeout=timeout).close()
        return True
    except Exception:  # any failure to reach the index means: do not use it
        return False


def main():
    module = AnsibleModule(
        argument_spec=dict(
            source_dir=dict(type="path", required=True),
            base_image=dict(type="str", default=""),
            suite=dict(type="str", default=""),
            suites=dict(type="dict", default=dict(plan.SUITE_PYTHONS)),
            debootstrap=dict(type="dict", default={}, options=dict(
                name=dict(type="str", default="ktrdr-base"),
                mirror=dict(type="str", default="http://deb.debian.org/debian"),
                packages=dict(type="list", elements="str", default=["python3", "python3-venv", "tini", "ca-certificates"]),
            )),
            postgres_major=dict(type="int", default=15),
            postgres_suites=dict(type="dict", default={str(k): v for k, v in plan.POSTGRES_SUITES.items()}),
            torch_cpu_spec=dict(type="str", default=""),
            torch_cuda_spec=dict(type="str", default=""),
            torch_default_cpu_spec=dict(type="str", default="torch==2.13.0"),
            torch_default_cuda_spec=dict(type="str", default="torch==2.14.1"),
            torch_cpu_index_url=dict(type="str", default=plan.PYTORCH_CPU_INDEX),
            torch_cuda_index_url=dict(type="str", default=""),
            index_timeout=dict(type="int", default=5),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        source = read_source(p["source_dir"])
        try:
            plan.parse_specifier(source["requires_python"])
        except plan.PlanError as e:
            raise plan.PlanError("%s/pyproject.toml: requires-python %r: %s." % (source["dir"], source["requires_python"], e))
        base = plan.choose_base(source["requires_python"], p["base_image"], p["suite"],
                                {k: str(v) for k, v in p["suites"].items()})
        pg_suite = plan.postgres_suite(p["postgres_major"], {int(k): v for k, v in p["postgres_suites"].items()})
    except plan.PlanError as e:
        module.fail_json(msg=str(e))
    # The CPU index is asked only when worker-cpu's torch is not pinned to another index by the user.
    cpu_index = p["torch_cpu_index_url"]
    reachable = bool(cpu_index) and _answers(cpu_index, p["index_timeout"])
    torch = plan.torch_plan(source["torch_locked"], p["torch_cpu_spec"], p["torch_cuda_spec"], cpu_index,
                            p["torch_cuda_index_url"], reachable, p["torch_default_cpu_spec"], p["torch_default_cuda_spec"])
    deb = p["debootstrap"]
    base["suite"] = base["suite"] or "bookworm"
    base["debootstrap"] = plan.debootstrap_base(deb["name"], base["suite"], deb["mirror"], deb["packages"])
    postgres = {"major": p["postgres_major"], "suite": pg_suite,
                "debootstrap": plan.debootstrap_base(deb["name"], pg_suite, deb["mirror"], deb["packages"])}
    module.exit_json(changed=False, source=source, base=base, postgres=postgres, torch=torch)


if __name__ == "__main__":
    main()
