"""The image plan's decisions (module_utils/_image_plan.py) and the three modules that use them, on real
files: a real uv.lock and pyproject.toml (the reference's, and ktrdr's shape), real wheel archives."""

import json
import os
import re
import subprocess
import sys
import zipfile

import pytest

from ansible_collections.ktrdr.ops.plugins.module_utils import _image_plan as plan

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REFERENCE = os.path.join(ROOT, "deploy", "reference")


@pytest.mark.parametrize("version,spec,ok", [
    ("3.13.5", ">=3.12,<3.14", True),
    ("3.11.2", ">=3.12,<3.14", False),
    ("3.14.0", ">=3.12,<3.14", False),
    ("3.11.2", ">=3.11", True),
    ("3.12.3", "==3.12.*", True),
    ("3.13.5", "==3.12.*", False),
    ("3.13.5", "!=3.13.*", False),
    ("3.13.5", "~=3.12", True),
    ("4.0.0", "~=3.12", False),
    ("3.11.2", "", True),
])
def test_satisfies(version, spec, ok):
    assert plan.satisfies(version, spec) is ok


def test_unreadable_specifier_is_named():
    with pytest.raises(plan.PlanError, match="cannot read the version clause 'python3'"):
        plan.parse_specifier(">=3.11, python3")


def test_base_follows_requires_python():
    ktrdr = plan.choose_base(">=3.12,<3.14")
    assert (ktrdr["image"], ktrdr["suite"], ktrdr["python"]) == ("python:3.13-slim", "trixie", "3.13")
    assert "requires-python >=3.12,<3.14" in ktrdr["reason"]
    reference = plan.choose_base(">=3.11")
    assert (reference["image"], reference["suite"]) == ("python:3.11-slim", "bookworm")


def test_explicit_settings_win():
    assert plan.choose_base(">=3.12", base_image="python:3.12-slim")["image"] == "python:3.12-slim"
    assert plan.choose_base(">=3.11", suite="trixie")["suite"] == "trixie"
    # An explicit image is accepted even when no suite fits (its own Python is probed later).
    assert plan.choose_base("==3.12.*", base_image="python:3.12-slim")["suite"] is None


def test_no_base_fits():
    with pytest.raises(plan.PlanError, match=r"requires-python ==3\.12\.\* admits no Python .*ktrdr_base_image"):
        plan.choose_base("==3.12.*")
    with pytest.raises(plan.PlanError, match="images_debootstrap_suite is 'sid'"):
        plan.choose_base(">=3.11", suite="sid")


def test_postgres_suite_is_its_own():
    assert plan.postgres_suite(15) == "bookworm"
    assert plan.postgres_suite("17") == "trixie"
    with pytest.raises(plan.PlanError, match="images_postgres_major is 16"):
        plan.postgres_suite(16)


def test_debootstrap_tag_is_stable():
    # The tag the role used before the plan moved into Python: existing bases stay valid.
    a = plan.debootstrap_base("ktrdr-base", "bookworm", "http://deb.debian.org/debian",
                              ["python3", "python3-venv", "tini", "ca-certificates"])
    b = plan.debootstrap_base("ktrdr-base", "bookworm", "http://deb.debian.org/debian",
                              ["tini", "python3", "ca-certificates", "python3-venv"])
    assert a == b and a["ref"].startswith("ktrdr-base:bookworm-") and len(a["dir"]) == len("bookworm-") + 12
    assert plan.debootstrap_base("ktrdr-base", "trixie", "http://deb.debian.org/debian", [])["ref"] != a["ref"]


def test_lock_and_pyproject_of_the_reference():
    with open(os.path.join(REFERENCE, "uv.lock")) as f:
        assert plan.locked_version(f.read(), "torch") == "2.13.0"
    with open(os.path.join(REFERENCE, "pyproject.toml")) as f:
        project = plan.read_pyproject(f.read())
    assert project["requires_python"] == ">=3.11" and project["dynamic_version"]


def test_pyproject_reads_only_the_project_table():
    text = '[tool.x]\nversion = "9"\n[project]\nname = "ktrdr"\nversion = "1.0.7.2"\nrequires-python = ">=3.12,<3.14"\n'
    assert plan.read_pyproject(text) == {"version": "1.0.7.2", "requires_python": ">=3.12,<3.14",
                                         "dynamic_version": False}


