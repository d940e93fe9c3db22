"""ktrdr.ops.database_version_info on this machine's engine: real volumes, the built ktrdr-postgres image."""

import uuid

import pytest

from ansible_run import module_task, run_tasks
from conftest import TEST_LABEL, docker
from test_migration import images  # noqa: F401  (fixture: the built images, or a skip saying how to build them)

pytestmark = pytest.mark.needs_images


@pytest.fixture
def volume():
    name = "ktrdr-ops-test-pgdata-%s" % uuid.uuid4().hex[:8]
    docker("volume", "create", "--label", TEST_LABEL, name)
    yield name
    docker("rm", "-f", name + "-db", check=False)
    docker("volume", "rm", "-f", name, check=False)


def probe(image, vol, container=None, check=False, **more):
    args = dict({"volume": vol, "image": image}, **more)
    if container:
        args["container"] = container
    return module_task("database_version_info", args, check=check)


def test_a_volume_not_created_yet_fits_any_image(images):
    res = run_tasks([probe(images["postgres"], "ktrdr-ops-test-no-such-volume")])[0]
    assert not res.failed and res["compatible"] and res["source"] == "none" and not res.changed


def test_same_major_from_a_oneshot_and_from_the_running_database(images, volume):
    empty, = run_tasks([probe(images["postgres"], volume)]).results
    assert empty["compatible"] and empty["volume_major"] == "" and empty["image_major"] == "15"
    name = volume + "-db"
    docker("run", "-d", "--name", name, "--label", TEST_LABEL, "-v", "%s:/var/lib/postgresql/data" % volume,
           "-e", "POSTGRES_PASSWORD=x", images["postgres"])
    docker("exec", name, "sh", "-c", "until pg_isready -q -h 127.0.0.1; do sleep 0.5; done", timeout=120)
    running, checked = run_tasks([probe(images["postgres"], volume, container=name),
                                  probe(images["postgres"], volume, container=name, check=True)]).results
    assert running["compatible"] and running["volume_major"] == "15" and running["source"] == "container"
    assert checked["compatible"] and not checked.changed
    docker("stop", name)
    stopped, = run_tasks([probe(images["postgres"], volume, container=name)]).results
    assert stopped["source"] == "oneshot" and stopped["volume_major"] == "15" and stopped["compatible"]
    assert docker("ps", "-aq", "--filter", "label=io.ktrdr.ops=pgversion").stdout.strip() == ""


def test_another_major_in_the_volume_is_refused_with_the_ways_out(images, volume):
    # What PostgreSQL itself reads to tell the data directory's major.
    docker("run", "--rm", "-u", "0", "-v", "%s:/data" % volume, "--entrypoint", "sh", images["postgres"],
           "-c", "echo 17 > /data/PG_VERSION")
    res, = run_tasks([probe(images["postgres"], volume)]).results
    assert not res.failed and res["compatible"] is False
    assert res["volume_major"] == "17" and res["image_major"] == "15"
    assert "holds a PostgreSQL 17 data directory" in res["message"] and "runs PostgreSQL 15" in res["message"]
    assert res["decision"] == "refuse" and res["run_volume"] == volume and res["upgrade_volume"] == volume + "-pg15"
    assert "database_major_upgrade=true" in res["message"]


def test_an_allowed_upgrade_needs_an_old_image_and_names_the_new_volume(images, volume):
    docker("run", "--rm", "-u", "0", "-v", "%s:/data" % volume, "--entrypoint", "sh", images["postgres"],
           "-c", "echo 17 > /data/PG_VERSION")
    no_image, given, renamed = run_tasks([
        probe(images["postgres"], volume, container=volume + "-db", upgrade=True),
        probe(images["postgres"], volume, upgrade=True, old_image="some-postgres:17"),
        probe(images["postgres"], volume, upgrade=True, old_image="some-postgres:17", upgrade_volume=volume + "-new"),
    ]).results
    assert no_image["decision"] == "refuse" and "database_upgrade_from_image" in no_image["message"]
    assert given["decision"] == "upgrade" and given["run_volume"] == volume + "-pg15" and given["old_image"] == "some-postgres:17"
    assert renamed["decision"] == "upgrade" and renamed["upgrade_volume"] == volume + "-new"


def test_an_upgrade_volume_not_made_from_the_volume_is_refused(images, volume):
    docker("run", "--rm", "-u", "0", "-v", "%s:/data" % volume, "--entrypoint", "sh", images["postgres"],
           "-c", "echo 17 > /data/PG_VERSION")
    docker("volume", "create", "--label", TEST_LABEL, volume + "-pg15")
    try:
        res, = run_tasks([probe(images["postgres"], volume, upgrade=True, old_image="some-postgres:17")]).results
    finally:
        docker("volume", "rm", "-f", volume + "-pg15", check=False)
    assert res["decision"] == "refuse" and res["upgrade_state"] == "foreign" and "database_upgrade_volume" in res["message"]
