"""The PostgreSQL major decision of ktrdr.ops.database_version_info (pure functions)."""

from ansible_collections.ktrdr.ops.plugins.modules.database_version_info import parse_probe, verdict


def test_reads_debian_and_official_image_output():
    assert parse_probe("volume=15\nserver=postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n") == ("15", "15")
    assert parse_probe("volume=\nserver=postgres (PostgreSQL) 17.2\n") == ("", "17")
    assert parse_probe("volume=\nserver=\n") == ("", "")


def test_same_major_or_empty_volume_is_compatible():
    assert verdict("v", "img", "15", "15")[0]
    ok, msg = verdict("v", "img", "", "17")
    assert ok and "no PostgreSQL data yet" in msg


def test_a_major_switch_is_refused_naming_both_majors_and_the_ways_out():
    ok, msg = verdict("ktrdr-local-pgdata", "ktrdr-postgres:abc", "15", "17")
    assert not ok
    for needle in ("ktrdr-local-pgdata", "PostgreSQL 15 data directory", "runs PostgreSQL 17", "Nothing was changed",
                   "images_postgres_major=15", "database_volume"):
        assert needle in msg, needle


# plan(): what the role does with the majors, the upgrade volume and the container's volume.
from ansible_collections.ktrdr.ops.plugins.modules.database_version_info import parse_marker, plan  # noqa: E402

V, T, IMG = "ktrdr-local-pgdata", "ktrdr-local-pgdata-pg17", "ktrdr-postgres:17"
DONE = dict(labels={"io.ktrdr.upgrade.from": V}, major="17", marker={"from_volume": V, "from_major": "15", "major": "17"})
PARTIAL = dict(labels={"io.ktrdr.upgrade.from": V}, major="17", marker=None)


def decide(volume_major="15", image_major="17", target=None, container_volume=V, allow=False, old_image="sha256:old",
           old_image_is_new=False):
    return plan(V, IMG, volume_major, image_major, T, target, "ktrdr-local-db", container_volume, allow, old_image,
                old_image_is_new)


def test_plan_same_major_or_first_deploy_runs_on_the_volume():
    assert decide("17")["decision"] == "run" and decide("17")["run_volume"] == V
    first = decide("", container_volume="")
    assert first["decision"] == "run" and first["run_volume"] == V and first["compatible"]


def test_plan_a_switch_is_refused_unless_allowed_then_upgrades_into_the_new_volume():
    refused = decide()
    assert refused["decision"] == "refuse" and not refused["compatible"] and "database_major_upgrade=true" in refused["message"]
    up = decide(allow=True)
    assert up["decision"] == "upgrade" and up["run_volume"] == T and "kept for a rollback" in up["message"]
    redo = decide(allow=True, target=PARTIAL)
    assert redo["decision"] == "upgrade" and redo["upgrade_state"] == "partial" and "unfinished" in redo["message"]
    assert decide(allow=True, target=PARTIAL, container_volume=T)["decision"] == "refuse"


def test_plan_an_upgrade_needs_an_image_of_the_old_major():
    gone = decide(allow=True, container_volume="", old_image="")
    assert gone["decision"] == "refuse" and "database_upgrade_from_image" in gone["message"]
    switched = decide(allow=True, old_image_is_new=True)
    assert switched["decision"] == "refuse" and "already runs" in switched["message"]
    assert decide(allow=True, container_volume="", old_image="ktrdr-postgres:15")["decision"] == "upgrade"


def test_plan_a_finished_upgrade_is_run_on_with_or_without_the_flag():
    for allow in (True, False):
        for container_volume in (T, ""):
            done = decide(target=DONE, container_volume=container_volume, allow=allow)
            assert done["decision"] == "run" and done["run_volume"] == T and done["compatible"], done
    # The old volume removed after the upgrade: still the upgrade volume, not a fresh empty database.
    assert decide("", target=DONE, container_volume=T)["run_volume"] == T


def test_plan_rollback_and_what_it_leaves_refused():
    back = decide("15", "15", target=DONE, container_volume=T)  # the old image again: the old volume
    assert back["decision"] == "run" and back["run_volume"] == V and "rollback" in back["message"]
    stale = decide(target=DONE, container_volume=V, allow=True)  # after the rollback, the 17 volume is older
    assert stale["decision"] == "refuse" and "docker volume rm %s" % T in stale["message"]
    assert "database_volume=%s" % T in stale["message"]


def test_plan_refuses_a_foreign_volume_a_third_volume_and_an_upgrade_to_another_major():
    foreign = decide(allow=True, target=dict(labels={}, major="", marker=None))
    assert foreign["decision"] == "refuse" and foreign["upgrade_state"] == "foreign"
    third = decide(allow=True, container_volume="elsewhere")
    assert third["decision"] == "refuse" and "database_volume=elsewhere" in third["message"]
    other = decide(allow=True, target=dict(DONE, marker=dict(DONE["marker"], major="16")), container_volume="")
    assert other["decision"] == "refuse" and "PostgreSQL 16" in other["message"]


def test_reads_the_upgrade_record():
    assert parse_marker('volume=17\nmarker={"from_volume": "v"}\n') == {"from_volume": "v"}
    assert parse_marker("volume=17\nmarker=\n") is None and parse_marker("marker=[1]\n") is None