def test_torch_from_lock_setting_and_index():
    t = plan.torch_plan("2.8.0", cpu_index=plan.PYTORCH_CPU_INDEX, cpu_index_reachable=False)
    assert t["worker_cpu"]["spec"] == "torch==2.8.0" and t["worker_cpu"]["from"] == "the source's uv.lock"
    assert t["worker_cpu"]["index"] == "" and "did not answer" in t["worker_cpu"]["index_note"]
    assert t["worker_gpu"]["spec"] == "torch==2.8.0"
    t = plan.torch_plan("2.8.0", cpu_spec="torch==2.7.1", cpu_index="https://idx/cpu", cpu_index_reachable=True)
    assert t["worker_cpu"]["spec"] == "torch==2.7.1" and t["worker_cpu"]["index"] == "https://idx/cpu"
    assert plan.torch_plan(None)["worker_gpu"]["spec"] == "torch==2.14.1"


def test_torch_labels():
    assert plan.torch_label("worker_cpu", "torch-2.13.0+cpu.whl", None, "cuda")["label"] == "cpu"
    fallback = plan.torch_label("worker_cpu", "torch-2.8.0-cp313.whl", "12.8", "cuda")
    assert fallback["label"] == "cuda-12.8" and fallback["fallback"] and "CUDA 12.8 build" in fallback["warning"]
    with pytest.raises(plan.PlanError, match="images_torch_cpu_fallback is 'fail'"):
        plan.torch_label("worker_cpu", "torch-2.8.0-cp313.whl", "12.8", "fail")
    assert plan.torch_label("worker_gpu", "t.whl", "12.6", "fail")["label"] == "cuda-12.6"
    with pytest.raises(plan.PlanError, match="has no CUDA"):
        plan.torch_label("worker_gpu", "torch-2.13.0+cpu.whl", None, "cuda")


def test_budget_is_a_ratio_and_names_the_largest_packages():
    assert plan.budget_problems(660e6, 6000e6, 0.4, 0) == []
    problems = plan.budget_problems(500e6, 900e6, 0.4, 0, {"a": 225e6, "b": 10e6, "c": 50e6, "d": 1, "e": 2, "f": 3})
    assert "more than 0.4 of worker-cpu" in problems[0]
    assert problems[-1] == "its largest packages: a (225 MB), c (50 MB), b (10 MB), f (0 MB), e (0 MB)"
    assert "over images_backend_max_mb (600 MB)" in plan.budget_problems(662e6, 6000e6, 0.4, 600)[0]


# --- the modules, run as Ansible runs them (JSON arguments on stdin) ---

def run_module(name, args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-m", "ansible_collections.ktrdr.ops.plugins.modules." + name],
                          input=json.dumps({"ANSIBLE_MODULE_ARGS": args}), capture_output=True, text=True, env=env)
    return json.loads(proc.stdout)


def test_image_plan_on_the_reference():
    out = run_module("image_plan", {"source_dir": REFERENCE, "torch_cpu_index_url": ""})
    assert not out.get("failed"), out
    assert out["source"]["layout"] == "uv" and out["source"]["torch_locked"] == "2.13.0"
    assert out["base"]["suite"] == "bookworm" and out["postgres"]["suite"] == "bookworm"
    assert out["torch"]["worker_cpu"]["spec"] == "torch==2.13.0" and out["changed"] is False


def _tree(tmp_path, pyproject, lock=True, package=True):
    if pyproject is not None:
        (tmp_path / "pyproject.toml").write_text(pyproject)
    if lock:
        (tmp_path / "uv.lock").write_text('version = 1\n\n[[package]]\nname = "torch"\nversion = "2.8.0"\n')
    if package:
        (tmp_path / "ktrdr").mkdir()
    return str(tmp_path)


