"""Fixtures of the module tests: the reference stack (deploy/reference/tests/stack.py) and Docker helpers."""

import io
import os
import subprocess
import sys
import tarfile
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
STACK_DIR = os.path.join(ROOT, "deploy", "reference", "tests")
sys.path.insert(0, STACK_DIR)
# The harness's fixtures (pg, database, backend, training_worker, ...), imported rather than loaded with
# pytest_plugins, which pytest only accepts in the rootdir's conftest.
from stack import *  # noqa: F401,F403,E402  pylint: disable=wildcard-import,unused-wildcard-import,wrong-import-position

TEST_LABEL = "io.ktrdr.test=true"
TINY_IMAGE = "ktrdr-ops-test-sleep:1"


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_stack: uses the reference backend/workers/PostgreSQL harness")
    config.addinivalue_line("markers", "needs_images: uses the built ktrdr images (build/images.json)")


def docker(*args, check=True, **kw):
    return subprocess.run(["docker"] + list(args), check=check, capture_output=True, text=True, **kw)


@pytest.fixture(scope="session")
def tiny_image():
    """A minimal image (the host's sleep and its libc) for tests that only need some container running.

    Built with ``docker import`` because no registry is reachable here.
    """
    if docker("image", "inspect", TINY_IMAGE, check=False).returncode == 0:
        return TINY_IMAGE
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in ("/bin/sleep", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"):
            real = os.path.realpath(path)
            info = tar.gettarinfo(real, arcname=path.lstrip("/"))
            with open(real, "rb") as fh:
                tar.addfile(info, fh)
    subprocess.run(["docker", "import", "--change", 'CMD ["/bin/sleep", "3600"]', "-", TINY_IMAGE],
                   input=buf.getvalue(), check=True, capture_output=True)
    return TINY_IMAGE


@pytest.fixture
def docker_container_with_port(tiny_image):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    name = "ktrdr-ops-test-%s" % uuid.uuid4().hex[:8]
    docker("run", "-d", "--rm", "--name", name, "--label", TEST_LABEL, "-p", "127.0.0.1:%d:80" % port, tiny_image)
    yield name, port
    docker("rm", "-f", name, check=False)
