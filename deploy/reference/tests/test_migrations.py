"""Schema comes from alembic only: empty → head, older revision → head, a failing upgrade
changes nothing, and the backend refuses operations (503) until the schema is at head."""

import subprocess

from stack import PYTHON, REFERENCE_DIR, api, clean_env, migrate, start_backend

OLD, HEAD = "6bfcfd0a377f", "a1b2c3d4e5f6"


def tables(pg, db):
    return set(pg.psql("SELECT tablename FROM pg_tables WHERE schemaname='public'", db.name).split())


def revision(pg, db):
    return pg.psql("SELECT version_num FROM alembic_version", db.name)


def test_code_head_is_alembic_head():
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from ktrdr.api.models.db import SCHEMA_HEAD

    script = ScriptDirectory.from_config(Config(str(REFERENCE_DIR / "alembic.ini")))
    assert script.get_heads() == [SCHEMA_HEAD] == [HEAD]
    assert [r.revision for r in script.walk_revisions()] == [HEAD, OLD]


def test_upgrade_from_empty_to_head(pg):
    db = pg.create_database()
    out = migrate(db.env, "head")
    assert f"-> {OLD}" in out.stderr and f"{OLD} -> {HEAD}" in out.stderr
    assert {"operations", "operation_checkpoints", "alembic_version"} <= tables(pg, db)
    assert revision(pg, db) == HEAD
    indexes = set(pg.psql("SELECT indexname FROM pg_indexes WHERE schemaname='public'", db.name).split())
    assert {"ix_operations_status", "ix_operations_worker_id", "ix_operations_operation_type",
            "ix_operations_created_at", "ix_checkpoints_created_at", "ix_checkpoints_type"} <= indexes
    current = migrate(db.env, None, command="current")
    assert f"{HEAD} (head)" in current.stdout
    # Idempotent: a second upgrade applies nothing.
    again = migrate(db.env, "head")
    assert "Running upgrade" not in again.stderr


def test_upgrade_from_older_revision_keeps_rows(pg):
    db = pg.create_database()
    migrate(db.env, OLD)
    assert revision(pg, db) == OLD and "operation_checkpoints" not in tables(pg, db)
    pg.psql("INSERT INTO operations (operation_id, operation_type, status) VALUES ('op_keep', 'training', 'completed')",
            db.name)
    out = migrate(db.env, "head")
    assert f"{OLD} -> {HEAD}" in out.stderr and f"-> {OLD}," not in out.stderr
    assert revision(pg, db) == HEAD
    assert pg.psql("SELECT status FROM operations WHERE operation_id='op_keep'", db.name) == "completed"


def test_downgrade_steps_back(pg):
    db = pg.create_database()
    migrate(db.env, "head")
    migrate(db.env, OLD, command="downgrade")
    assert revision(pg, db) == OLD and "operation_checkpoints" not in tables(pg, db)
    migrate(db.env, "base", command="downgrade")
    assert tables(pg, db) == {"alembic_version"}


def test_failing_upgrade_rolls_back_every_revision(pg):
    db = pg.create_database()
    # Something already owns the name the second revision creates: that revision fails.
    pg.psql("CREATE TABLE operation_checkpoints (x int)", db.name, user="ktrdr")
    out = migrate(db.env, "head", check=False)
    assert out.returncode != 0 and "operation_checkpoints" in out.stderr
    # One transaction: the first revision's table and the version row are gone too.
    assert tables(pg, db) == {"operation_checkpoints"}


def test_unreachable_database_message():
    env = {"KTRDR_DB_HOST": "127.0.0.1", "KTRDR_DB_PORT": "1", "KTRDR_DB_PASSWORD": "x"}
    out = subprocess.run([PYTHON, "-m", "alembic", "upgrade", "head"], cwd=REFERENCE_DIR, env=clean_env(env),
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0
    assert "cannot reach PostgreSQL at ktrdr@127.0.0.1:1/ktrdr" in out.stderr


def test_deprecated_db_aliases_work(pg):
    db = pg.create_database()
    aliases = {k.replace("KTRDR_", ""): v for k, v in db.env.items()}  # DB_HOST, DB_PORT, ...
    out = subprocess.run([PYTHON, "-m", "alembic", "upgrade", "head"], cwd=REFERENCE_DIR,
                         env=clean_env(aliases), capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert revision(pg, db) == HEAD


def test_backend_refuses_operations_until_schema_is_at_head(pg, tmp_path):
    db = pg.create_database()
    (tmp_path / "strategies").mkdir()
    backend = start_backend(db, tmp_path, tmp_path / "strategies", tmp_path / "models")
    try:
        with api(backend.url) as c:
            health = c.get("/health")
            assert health.status_code == 200  # like ktrdr, health stays up
            assert health.json()["status"] == "ok"
            assert health.json()["database"] | {"error": None} == {
                "connected": True, "database": f"ktrdr@127.0.0.1:{pg.port}/{db.name}", "revision": None,
                "head": HEAD, "up_to_date": False, "error": None}
            for method, path, body in (("GET", "/operations", None), ("GET", "/operations/op_x", None),
                                       ("POST", "/trainings/start", {"strategy_name": "v3_minimal"})):
                r = c.request(method, path, json=body)
                assert r.status_code == 503, (path, r.text)
                assert "alembic upgrade head" in r.json()["detail"] and "never migrated" in r.json()["detail"]

            migrate(db.env, OLD)
            r = c.get("/operations")
            assert r.status_code == 503 and f"revision {OLD}" in r.json()["detail"]

            migrate(db.env, "head")
            r = c.get("/operations")
            assert r.status_code == 200
            assert r.json() == {"success": True, "data": [], "total_count": 0, "active_count": 0}
            assert c.get("/health").json()["database"]["up_to_date"] is True
    finally:
        backend.stop()
