"""The decisions of ktrdr.ops.database_upgrade (pure functions): what a restore may fail on, what the verification compares."""

from ansible_collections.ktrdr.ops.plugins.modules.database_upgrade import (
    compare_counts, parse_counts, parse_probe, redact, restore_errors, summary, target_state)

STDERR = """psql:/tmp/ktrdr-upgrade-1.sql:14: ERROR:  role "ktrdr" already exists
psql:/tmp/ktrdr-upgrade-1.sql:198: ERROR:  extension "adminpack" is not available
DETAIL:  Could not open extension control file "/usr/share/postgresql/17/extension/adminpack.control": No such file or directory.
psql:/tmp/ktrdr-upgrade-1.sql:205: ERROR:  role "reporting" already exists
psql:/tmp/ktrdr-upgrade-1.sql:9: ERROR:  syntax error at or near "PASSWORD" LINE 1: ALTER ROLE x PASSWORD 'SCRAM-SHA-256$4096:abc'
"""


def test_only_the_superuser_existing_already_is_accepted():
    fatal, accepted = restore_errors(STDERR, "ktrdr")
    assert accepted == ['psql:/tmp/ktrdr-upgrade-1.sql:14: ERROR:  role "ktrdr" already exists']
    assert len(fatal) == 3 and 'extension "adminpack" is not available' in fatal[0]
    assert 'role "reporting" already exists' in fatal[1]  # another role existing means the new volume was not empty
    assert "SCRAM" not in fatal[2] and "PASSWORD '********'" in fatal[2]
    assert restore_errors("", "ktrdr") == ([], [])
    assert restore_errors('NOTICE:  role "ktrdr" already exists\n', "ktrdr") == ([], [])


def test_redact_masks_password_hashes():
    assert redact("ALTER ROLE ktrdr WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:x=';") == \
        "ALTER ROLE ktrdr WITH LOGIN PASSWORD '********';"
    assert redact(None) == ""


def test_row_counts_are_read_and_compared_table_by_table():
    old = {"ktrdr": parse_counts("public.trades\t2500\npublic.empty_one\t0\n"), "extra": {"public.notes": 1}}
    assert old["ktrdr"] == {"public.trades": 2500, "public.empty_one": 0}
    assert compare_counts(old, {"ktrdr": dict(old["ktrdr"]), "extra": {"public.notes": 1}}) == []
    problems = compare_counts(old, {"ktrdr": {"public.trades": 2499}}, "old-vol", "new-vol")
    assert "database extra is missing from new-vol" in problems
    assert "ktrdr: table public.empty_one is missing from new-vol" in problems
    assert "ktrdr: public.trades has 2500 rows in old-vol, 2499 in new-vol" in problems
    assert compare_counts({"a": {}}, {"a": {"public.x": 0}})[0].startswith("a: table public.x is in")
    assert summary(old) == {"ktrdr": {"tables": 2, "rows": 2500}, "extra": {"tables": 1, "rows": 1}}


def test_probe_and_the_state_of_an_existing_upgrade_volume():
    out = 'volume=17\nserver=postgres (PostgreSQL) 17.12 (Debian 17.12-0+deb13u1)\nmarker={"from_volume": "v", "major": "17"}\n'
    assert parse_probe(out) == dict(volume="17", server="17", marker={"from_volume": "v", "major": "17"})
    assert parse_probe("volume=\nserver=\nmarker={not json\n")["marker"] is None
    labels = {"io.ktrdr.upgrade.from": "v"}
    assert target_state("v", labels, {"from_volume": "v"}) == "done"
    assert target_state("v", labels, None) == "partial"
    assert target_state("v", {}, {"from_volume": "v"}) == "foreign"
    assert target_state("v", {"io.ktrdr.upgrade.from": "w"}, None) == "foreign"
