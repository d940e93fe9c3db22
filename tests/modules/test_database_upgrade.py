"""The database role's PostgreSQL major upgrade (ktrdr.ops.database_version_info + ktrdr.ops.database_upgrade), for real.

PostgreSQL 15 is the built ktrdr-postgres image (build/images.json); PostgreSQL 17 is the same Dockerfile and entrypoint
(deploy/docker/Dockerfile.postgres) on a debootstrapped Debian trixie, built once and kept as ktrdr-ops-test-postgres:17.
Each test deploys the role from a small playbook, with its own project (container, network, volumes) and no published
port, and removes all of it afterwards.

- Without database_major_upgrade the switch to 17 is refused naming both majors, and the 15 container keeps serving;
  check mode with the flag changes nothing.
- With it the data survives into 17, the old volume is kept as it was, re-runs change nothing, a rollback to the 15
  image runs the old volume again.
- A restore that fails (an extension PostgreSQL 17 no longer ships), or an initialisation that fails, leaves the 15
  container serving and nothing behind; a switch that fails puts the 15 container back; a re-run then upgrades.
"""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid

import pytest

from ansible_run import COLLECTIONS, ROOT, VENV_BIN
from conftest import TEST_LABEL, docker

pytestmark = pytest.mark.needs_images

IMAGES_JSON = os.path.join(ROOT, "build", "images.json")
PG17 = "ktrdr-ops-test-postgres:17"
TRIXIE = "ktrdr-ops-test-debian:trixie"
TRIXIE_CACHE = os.path.join(ROOT, "build", "cache", "debootstrap", "trixie-ktrdr-ops-test")
MIRROR = "http://deb.debian.org/debian"
RUN_ID = uuid.uuid4().hex[:6]
PASSWORD = "upgrade-s3cret-pw"
REFUSE = "Refuse a PostgreSQL major switch on existing data"
UPGRADE = "Upgrade the data to the image's PostgreSQL major in a new volume"
DEBOOTSTRAP = r"""
set -eu
rm -rf rootfs.partial rootfs.tar.partial
debootstrap --variant=minbase --arch="$1" trixie rootfs.partial "$2"
# As the images role's base: apt drops downloaded packages, no package lists in the image.
printf '%s\n' \
  'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
  'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
  'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' > rootfs.partial/etc/apt/apt.conf.d/docker-clean
find rootfs.partial/var/cache/apt -type f -delete
find rootfs.partial/var/lib/apt/lists -maxdepth 1 -type f -delete
tar --numeric-owner -C rootfs.partial -cf rootfs.tar.partial .
mv rootfs.tar.partial rootfs.tar
rm -rf rootfs.partial
"""


# --- images -----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pg15():
    """The built ktrdr-postgres (PostgreSQL 15) under a tag of this run, so a rebuild elsewhere cannot move it."""
    if not os.path.isfile(IMAGES_JSON):
        pytest.skip("build/images.json does not exist: build the images first (make images)")
    with open(IMAGES_JSON) as fh:
        built = json.load(fh).get("postgres")
    if not built or docker("image", "inspect", built, check=False).returncode != 0:
        pytest.skip("the postgres image of build/images.json (%s) is not on the Docker engine (make images)" % built)
    tag = "ktrdr-ops-test-postgres:15-%s" % RUN_ID
    docker("tag", built, tag)
    yield tag
    docker("rmi", tag, check=False)


