"""Revision-graph logic of ktrdr.ops.migration (what the runner reports in, the plan out)."""

import json

import pytest

from ansible_collections.ktrdr.ops.plugins.module_utils._migration import (
    RESULT_MARKER,
    RUNNER,
    MigrationError,
    ancestors,
    describe,
    ordered,
    parse_runner_output,
    plan,
    resolve_target,
    runner_args,
    single,
)

# ktrdr's real chain, plus a third revision for the upgrade cases.
LINEAR = {
    "6bfcfd0a377f": {"down": [], "doc": "create operations table"},
    "a1b2c3d4e5f6": {"down": ["6bfcfd0a377f"], "doc": "create checkpoints table"},
    "c0ffee000003": {"down": ["a1b2c3d4e5f6"], "doc": "add index"},
}
HEADS = ["c0ffee000003"]

# Two branches merged: base -> b1, base -> b2, (b1, b2) -> m
BRANCHED = {
    "base0000": {"down": [], "doc": "base"},
    "b1000000": {"down": ["base0000"], "doc": "left"},
    "b2000000": {"down": ["base0000"], "doc": "right"},
    "m0000000": {"down": ["b1000000", "b2000000"], "doc": "merge"},
}


def test_from_empty_applies_everything_in_order():
    step = plan(LINEAR, HEADS, [], "head")
    assert step == dict(target="c0ffee000003", direction="upgrade", revisions=["6bfcfd0a377f", "a1b2c3d4e5f6", "c0ffee000003"])


def test_from_the_older_revision_applies_the_rest():
    step = plan(LINEAR, HEADS, ["6bfcfd0a377f"], "head")
    assert step["direction"] == "upgrade"
    assert step["revisions"] == ["a1b2c3d4e5f6", "c0ffee000003"]


def test_at_head_nothing_to_do():
    assert plan(LINEAR, HEADS, ["c0ffee000003"], "head") == dict(target="c0ffee000003", direction="none", revisions=[])


def test_upgrade_to_an_intermediate_target_by_prefix():
    step = plan(LINEAR, HEADS, [], "a1b2")
    assert step["target"] == "a1b2c3d4e5f6"
    assert step["revisions"] == ["6bfcfd0a377f", "a1b2c3d4e5f6"]


def test_downgrade_lists_newest_first():
    step = plan(LINEAR, HEADS, ["c0ffee000003"], "6bfcfd0a377f")
    assert step["direction"] == "downgrade"
    assert step["revisions"] == ["c0ffee000003", "a1b2c3d4e5f6"]


def test_downgrade_to_base():
    step = plan(LINEAR, HEADS, ["a1b2c3d4e5f6"], "base")
    assert step == dict(target=None, direction="downgrade", revisions=["a1b2c3d4e5f6", "6bfcfd0a377f"])
    assert plan(LINEAR, HEADS, [], "base")["direction"] == "none"


def test_database_ahead_of_the_image_is_refused_with_the_reason():
    with pytest.raises(MigrationError) as exc:
        plan(LINEAR, HEADS, ["ffffffffffff"], "head")
    assert "ffffffffffff" in str(exc.value) and "newer image" in str(exc.value)


def test_unknown_and_ambiguous_targets():
    with pytest.raises(MigrationError) as exc:
        resolve_target(LINEAR, HEADS, "deadbeef")
    assert "not a revision" in str(exc.value) and "6bfcfd0a377f, a1b2c3d4e5f6, c0ffee000003" in str(exc.value)
    revs = dict(LINEAR, a1b2ffffffff={"down": [], "doc": ""})
    with pytest.raises(MigrationError) as exc:
        resolve_target(revs, HEADS, "a1b2")
    assert "ambiguous" in str(exc.value)
    with pytest.raises(MigrationError):
        resolve_target(LINEAR, HEADS, "a1b")  # too short to be a prefix


def test_several_heads_need_a_merge_or_an_explicit_target():
    with pytest.raises(MigrationError) as exc:
        resolve_target(BRANCHED, ["b1000000", "b2000000"], "head")
    assert "2 heads" in str(exc.value)


def test_merge_graph_orders_parents_first():
    assert ancestors(BRANCHED, "m0000000") == set(BRANCHED)
    order = ordered(BRANCHED, set(BRANCHED))
    assert order[0] == "base0000" and order[-1] == "m0000000"
    step = plan(BRANCHED, ["m0000000"], ["b1000000"], "head")
    assert step["revisions"] == ["b2000000", "m0000000"]
    # branch heads recorded in alembic_version as two rows
    assert plan(BRANCHED, ["m0000000"], ["b1000000", "b2000000"], "head")["revisions"] == ["m0000000"]


def test_sideways_move_is_refused():
    with pytest.raises(MigrationError) as exc:
        plan(BRANCHED, ["m0000000"], ["b1000000"], "b2000000")
    assert "another branch" in str(exc.value)


def test_describe_and_single():
    assert describe(LINEAR, ["6bfcfd0a377f"]) == "6bfcfd0a377f (create operations table)"
    assert single([]) is None and single(["a"]) == "a" and single(["a", "b"]) == "a,b"


def test_parse_runner_output_takes_the_last_marker():
    out = "INFO alembic\nnoise %s{\"ok\": false}\nmore\n%s{\"ok\": true, \"heads\": [\"x\"]}\n" % (RESULT_MARKER, RESULT_MARKER)
    res, logs = parse_runner_output(out)
    assert res == {"ok": True, "heads": ["x"]}
    assert logs.startswith("INFO alembic")
    with pytest.raises(MigrationError) as exc:
        parse_runner_output("Traceback: python: not found")
    assert "printed no result" in str(exc.value) and "python: not found" in str(exc.value)


def test_runner_is_valid_python_and_args_round_trip():
    compile(RUNNER, "<runner>", "exec")
    args = json.loads(runner_args("apply", target="a1b2c3d4e5f6", deadline=123.0))
    assert args["mode"] == "apply" and args["target"] == "a1b2c3d4e5f6" and args["workdir"] == "/app"


def test_last_error_picks_the_exception_and_its_sql():
    from ansible_collections.ktrdr.ops.plugins.modules.migration import _last_error

    out = """INFO  [alembic.runtime.migration] Running upgrade a1b2c3d4e5f6 -> b0rken000003, broken
Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/sqlalchemy/engine/base.py", line 1977, in _exec_single_context
asyncpg.exceptions.DivisionByZeroError: division by zero

The above exception was the direct cause of the following exception:

sqlalchemy.exc.DBAPIError: (sqlalchemy.dialects.postgresql.asyncpg.Error) division by zero
[SQL: SELECT 1/0]
(Background on this error at: https://sqlalche.me/e/21/dbapi)"""
    assert _last_error(out) == ("sqlalchemy.exc.DBAPIError: (sqlalchemy.dialects.postgresql.asyncpg.Error) division by zero "
                                "[SQL: SELECT 1/0]")
    assert _last_error("  FAILED: Can't locate revision identified by 'zzz'\n") == "FAILED: Can't locate revision identified by 'zzz'"
    assert _last_error("alembic: cannot reach PostgreSQL at db:5432\n") == "alembic: cannot reach PostgreSQL at db:5432"
    assert _last_error("") == "(no output)"
