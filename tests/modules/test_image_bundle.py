"""ktrdr.ops.image_bundle for real: a real engine exports two images, the archive for a host that
has the base holds only the layer it lacks, a re-run reuses it, check mode writes nothing, and the
archive loads back into the engine as the same image."""

from __future__ import annotations

import json
import os
import tarfile

import pytest

from ansible_run import module_task, run_tasks
from conftest import TEST_LABEL, docker

CHILD = "ktrdr-ops-test-bundle:1"


@pytest.fixture
def child_image(tiny_image, tmp_path):
    """The tiny image plus one layer (a file), built locally: no registry needed."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "payload.txt").write_text("ktrdr.ops bundle test\n" * 1000)
    (ctx / "Dockerfile").write_text("FROM %s\nCOPY payload.txt /payload.txt\nLABEL %s\n" % (tiny_image, TEST_LABEL))
    docker("build", "--quiet", "-t", CHILD, str(ctx), env=dict(os.environ, DOCKER_BUILDKIT="0"))
    yield CHILD
    docker("image", "rm", "-f", CHILD, check=False)


def layers(ref):
    return json.loads(docker("image", "inspect", ref).stdout)[0]["RootFS"]["Layers"]


def test_archive_holds_only_the_missing_layer_and_loads_back(tiny_image, child_image, tmp_path):
    cache = tmp_path / "cache"
    base_layers = layers(tiny_image)
    args = {"cache_dir": str(cache), "deliveries": [
        {"name": "has-base", "images": [child_image], "present": [base_layers]},
        {"name": "empty", "images": [child_image]},
    ]}
    check_run = run_tasks([module_task("image_bundle", args, check=True)])[0]
    assert not check_run.failed, check_run.msg
    assert check_run["deliveries"]["has-base"]["layers_sent"] == 1 and check_run["deliveries"]["has-base"]["path"] is None
    assert not cache.exists(), "check mode must write nothing"

    real, again = run_tasks([module_task("image_bundle", args), module_task("image_bundle", args)]).results

    assert not real.failed, real.msg
    assert real.changed and real["exported"] == [child_image]
    delta, full = real["deliveries"]["has-base"], real["deliveries"]["empty"]
    assert (delta["layers_total"], delta["layers_sent"], delta["layers_skipped"]) == (len(base_layers) + 1, 1, len(base_layers))
    assert delta["bytes_skipped"] > 0 and full["layers_sent"] == len(base_layers) + 1
    with tarfile.open(delta["path"]) as tar:
        names = tar.getnames()
    assert len([n for n in names if n.endswith("/layer.tar")]) == 1 and "manifest.json" in names

    assert not again.failed and not again.changed and again["exported"] == []
    assert again["deliveries"]["has-base"]["path"] == delta["path"]

    image_id = json.loads(docker("image", "inspect", child_image).stdout)[0]["Id"]
    docker("image", "rm", child_image)
    docker("load", "-i", delta["path"])  # the engine has the base: the archive's missing layers do not matter
    assert json.loads(docker("image", "inspect", child_image).stdout)[0]["Id"] == image_id


def test_an_image_the_engine_lacks_is_named(tmp_path):
    res = run_tasks([module_task("image_bundle", {"cache_dir": str(tmp_path), "deliveries": [
        {"name": "h", "images": ["ktrdr-ops-no-such-image:0"]}]})])[0]
    assert res.failed and "Image ktrdr-ops-no-such-image:0 is not on the build host's engine" in res.msg