def test_image_plan_on_a_ktrdr_shaped_tree(tmp_path):
    src = _tree(tmp_path, '[project]\nname = "ktrdr"\nversion = "1.0.7.2"\nrequires-python = ">=3.12,<3.14"\n')
    out = run_module("image_plan", {"source_dir": src, "torch_cpu_index_url": "http://127.0.0.1:9/none"})
    assert out["base"]["image"] == "python:3.13-slim" and out["base"]["debootstrap"]["suite"] == "trixie"
    # The database keeps its own major's suite: PostgreSQL 15 on bookworm, whatever the application's Python.
    assert out["postgres"]["suite"] == "bookworm" and out["postgres"]["debootstrap"]["ref"] != out["base"]["debootstrap"]["ref"]
    assert out["torch"]["worker_cpu"] == {"spec": "torch==2.8.0", "from": "the source's uv.lock", "index": "",
                                          "index_note": "http://127.0.0.1:9/none did not answer: the build host's "
                                                        "pip configuration decides"}
    assert out["source"]["version"] == "1.0.7.2" and out["source"]["revision"] == "unknown"


@pytest.mark.parametrize("pyproject,lock,package,message", [
    (None, True, True, "has no pyproject.toml"),
    ('[project]\nrequires-python = ">=3.15"\n', True, True, r"requires-python >=3\.15 admits no Python"),
    ('[project]\nrequires-python = "python3"\n', True, True, r"pyproject.toml: requires-python 'python3'"),
    ('[project]\n', False, True, "it lacks a uv.lock"),
    ('[project]\n', True, False, "it lacks the package directory ktrdr/"),
])
def test_image_plan_bad_sources(tmp_path, pyproject, lock, package, message):
    out = run_module("image_plan", {"source_dir": _tree(tmp_path, pyproject, lock, package), "torch_cpu_index_url": ""})
    assert out["failed"] and re.search(message, out["msg"]), out["msg"]


def _wheelhouse(path, cuda, extra=()):
    path.mkdir()
    with zipfile.ZipFile(path / "torch-2.8.0-cp313-cp313-manylinux_2_28_x86_64.whl", "w") as z:
        z.writestr("torch/version.py", "__version__ = '2.8.0'\ncuda: Optional[str] = %r\n" % cuda)
    for name in extra:
        (path / name).write_bytes(b"x" * 2_000_000)
    return str(path)


def test_torch_wheel_info_falls_back_loudly(tmp_path):
    cpu = _wheelhouse(tmp_path / "cpu", "12.8", ["nvidia_cublas_cu12-12.8.4.1-py3-none-manylinux_2_27_x86_64.whl",
                                               "numpy-2.3.0-cp313-cp313-manylinux_2_28_x86_64.whl"])
    out = run_module("torch_wheel_info", {"wheelhouses": {"worker_cpu": cpu}})
    assert out["torch"]["worker_cpu"]["label"] == "cuda-12.8" and out["torch"]["worker_cpu"]["fallback"]
    assert out["torch"]["worker_cpu"]["cuda_wheels_mb"] == 2.0  # numpy is not a CUDA wheel
    assert "Labelled io.ktrdr.torch=cuda-12.8" in json.dumps(out["warnings"])  # a str or, from 2.19, an event
    refused = run_module("torch_wheel_info", {"wheelhouses": {"worker_cpu": cpu}, "cpu_fallback": "fail"})
    assert refused["failed"] and "images_torch_cpu_fallback: cuda" in refused["msg"]


def test_torch_wheel_info_cpu_and_missing(tmp_path):
    cpu = _wheelhouse(tmp_path / "cpu", None)
    assert run_module("torch_wheel_info", {"wheelhouses": {"worker_cpu": cpu}})["torch"]["worker_cpu"]["label"] == "cpu"
    (tmp_path / "empty").mkdir()
    out = run_module("torch_wheel_info", {"wheelhouses": {"worker_gpu": str(tmp_path / "empty")}})
    assert out["failed"] and "holds no torch wheel" in out["msg"]


def _probe(torch=None, cuda=None, uid=1000, modules=None, packages=None):
    return {"torch": torch, "cuda": cuda, "uid": uid, "modules": modules or {}, "packages": packages or {}}


