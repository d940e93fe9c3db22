"""ktrdr.ops.migration against the built images: a ktrdr-postgres container and one-shot containers of
the ktrdr-backend image on a user-defined network, exactly as the deploy runs it. Nothing is mocked.

From an empty database and from the older revision: check mode (the revision does not move) -> real run
-> idempotent rerun. Two concurrent runs serialize on the advisory lock. A migration that fails (a real
broken third revision, in an image built FROM the backend image) leaves the database at its revision.
"""

import io
import json
import os
import stat
import tarfile
import threading
import time
import uuid

import pytest

from ansible_run import ROOT, module_task, run_tasks
from broken_revision import BROKEN_REVISION
from conftest import TEST_LABEL, docker

pytestmark = pytest.mark.needs_images

IMAGES_JSON = os.path.join(ROOT, "build", "images.json")
HEAD = "a1b2c3d4e5f6"
OLDER = "6bfcfd0a377f"
BROKEN = "b0rken000003"
SLOW = "510w00000003"
RUN_ID = uuid.uuid4().hex[:6]
BACKEND = "ktrdr-ops-test-backend:%s" % RUN_ID  # our own tags: a rebuild elsewhere cannot pull the image away mid-test
BROKEN_IMAGE = "ktrdr-ops-test-backend:%s-broken" % RUN_ID
SLOW_IMAGE = "ktrdr-ops-test-backend:%s-slow" % RUN_ID
PASSWORD = "mig-s3cret"

SLOW_REVISION = '''"""slow on purpose: holds the migration for a few seconds so concurrent runs overlap

Revision ID: 510w00000003
Revises: a1b2c3d4e5f6
"""
from alembic import op
import sqlalchemy as sa

revision = "510w00000003"
down_revision = "a1b2c3d4e5f6"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("SELECT pg_sleep(8)")
    op.create_table("ops_slow_probe", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("ops_slow_probe")
'''


