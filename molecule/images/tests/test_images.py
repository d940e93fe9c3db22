"""What the split images must be, checked from inside one container per image (testinfra over the
community.docker.docker connection) and from their labels (Docker SDK).

The images and their content hashes come from build/images.json, written by the ktrdr.ops.images
role in the scenario's create step. ktrdr-worker-gpu is checked when it was built (no GPU needed:
torch.version.cuda is a property of the wheel); otherwise those tests skip and say how to build it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import docker
import pytest
import testinfra

REPO = Path(__file__).resolve().parents[3]
BUILD_DIR = Path(os.environ.get("KTRDR_BUILD_DIR") or REPO / "build")
GPU_HOWTO = (
    "ktrdr-worker-gpu was not built. Build it with `make images KTRDR_BUILD_GPU=true` "
    "(or ansible-playbook playbooks/build.yml -e ktrdr_build_gpu_image=true), or run the scenario as "
    "`KTRDR_BUILD_GPU=true molecule test -s images`; it downloads several GB of CUDA wheels."
)

# Molecule instance names (molecule.yml platforms) per image key.
INSTANCES = {
    "backend": "ktrdr-molecule-backend",
    "worker_cpu": "ktrdr-molecule-worker-cpu",
    "postgres": "ktrdr-molecule-postgres",
}


@pytest.fixture(scope="module")
def report():
    path = BUILD_DIR / "images.json"
    assert path.is_file(), f"{path} is missing: the create step (the images role) did not finish"
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def is_reference(report):
    """The reference service (deploy/reference, or a copy of it), as opposed to a real ktrdr checkout."""
    pyproject = Path(report["source_dir"]) / "pyproject.toml"
    return pyproject.is_file() and "Reference ktrdr service" in pyproject.read_text()


def test_built_from_the_collection_under_test(report):
    """make test runs this scenario against the collection installed from its tarball (KTRDR_COLLECTIONS_PATH)."""
    installed = os.environ.get("KTRDR_COLLECTIONS_PATH")
    expected = Path(installed) if installed else REPO
    assert Path(report["source_dir"]).resolve().is_relative_to(expected.resolve()), (
        f"images.json says the source was {report['source_dir']}, not inside {expected}")


def _host(request, key):
    inventory = request.config.option.ansible_inventory
    return testinfra.get_host(f"ansible://{INSTANCES[key]}", ansible_inventory=inventory)


@pytest.fixture(scope="module")
def backend(request):
    return _host(request, "backend")


@pytest.fixture(scope="module")
def worker_cpu(request):
    return _host(request, "worker_cpu")


@pytest.fixture(scope="module")
def postgres(request):
    return _host(request, "postgres")


@pytest.fixture(scope="module")
def client():
    return docker.from_env()


def py(host, code, **env):
    """Run python code in the container from /app; return the command result."""
    prefix = " ".join(f"{k}={v}" for k, v in env.items())
    return host.run(f"cd /app && {prefix} python -c %s", code)


# --------------------------------------------------------------------------------------- backend
def test_backend_has_no_torch(backend):
    result = py(backend, "import torch")
    assert result.rc != 0
    assert "ModuleNotFoundError: No module named 'torch'" in result.stderr


def test_backend_has_no_numpy_for_the_reference_service(backend, is_reference):
    if not is_reference:
        pytest.skip("numpy is only kept out of the reference service's backend (ktrdr's pandas needs it)")
    result = py(backend, "import numpy")
    assert result.rc != 0
    assert "ModuleNotFoundError" in result.stderr


def test_backend_app_imports_without_torch(backend):
    result = py(backend, "import sys, ktrdr.api.main; assert 'torch' not in sys.modules, 'torch got imported'")
    assert result.rc == 0, result.stderr


def test_backend_carries_the_migrations(backend, is_reference):
    assert backend.file("/app/alembic.ini").is_file
    assert backend.file("/app/alembic").is_directory
    heads = backend.run("cd /app && python -m alembic heads")
    assert heads.rc == 0, heads.stderr
    assert "(head)" in heads.stdout
    if is_reference:
        assert heads.stdout.split()[0] == "a1b2c3d4e5f6"


def test_backend_runs_as_ktrdr_not_root(backend):
    user = backend.user()
    assert user.uid == 10001 and user.gid == 10001
    assert user.name == "ktrdr"


# --------------------------------------------------------------------------------------- worker-cpu
def test_worker_cpu_has_cpu_torch(worker_cpu, report):
    result = py(worker_cpu, "import torch; print(torch.__version__); print(torch.version.cuda)")
    assert result.rc == 0, result.stderr
    version, cuda = result.stdout.split()
    assert cuda == "None", f"worker-cpu torch {version} was built for CUDA {cuda}"
    assert report["probes"]["worker_cpu"]["torch"] == version


def test_worker_cpu_computes(worker_cpu):
    code = (
        "import torch\n"
        "torch.manual_seed(0)\n"
        "a = torch.arange(6, dtype=torch.float32).reshape(2, 3)\n"
        "b = torch.ones(3, 2)\n"
        "assert torch.equal(a @ b, torch.tensor([[3.0, 3.0], [12.0, 12.0]]))\n"
        "layer = torch.nn.Linear(3, 2)\n"
        "out = layer(a)\n"
        "assert out.shape == (2, 2) and torch.isfinite(out).all()\n"
        "out.sum().backward()\n"
        "assert layer.weight.grad is not None\n"
        "print('ok')"
    )
    result = py(worker_cpu, code)
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_worker_image_health_check_does_not_call_health(client, report):
    """ktrdr's workers take any GET /health for the backend: the image's HEALTHCHECK calls / instead."""
    test = client.images.get(report["worker_cpu"]).attrs["Config"]["Healthcheck"]["Test"]
    assert "/health" not in test and test[-1] == "/", test


def test_worker_cpu_has_no_alembic_dir(worker_cpu):
    assert not worker_cpu.file("/app/alembic").exists
    assert not worker_cpu.file("/app/alembic.ini").exists


def test_worker_modules_import(worker_cpu):
    result = py(worker_cpu, "import ktrdr.backtesting.backtest_worker, ktrdr.training.training_worker")
    assert result.rc == 0, result.stderr


def test_worker_cpu_runs_as_ktrdr_not_root(worker_cpu):
    assert worker_cpu.user().uid == 10001


# --------------------------------------------------------------------------------------- all Python images
@pytest.mark.parametrize("key", ["backend", "worker_cpu"])
def test_python_image_layout(request, key, report):
    host = _host(request, key)
    assert host.file("/proc/1/comm").content_string.strip() == "tini", "tini is PID 1"
    assert not host.file("/opt/venv/bin/pip").exists, "pip stays out of the runtime venv"
    assert host.run("printenv KTRDR_IMAGE_REVISION").stdout.strip() == report["hashes"][key]
    for d in ("/app/data", "/app/models", "/app/checkpoints"):
        assert host.file(d).uid == 10001


# --------------------------------------------------------------------------------------- postgres
def test_postgres_image(postgres, client, report):
    assert postgres.user().name == "postgres"
    assert postgres.user().uid == 999
    version = postgres.run("postgres --version")
    assert version.rc == 0 and re.search(r"\) 15\.", version.stdout), version.stdout
    assert postgres.exists("pg_isready")
    config = client.images.get(report["postgres"]).attrs["Config"]
    assert "pg_isready" in " ".join(config["Healthcheck"]["Test"])
    assert config["Env"] and any(e.startswith("PGDATA=/var/lib/postgresql/data") for e in config["Env"])


# --------------------------------------------------------------------------------------- labels
@pytest.mark.parametrize("key", ["backend", "worker_cpu", "postgres"])
def test_labels_are_present_and_true(key, report, client):
    ref = report[key]
    image = client.images.get(ref)
    labels = image.labels
    content_hash = report["hashes"][key]
    assert labels["io.ktrdr.content-hash"] == content_hash
    assert ref.split(":")[-1] == content_hash[:12], "the tag is the content hash"
    assert labels["org.opencontainers.image.version"]
    assert labels["org.opencontainers.image.revision"]
    probe = report["probes"].get(key)
    expected = {"backend": "absent", "worker_cpu": "cpu", "postgres": "absent"}[key]
    if key == "worker_cpu" and probe and probe["cuda"]:
        # No CPU build of this torch for the base's Python was reachable: the CUDA build, labelled as such.
        expected = "cuda-" + probe["cuda"]
        print("%s: CUDA build, running on CPU (torch %s)" % (ref, probe["torch"]))
    assert labels["io.ktrdr.torch"] == expected
    if probe:
        # The label matches what the probe found inside the image.
        assert (probe["torch"] is None) == (labels["io.ktrdr.torch"] == "absent")
    if key != "postgres":
        assert labels["org.opencontainers.image.version"] == report["source_version"]
        assert image.attrs["Config"]["Healthcheck"]["Test"], "HEALTHCHECK is set"
        assert image.attrs["Config"]["User"] == "10001:10001"


def test_backend_is_small_next_to_worker_cpu(report):
    backend, worker = report["sizes"]["backend"], report["sizes"]["worker_cpu"]
    assert backend <= 0.40 * worker, f"backend {backend / 1e6:.0f} MB vs worker-cpu {worker / 1e6:.0f} MB"


# --------------------------------------------------------------------------------------- worker-gpu
@pytest.fixture(scope="module")
def gpu_ref(report, client):
    ref = report.get("worker_gpu")
    if not ref:
        pytest.skip(GPU_HOWTO)
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        pytest.skip(f"{ref} is named in images.json but missing from the engine. " + GPU_HOWTO)
    return ref


def test_worker_gpu_has_cuda_torch(gpu_ref, client):
    out = client.containers.run(
        gpu_ref,
        ["python", "-c", "import torch; print(torch.__version__, torch.version.cuda)"],
        remove=True,
        network_mode="none",
        labels={"io.ktrdr.test": "true"},
    ).decode()
    version, cuda = out.split()
    assert cuda != "None", f"worker-gpu has torch {version} without CUDA"
    assert client.images.get(gpu_ref).labels["io.ktrdr.torch"] == f"cuda-{cuda}"


def test_worker_gpu_runs_the_training_worker(gpu_ref, client, report):
    config = client.images.get(gpu_ref).attrs["Config"]
    assert "ktrdr.training.training_worker:app" in config["Cmd"]
    assert config["User"] == "10001:10001"
    assert client.images.get(gpu_ref).labels["io.ktrdr.content-hash"] == report["hashes"]["worker_gpu"]