def _context():
    """deploy/docker/Dockerfile.postgres and its entrypoint, as the images role stages them (a ustar stream)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for src, name, mode in (("Dockerfile.postgres", "Dockerfile", 0o644),
                                ("postgres-entrypoint.sh", "docker/postgres-entrypoint.sh", 0o755)):
            with open(os.path.join(ROOT, "deploy", "docker", src), "rb") as fh:
                raw = fh.read()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(raw), mode
            tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


@pytest.fixture(scope="session")
def pg17():
    """ktrdr-postgres for PostgreSQL 17: Debian trixie (debootstrap, cached under build/cache) + Dockerfile.postgres.

    Built once (about 3 minutes cold: 1.5 debootstrap, 1 apt) and kept by its tag; later sessions reuse it.
    """
    if docker("image", "inspect", PG17, check=False).returncode == 0:
        return PG17
    rootfs = os.path.join(TRIXIE_CACHE, "rootfs.tar")
    if not os.path.isfile(rootfs):
        if not shutil.which("debootstrap") or os.geteuid() != 0:
            pytest.skip("%s is missing and cannot be built here: it needs debootstrap, run as root" % PG17)
        os.makedirs(TRIXIE_CACHE, exist_ok=True)
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
        proc = subprocess.run(["bash", "-c", DEBOOTSTRAP, "debootstrap", arch, MIRROR], cwd=TRIXIE_CACHE,
                              capture_output=True, text=True, check=False, timeout=1200)
        if proc.returncode != 0:
            pytest.skip("debootstrap of Debian trixie from %s failed: %s" % (MIRROR, proc.stderr[-1500:]))
    docker("import", "--change", "ENV LANG=C.UTF-8", rootfs, TRIXIE, timeout=600)
    proc = subprocess.run(["docker", "build", "-q", "--label", TEST_LABEL, "--build-arg", "BASE_IMAGE=" + TRIXIE,
                           "--build-arg", "PG_MAJOR=17", "-t", PG17, "-"], input=_context(), capture_output=True,
                          check=False, timeout=1200)
    docker("rmi", TRIXIE, check=False)
    if proc.returncode != 0:
        pytest.fail("building %s failed: %s" % (PG17, proc.stderr.decode(errors="replace")[-3000:]))
    return PG17


# --- the role, from a playbook ------------------------------------------------------------------

class RoleRun:
    def __init__(self, doc, proc, seconds):
        self.rc, self.seconds = proc.returncode, seconds
        self.stdout, self.stderr = proc.stdout, proc.stderr
        self.tasks = []
        for play in doc.get("plays", []):
            for task in play.get("tasks", []):
                res = task.get("hosts", {}).get("localhost")
                if res is not None:
                    self.tasks.append((task["task"]["name"].split(" : ", 1)[-1], res))
        stats = doc.get("stats", {}).get("localhost", {})
        self.changed, self.failures = stats.get("changed", 0), stats.get("failures", 0)

    def result(self, name):
        found = [res for task, res in self.tasks if task == name]
        assert found, "no task %r in %s" % (name, [t for t, _ in self.tasks])
        return found[-1]

    @property
    def failed_task(self):
        """The task that failed the play (the last that failed: a block's rescue may have failed it)."""
        failed = [(task, res) for task, res in self.tasks if res.get("failed")]
        return failed[-1] if failed else (None, {})

    @property
    def changed_tasks(self):
        return [task for task, res in self.tasks if res.get("changed")]


def run_role(project, image, check=False, **role_vars):
    play = dict(name="database role", hosts="localhost", gather_facts=False,
                vars=dict(dict(ktrdr_project=project, ktrdr_env_name="test", ktrdr_db_password=PASSWORD,
                               database_image=image, database_publish=False, database_healthy_timeout=120),
                          **role_vars),
                roles=["ktrdr.ops.database"])
    with tempfile.TemporaryDirectory(prefix="ktrdr-ops-play-") as tmp:
        path = os.path.join(tmp, "play.yml")
        with open(path, "w") as fh:
            json.dump([play], fh)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(tmp, "none.cfg"), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
                   ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                   ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
                   ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_DEPRECATION_WARNINGS="0",
                   PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
        env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
        cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
               "-e", "ansible_python_interpreter=%s" % sys.executable, path] + (["--check"] if check else [])
        t0 = time.monotonic()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=tmp, check=False)
        seconds = time.monotonic() - t0
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible-playbook printed no JSON (rc=%d):\n%s\n%s" % (proc.returncode, proc.stdout[-4000:],
                                                                                   proc.stderr[-4000:]))
    run = RoleRun(doc, proc, seconds)
    if os.environ.get("KTRDR_OPS_TEST_ECHO"):
        print("role run: rc=%s changed=%s (%s) %.1fs failed=%s" % (run.rc, run.changed, run.changed_tasks, seconds,
                                                                   run.failed_task[1].get("msg")))
    return run


# --- one project per test -------------------------------------------------------------------------