def build_variant(base, tag, filename, text):
    """An image FROM the backend image with one more alembic revision (docker build of a tar context)."""
    dockerfile = "FROM %s\nCOPY %s /app/alembic/versions/%s\n" % (base, filename, filename)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile), (filename, text)):
            raw = data.encode()
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(raw))
    import subprocess

    subprocess.run(["docker", "build", "-q", "--label", TEST_LABEL, "-t", tag, "-"], input=buf.getvalue(),
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def images():
    if not os.path.isfile(IMAGES_JSON):
        pytest.skip("build/images.json does not exist: build the images first (make images); the migration tests run "
                    "alembic from the ktrdr-backend image against the ktrdr-postgres image")
    with open(IMAGES_JSON) as fh:
        recorded = json.load(fh)
    missing = [recorded.get(k) or k for k in ("backend", "postgres")
               if not recorded.get(k) or docker("image", "inspect", recorded[k], check=False).returncode != 0]
    if missing:
        pytest.skip("images named in build/images.json are not on the Docker engine: %s (run make images)" % ", ".join(missing))
    postgres = "ktrdr-ops-test-postgres:%s" % RUN_ID
    docker("tag", recorded["backend"], BACKEND)
    docker("tag", recorded["postgres"], postgres)
    build_variant(BACKEND, BROKEN_IMAGE, "b0rken000003_broken.py", BROKEN_REVISION)
    build_variant(BACKEND, SLOW_IMAGE, "510w00000003_slow.py", SLOW_REVISION)
    yield dict(backend=BACKEND, postgres=postgres)
    docker("rmi", BROKEN_IMAGE, SLOW_IMAGE, BACKEND, postgres, check=False)


class PgContainer:
    def __init__(self, name, network):
        self.name, self.network = name, network
        self._n = 0

    def psql(self, sql, db="postgres"):
        proc = docker("exec", self.name, "psql", "-U", "ktrdr", "-d", db, "-v", "ON_ERROR_STOP=1", "-tAc", sql, check=False)
        if proc.returncode != 0:
            raise AssertionError("psql failed: %s" % proc.stderr)
        return proc.stdout.strip()

    def new_db(self):
        self._n += 1
        name = "mig_%d_%s" % (self._n, uuid.uuid4().hex[:6])
        self.psql("CREATE DATABASE %s" % name)
        return name

    def revision(self, db):
        if self.psql("SELECT to_regclass('alembic_version') IS NOT NULL", db) != "t":
            return None
        return self.psql("SELECT string_agg(version_num, ',') FROM alembic_version", db) or None

    def has_table(self, db, table):
        return self.psql("SELECT to_regclass('%s') IS NOT NULL" % table, db) == "t"


@pytest.fixture(scope="module")
def pgc(images):
    network = "ktrdr-ops-test-%s" % RUN_ID
    name = "ktrdr-ops-test-db-%s" % RUN_ID
    docker("network", "create", "--label", TEST_LABEL, network)
    docker("run", "-d", "--name", name, "--label", TEST_LABEL, "--network", network,
           "-e", "POSTGRES_DB=ktrdr", "-e", "POSTGRES_USER=ktrdr", "-e", "POSTGRES_PASSWORD=%s" % PASSWORD, images["postgres"])
    deadline = time.monotonic() + 120
    while docker("inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip() != "healthy":
        assert time.monotonic() < deadline, docker("logs", name, check=False).stdout[-3000:]
        time.sleep(1)
    yield PgContainer(name, network)
    docker("rm", "-f", "-v", name, check=False)
    docker("network", "rm", network, check=False)


def mig(pgc, db, image=BACKEND, **extra):
    args = dict(image=image, db_host=pgc.name, db_name=db, db_user="ktrdr", db_password=PASSWORD)
    args.update(extra)
    return args


def test_from_empty_check_real_idempotent_with_backup(pgc, tmp_path):
    db = pgc.new_db()
    backups = tmp_path / "backups"
    backups.mkdir()
    args = mig(pgc, db, backup_dir=str(backups), backup_container=pgc.name)

    check_run = run_tasks([module_task("migration", args, check=True)])[0]
    assert not check_run.failed, check_run.msg
    assert check_run.changed
    assert check_run["pending"] == [OLDER, HEAD] and check_run["applied"] == []
    assert check_run["revision_before"] is None and check_run["revision"] is None and check_run["head"] == HEAD
    assert check_run["diff"] == {"before": {"revision": None}, "after": {"revision": HEAD}}
    assert check_run.msg == ("Would upgrade the database from an empty schema to %s: %s (create operations table), "
                             "%s (create checkpoints table) (check mode)" % (HEAD, OLDER, HEAD))
    assert pgc.revision(db) is None and not pgc.has_table(db, "operations"), "check mode must not migrate"
    assert list(backups.iterdir()) == [], "check mode must not take a backup"

    run = run_tasks([module_task("migration", args), module_task("migration", args), module_task("migration", args, check=True)])
    real, again, check_again = run.results
    assert not real.failed, real.msg
    assert real.changed and real["applied"] == [OLDER, HEAD]
    assert real["revision_before"] is None and real["revision"] == HEAD
    assert real["diff"] == {"before": {"revision": None}, "after": {"revision": HEAD}}
    assert "Running upgrade  -> 6bfcfd0a377f, create operations table" in real["output"]
    assert "Running upgrade 6bfcfd0a377f -> a1b2c3d4e5f6, create checkpoints table" in real["output"]
    assert pgc.revision(db) == HEAD and pgc.has_table(db, "operation_checkpoints")
    dump = real["backup_path"]
    assert os.path.dirname(dump) == str(backups) and os.path.basename(dump).startswith("%s-empty-" % db)
    assert os.path.getsize(dump) == real["backup_bytes"] > 0
    assert stat.S_IMODE(os.stat(dump).st_mode) == 0o600
    with open(dump, "rb") as fh:
        assert fh.read(5) == b"PGDMP"  # pg_dump's custom format

    for res in (again, check_again):
        assert not res.failed and not res.changed, res.msg
        assert res["pending"] == [] and res["applied"] == []
        assert res.msg == "Database is at revision %s (head); nothing to do" % HEAD
        assert "backup_path" not in res
    assert len(list(backups.iterdir())) == 1, "no backup when there is nothing to apply"


def test_from_the_older_revision(pgc):
    db = pgc.new_db()
    run = run_tasks([module_task("migration", mig(pgc, db, target=OLDER)),
                     module_task("migration", mig(pgc, db), check=True)])
    first, check_run = run.results
    assert first.changed and first["applied"] == [OLDER] and first["revision"] == OLDER
    assert check_run.changed and check_run["pending"] == [HEAD] and check_run["revision"] == OLDER
    assert pgc.revision(db) == OLDER and not pgc.has_table(db, "operation_checkpoints")

    run = run_tasks([module_task("migration", mig(pgc, db)), module_task("migration", mig(pgc, db))])
    real, again = run.results
    assert real.changed and real["applied"] == [HEAD] and real["revision_before"] == OLDER and real["revision"] == HEAD
    assert real.msg == "Database upgraded from %s to %s: %s (create checkpoints table)" % (OLDER, HEAD, HEAD)
    assert not again.changed
    assert pgc.revision(db) == HEAD


def test_concurrent_runs_serialize_on_the_lock(pgc):
    db = pgc.new_db()
    run_tasks([module_task("migration", mig(pgc, db))])  # at a1b2c3d4e5f6; the slow revision is next
    results = []

    def one():
        results.append(run_tasks([module_task("migration", mig(pgc, db, image=SLOW_IMAGE))])[0])

    threads = [threading.Thread(target=one) for dummy in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(results) == 2
    for res in results:
        assert not res.failed, res.msg
    applied = [r for r in results if r.changed]
    waited = [r for r in results if not r.changed]
    assert len(applied) == 1 and len(waited) == 1, [(r.changed, r.msg) for r in results]
    assert applied[0]["applied"] == [SLOW] and applied[0]["revision"] == SLOW
    assert waited[0]["applied"] == [] and waited[0]["revision"] == SLOW
    # Both planned the slow revision (it takes 8 s, far longer than the runs take to look), so the lock, not
    # luck, kept the second from running alembic: it waited, then found the revision applied.
    assert applied[0]["pending"] == [SLOW] and waited[0]["pending"] == [SLOW]
    assert waited[0]["lock_waited_seconds"] >= 2
    assert waited[0].msg.startswith("Database already at revision %s: another run applied %s" % (SLOW, SLOW))
    assert "output" in waited[0] and "Running upgrade" not in waited[0]["output"]
    assert pgc.revision(db) == SLOW and pgc.has_table(db, "ops_slow_probe")


def test_failing_migration_returns_alembics_error_and_leaves_the_database_intact(pgc):
    db = pgc.new_db()
    run_tasks([module_task("migration", mig(pgc, db, target=OLDER))])
    assert pgc.revision(db) == OLDER

    res = run_tasks([module_task("migration", mig(pgc, db, image=BROKEN_IMAGE))])[0]
    assert res.failed and not res.changed
    assert res["pending"] == [HEAD, BROKEN]
    assert res.msg.startswith("alembic upgrade %s failed (exit 1); the database is still at revision %s. alembic said: "
                              % (BROKEN, OLDER))
    assert res.msg.endswith("sqlalchemy.exc.DBAPIError: (sqlalchemy.dialects.postgresql.asyncpg.Error) division by zero "
                            "[SQL: SELECT 1/0]"), res.msg
    assert "Running upgrade 6bfcfd0a377f -> a1b2c3d4e5f6" in res["output"]  # alembic's own output, traceback included
    assert "Running upgrade a1b2c3d4e5f6 -> b0rken000003" in res["output"]
    assert "DivisionByZero" in res["output"] or "division by zero" in res["output"]
    # One transaction: the good revision before the broken one was rolled back too.
    assert pgc.revision(db) == OLDER
    assert not pgc.has_table(db, "operation_checkpoints") and not pgc.has_table(db, "ops_broken_probe")

    good = run_tasks([module_task("migration", mig(pgc, db))])[0]
    assert good.changed and good["revision"] == HEAD


def test_downgrade_only_when_allowed(pgc):
    db = pgc.new_db()
    run_tasks([module_task("migration", mig(pgc, db))])
    run = run_tasks([
        module_task("migration", mig(pgc, db, target=OLDER)),
        module_task("migration", mig(pgc, db, target=OLDER, allow_downgrade=True), check=True),
        module_task("migration", mig(pgc, db, target=OLDER, allow_downgrade=True)),
        module_task("migration", mig(pgc, db, target=OLDER, allow_downgrade=True)),
    ])
    refused, check_run, down, again = run.results
    assert refused.failed and refused.msg == (
        "target %s is older than the database's revision %s; migrating would un-apply %s (create checkpoints table). "
        "Set allow_downgrade=true to do that." % (OLDER, HEAD, HEAD))
    assert check_run.changed and check_run["direction"] == "downgrade" and check_run["pending"] == [HEAD]
    assert down.changed and down["revision"] == OLDER and down["applied"] == [HEAD]
    assert down["diff"] == {"before": {"revision": HEAD}, "after": {"revision": OLDER}}
    assert not again.changed
    assert pgc.revision(db) == OLDER and not pgc.has_table(db, "operation_checkpoints")


def test_database_newer_than_the_image_is_refused(pgc):
    db = pgc.new_db()
    run_tasks([module_task("migration", mig(pgc, db, image=SLOW_IMAGE))])
    assert pgc.revision(db) == SLOW
    res = run_tasks([module_task("migration", mig(pgc, db))])[0]
    assert res.failed
    assert res.msg.startswith("the database is at revision %s, which this image's migrations do not contain" % SLOW)
    assert pgc.revision(db) == SLOW


def test_exec_into_a_running_backend_container(pgc, images):
    db = pgc.new_db()
    name = "ktrdr-ops-test-backend-%s" % uuid.uuid4().hex[:6]
    docker("run", "-d", "--name", name, "--label", TEST_LABEL, "--network", pgc.network,
           "-e", "KTRDR_DB_HOST=%s" % pgc.name, "-e", "KTRDR_DB_NAME=%s" % db, "-e", "KTRDR_DB_USER=ktrdr",
           "-e", "KTRDR_DB_PASSWORD=%s" % PASSWORD, images["backend"], "python", "-c", "import time; time.sleep(600)")
    try:
        args = {"container": name}  # the container's own KTRDR_DB_* settings
        check_run = run_tasks([module_task("migration", args, check=True)])[0]
        assert check_run.changed and check_run["pending"] == [OLDER, HEAD]
        assert pgc.revision(db) is None
        run = run_tasks([module_task("migration", args), module_task("migration", args)])
        real, again = run.results
        assert not real.failed, real.msg
        assert real.changed and real["revision"] == HEAD
        assert not again.changed
        assert pgc.revision(db) == HEAD
    finally:
        docker("rm", "-f", name, check=False)


def test_clear_errors(pgc):
    db = pgc.new_db()
    run = run_tasks([
        module_task("migration", mig(pgc, db, image="ktrdr-backend:does-not-exist")),
        module_task("migration", mig(pgc, db, db_host="no-such-db-host", timeout=20)),
        module_task("migration", mig(pgc, db, db_password="wrong")),
        module_task("migration", mig(pgc, db, target="deadbeef")),
        module_task("migration", {"container": "no-such-container-xyz"}),
        module_task("migration", mig(pgc, db, network="no-such-network-xyz")),
    ])
    no_image, no_host, bad_password, bad_target, no_container, no_network = run.results
    assert no_image.failed and no_image.msg.startswith(
        "Image ktrdr-backend:does-not-exist is not on the Docker engine at unix:///var/run/docker.sock (it is not pulled)")
    assert no_host.failed and "cannot connect to PostgreSQL ktrdr@no-such-db-host:5432/%s" % db in no_host.msg
    assert bad_password.failed and "password authentication failed" in bad_password.msg
    assert PASSWORD not in json.dumps(bad_password) and "wrong" not in bad_password.msg
    assert bad_target.failed and bad_target.msg.startswith("target 'deadbeef' is not a revision of this image's migrations (known: "
                                                           "%s, %s; or head, base)" % (OLDER, HEAD))
    assert no_container.failed and no_container.msg == "Cannot exec into the backend: container no-such-container-xyz does not exist"
    assert no_network.failed and no_network.msg.startswith("Docker network no-such-network-xyz does not exist")
    assert pgc.revision(db) is None
