# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""The image plan's decisions, pure: which Python (and so which base) a source needs, which torch each
worker installs, what a torch wheel really is, and whether the built images keep their size budget.

Used by the modules image_plan (before anything is built), torch_wheel_info (after the download) and
image_verdict (after the probes). Nothing here touches the network, the engine or the disk.
"""

from __future__ import annotations

import hashlib
import json
import re

# The Debian suites the debootstrap base can be made from, with the Python each ships.
SUITE_PYTHONS = {"bookworm": "3.11.2", "trixie": "3.13.5"}
# The PostgreSQL major each suite ships (the database image is built on the suite of its major).
POSTGRES_SUITES = {15: "bookworm", 17: "trixie"}

PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

_CLAUSE = re.compile(r"^\s*(~=|===|==|!=|<=|>=|<|>)\s*([0-9]+(?:\.[0-9]+)*(?:\.\*)?)\s*$")


class PlanError(ValueError):
    """A plan that cannot be made; the message names the setting or file to change."""


def _version(text):
    return tuple(int(p) for p in text.split("."))


def _cmp(a, b):
    # Compare as PEP 440 release segments: missing parts are zeros.
    n = max(len(a), len(b))
    a, b = a + (0,) * (n - len(a)), b + (0,) * (n - len(b))
    return (a > b) - (a < b)


def parse_specifier(spec):
    """'>=3.12,<3.14' -> [('>=', '3.12'), ('<', '3.14')]; raises PlanError on what it cannot read."""
    clauses = []
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        m = _CLAUSE.match(part)
        if not m:
            raise PlanError("cannot read the version clause %r" % part.strip())
        clauses.append((m.group(1), m.group(2)))
    return clauses


def satisfies(version, spec):
    """Whether the Python version '3.13.5' satisfies a requires-python specifier."""
    v = _version(version)
    for op, target in parse_specifier(spec):
        if target.endswith(".*"):
            prefix = _version(target[:-2])
            match = v[: len(prefix)] == prefix
            if (op in ("==", "===") and not match) or (op == "!=" and match):
                return False
            continue
        t = _version(target)
        c = _cmp(v, t)
        ok = {
            "==": c == 0, "===": c == 0, "!=": c != 0, "<=": c <= 0, ">=": c >= 0, "<": c < 0, ">": c > 0,
            # ~=X.Y means >=X.Y and the same X (~=X.Y.Z: the same X.Y).
            "~=": c >= 0 and v[: max(len(t) - 1, 1)] == t[: max(len(t) - 1, 1)],
        }[op]
        if not ok:
            return False
    return True


def choose_base(requires_python, base_image="", suite="", suites=None):
    """Which base the Python images start from, and why.

    An explicit base_image (ktrdr_base_image) or suite (images_debootstrap_suite) wins. Otherwise the lowest
    Python that a Debian suite ships and requires_python admits: the registry's python:<X.Y>-slim is tried
    first, that suite is the fallback, so both paths give the same Python.
    Returns {'image', 'suite', 'python', 'reason'}.
    """
    suites = suites or SUITE_PYTHONS
    ordered = sorted(suites.items(), key=lambda kv: _version(kv[1]))
    if suite and suite not in suites:
        raise PlanError("images_debootstrap_suite is %r; the suites with a known Python are %s"
                        % (suite, ", ".join("%s (Python %s)" % kv for kv in ordered)))
    fitting = [(s, py) for s, py in ordered if not requires_python or satisfies(py, requires_python)]
    if suite:
        chosen = (suite, suites[suite])
        how = "images_debootstrap_suite is set"
    elif fitting:
        chosen = fitting[0]
        how = ("requires-python %s" % requires_python) if requires_python else "the source sets no requires-python"
    elif base_image:
        chosen = (None, None)
        how = ""
    else:
        raise PlanError(
            "requires-python %s admits no Python that a base can be made with here (%s). Set ktrdr_base_image to an "
            "image with a fitting python3 (e.g. python:3.12-slim), or fix requires-python in pyproject.toml."
            % (requires_python, ", ".join("%s has %s" % kv for kv in ordered)))
    s, py = chosen
    if base_image:
        return {"image": base_image, "suite": s, "python": None, "reason": "ktrdr_base_image is set"}
    minor = ".".join(py.split(".")[:2])
    return {"image": "python:%s-slim" % minor, "suite": s, "python": minor,
            "reason": "%s: Python %s (python:%s-slim, or Debian %s)" % (how, minor, minor, s)}


def postgres_suite(major, suites=None):
    suites = suites or POSTGRES_SUITES
    try:
        return suites[int(major)]
    except (KeyError, ValueError):
        raise PlanError("images_postgres_major is %r; the Debian suites ship %s. Set it to one of these, or "
                        "ktrdr_postgres_image to a PostgreSQL image of that major."
                        % (major, ", ".join("%s (%s)" % kv for kv in sorted(suites.items()))))


def debootstrap_base(name, suite, mirror, packages):
    """The tag of the Debian base made with debootstrap from these inputs, and its cache directory name."""
    key = hashlib.sha256(json.dumps([suite, mirror, sorted(packages), "minbase", "v2"]).encode()).hexdigest()[:12]
    return {"suite": suite, "ref": "%s:%s-%s" % (name, suite, key), "dir": "%s-%s" % (suite, key)}


_LOCK_PACKAGE = re.compile(r'^\[\[package\]\]\s*\nname\s*=\s*"([^"]+)"\s*\nversion\s*=\s*"([^"]+)"', re.M)


def locked_version(lock_text, name):
    """The version uv.lock pins for a package, or None."""
    for pkg, version in _LOCK_PACKAGE.findall(lock_text or ""):
        if pkg.lower() == name.lower():
            return version
    return None


def read_pyproject(text):
    """[project] version and requires-python out of pyproject.toml, without a TOML library (build hosts
    may run Python < 3.11): the keys are read from the [project] table only."""
    out = {"version": None, "requires_python": None, "dynamic_version": False}
    table = None
    for line in (text or "").splitlines():
        s = line.strip()
        if s.startswith("["):
            table = s.strip("[] ")
            continue
        if table != "project":
            continue
        m = re.match(r'^(version|requires-python)\s*=\s*["\']([^"\']*)["\']', s)
        if m:
            out["version" if m.group(1) == "version" else "requires_python"] = m.group(2)
        elif re.match(r'^dynamic\s*=.*["\']version["\']', s):
            out["dynamic_version"] = True
    return out


def _norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _spec(text):
    return ",".join(sorted(p.strip().replace(" ", "") for p in (text or "").split(",") if p.strip()))


_DEP = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)")


def lock_drift(pyproject, lock):
    """What pyproject.toml asks for that uv.lock does not record, and the reverse ([] and [] when they agree).

    Both are parsed TOML. uv records the project's own requirements under [package.metadata] requires-dist of
    its root package; a lock made before pyproject.toml changed differs there. `uv export --frozen` would
    silently export the old lock.
    """
    project = pyproject.get("project") or {}
    wanted = set()
    groups = [(None, project.get("dependencies") or [])] + sorted((project.get("optional-dependencies") or {}).items())
    for extra, deps in groups:
        for dep in deps:
            m = _DEP.match(dep)
            if m:
                wanted.add((_norm(m.group(1)), _spec(m.group(2)), extra))
    root = [p for p in lock.get("package") or []
            if _norm(p.get("name", "")) == _norm(project.get("name", "")) and
            ("editable" in (p.get("source") or {}) or "virtual" in (p.get("source") or {}))]
    if not root:
        return [], []
    recorded = set()
    for dep in (root[0].get("metadata") or {}).get("requires-dist") or []:
        m = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", dep.get("marker") or "")
        recorded.add((_norm(dep["name"]), _spec(dep.get("specifier")), m.group(1) if m else None))

    def show(items):
        return sorted("%s%s%s" % (n, s, " [%s]" % e if e else "") for n, s, e in items)
    return show(wanted - recorded), show(recorded - wanted)


def torch_plan(lock_version, cpu_spec="", cuda_spec="", cpu_index="", cuda_index="", cpu_index_reachable=False,
               default_cpu_spec="torch==2.13.0", default_cuda_spec="torch==2.14.1"):
    """The torch requirement and extra index of each worker, and why.

    An explicit spec wins; else the version the source's lock pins; else the defaults. worker-cpu uses
    cpu_index (PyTorch's CPU wheel index by default) only when it answered; otherwise the build host's pip
    configuration decides, and torch_wheel_info tells afterwards what it got.
    """
    def one(spec, default):
        if spec:
            return spec, "the setting"
        if lock_version:
            return "torch==%s" % lock_version, "the source's uv.lock"
        return default, "the default"

    cpu, cpu_from = one(cpu_spec, default_cpu_spec)
    cuda, cuda_from = one(cuda_spec, default_cuda_spec)
    use_cpu_index = bool(cpu_index) and cpu_index_reachable
    return {
        "worker_cpu": {"spec": cpu, "from": cpu_from, "index": cpu_index if use_cpu_index else "",
                       "index_note": ("" if not cpu_index else
                                      ("%s answered" % cpu_index) if use_cpu_index else
                                      ("%s did not answer: the build host's pip configuration decides" % cpu_index))},
        "worker_gpu": {"spec": cuda, "from": cuda_from, "index": cuda_index, "index_note": ""},
    }


_CUDA_LINE = re.compile(r"^cuda\s*(?::[^=]*)?=\s*['\"]?([^'\"\n]*)", re.M)


def wheel_cuda(version_py):
    """torch.version.cuda as torch/version.py of a wheel states it: None for a CPU build."""
    m = _CUDA_LINE.search(version_py or "")
    value = m.group(1).strip() if m else "None"
    return None if value in ("None", "") else value


def torch_label(key, wheel, cuda, cpu_fallback):
    """The io.ktrdr.torch label of a worker from its torch wheel, with the warnings to give.

    worker_cpu: 'cpu' for a CPU build; a CUDA build is refused, or (cpu_fallback 'cuda') taken and labelled
    cuda-<v>, loudly. worker_gpu: cuda-<v>, and a CPU build is refused.
    Returns {'label', 'fallback', 'warning'}; raises PlanError with the fix.
    """
    if key == "worker_gpu":
        if not cuda:
            raise PlanError("worker-gpu's torch resolved to %s, which has no CUDA; point ktrdr_torch_cuda_spec / "
                            "ktrdr_torch_cuda_index_url at a CUDA build (e.g. https://download.pytorch.org/whl/cu126)."
                            % wheel)
        return {"label": "cuda-%s" % cuda, "fallback": False, "warning": ""}
    if not cuda:
        return {"label": "cpu", "fallback": False, "warning": ""}
    if cpu_fallback != "cuda":
        raise PlanError("worker-cpu's torch resolved to %s, a build for CUDA %s, and images_torch_cpu_fallback is %r. "
                        "Point ktrdr_torch_cpu_index_url at a reachable CPU index (https://download.pytorch.org/whl/cpu), "
                        "choose a base whose Python has a CPU build, or set images_torch_cpu_fallback: cuda to accept "
                        "the CUDA build on CPU." % (wheel, cuda, cpu_fallback))
    return {"label": "cuda-%s" % cuda, "fallback": True,
            "warning": "worker-cpu gets %s, a CUDA %s build (no CPU build of this torch for this Python on any reachable "
                       "index): it runs on the CPU but carries the CUDA libraries. Labelled io.ktrdr.torch=cuda-%s. Set "
                       "images_torch_cpu_fallback: fail to refuse this." % (wheel, cuda, cuda)}


def largest(packages, n=5):
    """The n largest entries of {distribution: bytes}, largest first, as 'name (X MB)'."""
    top = sorted((packages or {}).items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return ["%s (%.0f MB)" % (name, size / 1e6) for name, size in top]


def budget_problems(backend_size, cpu_size, max_ratio, max_mb, packages=None):
    """Why the backend breaks its size budget ([] when it keeps it). The ratio to worker-cpu is the default
    check; an absolute cap (max_mb) is opt-in. Over budget, the five largest packages are named."""
    problems = []
    mb = 1e6
    if max_ratio > 0 and cpu_size > 0 and backend_size > max_ratio * cpu_size:
        problems.append("the backend is %.1f MB, more than %s of worker-cpu (%.1f MB; images_backend_max_ratio)"
                        % (backend_size / mb, max_ratio, cpu_size / mb))
    if max_mb > 0 and backend_size > max_mb * mb:
        problems.append("the backend is %.1f MB, over images_backend_max_mb (%s MB)" % (backend_size / mb, max_mb))
    if problems and packages:
        problems.append("its largest packages: %s" % ", ".join(largest(packages)))
    return problems