def test_image_verdict():
    images = {"backend": {"ref": "b:1", "torch": "absent"}, "worker_cpu": {"ref": "w:1", "torch": "cuda-12.8"},
              "postgres": {"ref": "p:1", "torch": "absent"}}
    sizes = {"b:1": 662e6, "w:1": 6100e6, "p:1": 278e6}
    good = run_module("image_verdict", {"images": images, "sizes": sizes, "probes": {
        "backend": _probe(modules={"torch": False}), "worker_cpu": _probe("2.8.0+cu128", "12.8")}})
    assert not good.get("failed"), good
    assert "w:1: torch 2.8.0+cu128 (CUDA build, running on CPU), 6100.0 MB" in good["summary"]
    assert "p:1: 278.0 MB" in good["summary"]
    bad = run_module("image_verdict", {"images": images, "sizes": dict(sizes, **{"w:1": 900e6}), "probes": {
        "backend": _probe("2.8.0", modules={"torch": True}, packages={"claude-agent-sdk": 225e6}),
        "worker_cpu": _probe("2.13.0+cpu", None, uid=0)}})
    assert bad["failed"]
    text = " ".join(bad["problems"])
    assert "b:1 contains torch" in text and "w:1 runs as root" in text
    assert "labelled io.ktrdr.torch=cuda-12.8 but its torch 2.13.0+cpu reports CUDA None" in text
    assert "more than 0.4 of worker-cpu" in text and "claude-agent-sdk (225 MB)" in text


def test_image_plan_refuses_a_lock_older_than_pyproject(tmp_path):
    with open(os.path.join(REFERENCE, "pyproject.toml")) as f:
        pyproject = f.read()
    with open(os.path.join(REFERENCE, "uv.lock")) as f:
        (tmp_path / "uv.lock").write_text(f.read())
    (tmp_path / "ktrdr").mkdir()
    (tmp_path / "pyproject.toml").write_text(pyproject)
    assert not run_module("image_plan", {"source_dir": str(tmp_path), "torch_cpu_index_url": ""}).get("failed")
    (tmp_path / "pyproject.toml").write_text(pyproject.replace('"uvicorn>=0.29",', '"uvicorn>=0.29",\n  "six>=1.16",')
                                             .replace('"httpx>=0.27",', '"httpx>=0.28",'))
    out = run_module("image_plan", {"source_dir": str(tmp_path), "torch_cpu_index_url": ""})
    assert out["failed"]
    assert "uv.lock is older than its pyproject.toml: pyproject.toml asks for httpx>=0.28, six>=1.16, which uv.lock " \
           "does not record; uv.lock records httpx>=0.27, which pyproject.toml no longer asks for. Run `uv lock`" in out["msg"]


def test_wheelhouse_names_the_lock_line(tmp_path):
    from ansible_collections.ktrdr.ops.plugins.modules import wheelhouse
    lock = tmp_path / "uv.lock"
    lock.write_text('version = 1\n\n[[package]]\nname = "PyYAML"\nversion = "99.0.0"\n')
    stderr = "ERROR: Could not find a version that satisfies the requirement pyyaml==99.0.0\n" \
             "ERROR: No matching distribution found for pyyaml==99.0.0\n"
    assert wheelhouse.explain(stderr, str(lock)) == ['pyyaml==99.0.0 (uv.lock line 5: version = "99.0.0")']
    assert wheelhouse.explain(stderr, None) == ["pyyaml==99.0.0"]


def test_wheelhouse_download_is_all_or_nothing(tmp_path):
    reqs = tmp_path / "r.txt"
    reqs.write_text("no-such-package-ktrdr-ops==1.0\n")
    dest = tmp_path / "wh"
    args = {"dest": str(dest), "requirements": str(reqs), "pip_python": sys.executable, "python_version": "3.11.2",
            "platforms": ["manylinux_2_17_x86_64"], "extra_args": ["--no-index", "--find-links", str(tmp_path)]}
    out = run_module("wheelhouse", args)
    assert out["failed"] and out["missing"] == ["no-such-package-ktrdr-ops==1.0"], out
    assert not dest.exists() and not (tmp_path / "wh.partial").exists()
    dest.mkdir()
    again = run_module("wheelhouse", args)  # a finished wheelhouse is not downloaded again
    assert (again["changed"], again["dest"], again["wheels"]) == (False, str(dest), 0)