class Env:
    def __init__(self):
        self.project = "ktrdr-ops-test-up%s" % uuid.uuid4().hex[:8]
        self.db = self.project + "-db"
        self.volume = self.project + "-pgdata"
        self.volume17 = self.volume + "-pg17"

    def psql(self, sql, db="ktrdr", check=True):
        proc = docker("exec", self.db, "psql", "-X", "-U", "ktrdr", "-d", db, "-v", "ON_ERROR_STOP=1", "-tAc", sql,
                      check=False)
        if check and proc.returncode != 0:
            raise AssertionError("psql %r failed: %s" % (sql, proc.stderr))
        return proc.stdout.strip()

    def over_tcp(self, sql):
        """As the backend connects: TCP, the password."""
        proc = docker("exec", "-e", "PGPASSWORD=" + PASSWORD, self.db, "psql", "-X", "-h", "127.0.0.1", "-U", "ktrdr",
                      "-d", "ktrdr", "-tAc", sql, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def container(self):
        doc = json.loads(docker("inspect", self.db).stdout)[0]
        mounts = [m["Name"] for m in doc["Mounts"] if m["Destination"] == "/var/lib/postgresql/data"]
        return dict(id=doc["Id"], image=doc["Image"], status=doc["State"]["Status"], volume=mounts[0] if mounts else None)

    def volume_labels(self, name):
        proc = docker("volume", "inspect", name, check=False)
        return json.loads(proc.stdout)[0]["Labels"] or {} if proc.returncode == 0 else None

    def pg_version(self, volume, image):
        return docker("run", "--rm", "--label", TEST_LABEL, "-v", "%s:/data:ro" % volume, "--entrypoint", "cat", image,
                      "/data/PG_VERSION").stdout.strip()

    def leftovers(self):
        return docker("ps", "-aq", "--filter", "label=io.ktrdr.upgrade.from=%s" % self.volume).stdout.split()

    def seed(self):
        """Data of several kinds in two databases: rows, a sequence, an index, a view, a function."""
        self.psql("CREATE TABLE trades (id serial PRIMARY KEY, symbol text NOT NULL, qty int, at timestamptz DEFAULT now());"
                  "INSERT INTO trades (symbol, qty) SELECT 'SYM' || (g % 37), g FROM generate_series(1, 2500) g;"
                  "CREATE INDEX trades_symbol ON trades (symbol);"
                  "CREATE VIEW big_trades AS SELECT * FROM trades WHERE qty > 2000;"
                  "CREATE FUNCTION double_qty(int) RETURNS int LANGUAGE sql AS 'SELECT $1 * 2';"
                  "CREATE TABLE empty_one (id int);")
        self.psql("CREATE DATABASE extra")
        self.psql("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept across majors')", db="extra")

    def assert_seeded(self):
        assert self.psql("SELECT count(*), sum(qty) FROM trades") == "2500|3126250"
        assert self.psql("SELECT count(*) FROM big_trades") == "500"
        assert self.psql("SELECT double_qty(21)") == "42"
        assert self.psql("SELECT body FROM notes", db="extra") == "kept across majors"

    def cleanup(self):
        ids = docker("ps", "-aq", "--filter", "label=io.ktrdr.project=%s" % self.project).stdout.split()
        ids += self.leftovers()
        if ids:
            docker("rm", "-f", *ids, check=False)
        docker("rm", "-f", self.db, check=False)
        names = docker("volume", "ls", "-q", "--filter", "name=%s" % self.project).stdout.split()
        if names:
            docker("volume", "rm", "-f", *names, check=False)
        docker("network", "rm", self.project, check=False)


@pytest.fixture
def env(pg15, pg17):
    e = Env()
    yield e
    e.cleanup()


def deploy_15_with_data(env, pg15):
    run = run_role(env.project, pg15)
    assert run.rc == 0 and not run.failures, run.failed_task
    env.seed()
    return env.container()


# --- the tests ------------------------------------------------------------------------------------

def test_a_major_switch_without_the_flag_is_refused_and_15_keeps_serving(env, pg15, pg17):
    before = deploy_15_with_data(env, pg15)

    refused = run_role(env.project, pg17)
    task, res = refused.failed_task
    assert refused.rc != 0 and task == REFUSE, (task, res.get("msg"))
    for needle in ("holds a PostgreSQL 15 data directory", "runs PostgreSQL 17", "Nothing was changed",
                   "images_postgres_major=15", "database_major_upgrade=true", env.volume17):
        assert needle in res["msg"], needle
    assert env.container() == before  # not recreated, still PostgreSQL 15 on its volume
    env.assert_seeded()
    assert env.volume_labels(env.volume17) is None

    # Check mode, even allowed to upgrade, touches nothing.
    checked = run_role(env.project, pg17, check=True, database_major_upgrade=True)
    assert checked.rc == 0 and not checked.failures, checked.failed_task
    assert checked.result(UPGRADE)["changed"] and UPGRADE in checked.changed_tasks
    assert env.container() == before
    assert env.volume_labels(env.volume17) is None and env.leftovers() == []
    env.assert_seeded()


def test_the_upgrade_carries_the_data_into_17_keeps_the_old_volume_and_converges(env, pg15, pg17):
    before = deploy_15_with_data(env, pg15)
    seq_before = env.psql("SELECT last_value FROM trades_id_seq")

    upgraded = run_role(env.project, pg17, database_major_upgrade=True)
    assert upgraded.rc == 0 and not upgraded.failures, upgraded.failed_task
    up = upgraded.result(UPGRADE)
    assert up["changed"] and up["old_major"] == "15" and up["new_major"] == "17", up.get("msg")
    assert up["databases"]["ktrdr"] == {"tables": 2, "rows": 2500} and up["databases"]["extra"]["rows"] == 1
    assert up["accepted_errors"] and all('role "ktrdr" already exists' in e for e in up["accepted_errors"])
    assert PASSWORD not in json.dumps(upgraded.tasks)

    after = env.container()
    assert after["status"] == "running" and after["volume"] == env.volume17 and after["image"] != before["image"]
    assert env.psql("SHOW server_version_num").startswith("17")
    env.assert_seeded()
    assert env.psql("SELECT last_value FROM trades_id_seq") == seq_before
    assert env.psql("INSERT INTO trades (symbol, qty) VALUES ('NEW', 1) RETURNING id").splitlines()[0] == "2501"
    assert env.over_tcp("SELECT count(*) FROM trades") == "2501"  # the old password still opens it

    # The old volume is kept as it was; the new one says where it came from.
    assert env.pg_version(env.volume, pg15) == "15" and env.pg_version(env.volume17, pg17) == "17"
    labels = env.volume_labels(env.volume17)
    assert labels["io.ktrdr.upgrade.from"] == env.volume and labels["io.ktrdr.project"] == env.project
    assert env.leftovers() == []

    # Converged: with the flag still on, or off again, nothing changes.
    for flag in (True, False):
        again = run_role(env.project, pg17, database_major_upgrade=flag)
        assert again.rc == 0 and again.changed == 0, (flag, again.changed_tasks, again.failed_task)
        assert again.result(UPGRADE).get("skipped") and env.container() == dict(after, status="running")

    # Rollback: the 15 image runs on the old volume again (without what was written to 17 since).
    back = run_role(env.project, pg15)
    assert back.rc == 0 and not back.failures, back.failed_task
    rolled = env.container()
    assert rolled["volume"] == env.volume and rolled["image"] == before["image"]
    assert env.psql("SELECT count(*) FROM trades") == "2500"
    # ...and upgrading again does not silently take the older 17 volume.
    stale = run_role(env.project, pg17, database_major_upgrade=True)
    task, res = stale.failed_task
    assert task == REFUSE and "docker volume rm %s" % env.volume17 in res["msg"], res.get("msg")
    assert env.container() == rolled


def test_a_failed_restore_or_init_leaves_15_serving_and_a_rerun_upgrades(env, pg15, pg17):
    before = deploy_15_with_data(env, pg15)
    env.psql("CREATE EXTENSION adminpack")  # contrib in 15, gone from PostgreSQL 17

    failed = run_role(env.project, pg17, database_major_upgrade=True)
    task, res = failed.failed_task
    assert task == UPGRADE, (task, res.get("msg"))
    assert 'extension "adminpack" is not available' in res["msg"] and "Nothing was switched" in res["msg"]
    assert env.container() == before
    env.assert_seeded()
    assert env.volume_labels(env.volume17) is None and env.leftovers() == []
    assert docker("exec", env.db, "sh", "-c", "ls /tmp/ktrdr-upgrade-* 2>/dev/null", check=False).stdout == ""

    env.psql("DROP EXTENSION adminpack")
    # The new volume cannot be initialised (initdb refuses an option).
    failed = run_role(env.project, pg17, database_major_upgrade=True,
                      database_env={"POSTGRES_INITDB_ARGS": "--no-such-initdb-option"})
    task, res = failed.failed_task
    assert task == UPGRADE and "stopped before PostgreSQL accepted connections" in res["msg"], res.get("msg")
    assert env.container() == before and env.volume_labels(env.volume17) is None and env.leftovers() == []
    env.assert_seeded()

    # With the database stopped, the dump runs in a temporary container of the old image on the old volume.
    docker("stop", env.db)
    upgraded = run_role(env.project, pg17, database_major_upgrade=True)
    assert upgraded.rc == 0 and not upgraded.failures, upgraded.failed_task
    assert env.container()["volume"] == env.volume17 and env.psql("SHOW server_version_num").startswith("17")
    env.assert_seeded()
    assert env.leftovers() == []


def test_a_failed_switch_puts_15_back_and_a_rerun_upgrades(env, pg15, pg17):
    deploy_15_with_data(env, pg15)
    # A health check only the old major passes (the images set PG_MAJOR): the new container never gets healthy.
    picky = dict(test=["CMD-SHELL", 'test "$PG_MAJOR" = 15 && pg_isready -q -h 127.0.0.1'], interval="1s",
                 timeout="3s", retries=2, start_period="0s")
    failed = run_role(env.project, pg17, database_major_upgrade=True, database_healthcheck=picky,
                      database_healthy_timeout=20)
    task, res = failed.failed_task
    assert task == "Report why PostgreSQL is not healthy", (task, res.get("msg"))
    assert "runs again on %s" % env.volume in res["msg"], res["msg"]
    back = env.container()
    assert back["status"] == "running" and back["volume"] == env.volume
    assert env.psql("SHOW server_version_num").startswith("15")
    env.assert_seeded()
    assert env.volume_labels(env.volume17) is None and env.leftovers() == []

    upgraded = run_role(env.project, pg17, database_major_upgrade=True)
    assert upgraded.rc == 0 and not upgraded.failures, upgraded.failed_task
    assert env.container()["volume"] == env.volume17
    env.assert_seeded()
