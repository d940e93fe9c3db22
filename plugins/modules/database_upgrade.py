#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: database_upgrade
short_description: Carry a PostgreSQL data volume to a new major by dump and restore into a new volume
version_added: 0.1.0
description:
  - Dumps every database and role of the data volume O(volume) with the old major's own C(pg_dumpall) (a
    C(docker exec) in O(container) when it runs on O(volume), else a temporary container of O(old_image) on it),
    initialises the new volume O(upgrade_volume) with O(image), restores the dump into it and verifies the restore
    (the same databases and tables, and the same number of rows in every table, counted in both servers after the
    dump).
  - Only then records the upgrade in the new volume (C(ktrdr-upgrade.json) in the data directory; the volume is
    labelled C(io.ktrdr.upgrade.from=<volume>)) and returns. Switching the database container to O(upgrade_volume)
    is the caller's last step (the M(ktrdr.ops.database_version_info) module names it in its C(run_volume) from then
    on).
  - O(volume) and the running database are never changed; the temporary containers have no network, so nothing
    but this module reaches the new server before the switch. When a step fails, what it made is removed (the
    temporary containers, the dump, O(upgrade_volume)) and the module fails with the reason; a re-run starts over.
  - Writes to the old database after the dump are not carried over. A row count that moved in between makes the
    verification fail; stop the writers (backend, workers) for the upgrade.
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._attributes
  - ktrdr.ops._attributes.ACTIONGROUP_DOCKER
  - ktrdr.ops._docker
attributes:
  check_mode:
    support: full
    details:
      - Says whether it would upgrade (C(changed)) and into which volume, and starts nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - An upgrade volume with the record of a verified upgrade of O(volume) is left as it is (C(changed=false)); one
        without it (an upgrade that did not finish) is removed and made again.
options:
  volume:
    description: The data volume to upgrade (it holds the old major's data directory; it stays as it is).
    type: str
    required: true
  upgrade_volume:
    description: The new volume to restore into. It must not exist, or be one this module made from O(volume).
    type: str
    required: true
  image:
    description: The PostgreSQL image of the new major (initialises O(upgrade_volume), runs the restore).
    type: str
    required: true
  old_image:
    description: A PostgreSQL image of the volume's major, to dump with when O(container) does not run on O(volume).
    type: str
    required: true
  container:
    description: The database container. When it runs on O(volume), the dump and the old row counts are taken in it.
    type: str
  db_user:
    description: The superuser the data directory was initialised with (C(POSTGRES_USER)); the dump and restore run as it.
    type: str
    default: postgres
  db_password:
    description:
      - Its password (C(POSTGRES_PASSWORD)) - initialises O(upgrade_volume); the restore then sets the role's password
        hash from the dump, so the password that opened the old database opens the new one.
    type: str
    required: true
  env:
    description:
      - More environment for the container that initialises O(upgrade_volume), as the database container gets it
        (for example C(POSTGRES_INITDB_ARGS)). C(POSTGRES_DB) is ignored - the restore creates the databases. Not for
        secrets.
    type: dict
    default: {}
  container_user:
    description: User of the temporary containers; empty keeps the image's own.
    type: str
    default: ""
  labels:
    description: Labels of O(upgrade_volume) and of the temporary containers (for example C(io.ktrdr.project)).
    type: dict
    default: {}
  timeout:
    description: Seconds each step may take (the dump, the restore, a row count, a server getting ready).
    type: int
    default: 3600
notes:
  - The dump is a plain SQL file in C(/tmp) of the container that dumps (removed afterwards), copied into the one that
    restores; the engine's disk needs room for it twice.
  - The restore runs the dump with C(psql); the only error it accepts is that the superuser O(db_user) exists already
    (the new volume was initialised with it). Any other error fails the upgrade and names the statement's error - an
    extension the new major no longer ships, for example.
seealso:
  - module: ktrdr.ops.database_version_info
requirements:
  - Docker SDK for Python on the managed host
"""

EXAMPLES = r"""
- name: Read the PostgreSQL majors of the volume and the image
  ktrdr.ops.database_version_info:
    volume: ktrdr-local-pgdata
    image: ktrdr-postgres:17
    container: ktrdr-local-db
    upgrade: true
  register: pg

- name: Upgrade the data to the image's major in a new volume
  ktrdr.ops.database_upgrade:
    volume: ktrdr-local-pgdata
    upgrade_volume: "{{ pg.upgrade_volume }}"
    image: ktrdr-postgres:17
    old_image: "{{ pg.old_image }}"
    container: ktrdr-local-db
    db_user: ktrdr
    db_password: "{{ ktrdr_db_password }}"
    labels:
      io.ktrdr.project: ktrdr-local
  when: pg.decision == 'upgrade'
"""

RETURN = r"""
volume:
  description: The volume that holds the upgraded data (O(upgrade_volume)); the database container is to run on it.
  returned: always
  type: str
  sample: ktrdr-local-pgdata-pg17
old_volume:
  description: O(volume), kept as it was for a rollback.
  returned: always
  type: str
old_major:
  description: The major of O(volume); empty in check mode.
  returned: always
  type: str
  sample: "15"
new_major:
  description: The major of O(image); empty in check mode.
  returned: always
  type: str
  sample: "17"
dump_bytes:
  description: Size of the dump.
  returned: when it upgraded
  type: int
databases:
  description: For every database restored, its number of tables and of rows (the same in both servers).
  returned: when it upgraded
  type: dict
  sample: {"ktrdr": {"tables": 12, "rows": 48211}}
accepted_errors:
  description: The restore's errors that were expected (the superuser existing already).
  returned: when it upgraded
  type: list
  elements: str
steps:
  description: Seconds each step took.
  returned: when it upgraded
  type: dict
message:
  description: What was done (or would be), or found.
  returned: always
  type: str
"""

import json
import re
import time
import uuid
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ktrdr.ops.plugins.module_utils import _docker

DATA = "/var/lib/postgresql/data"
MARKER = "ktrdr-upgrade.json"  # the record of a verified upgrade, in the new volume's data directory
FROM_LABEL = "io.ktrdr.upgrade.from"
FROM_MAJOR_LABEL = "io.ktrdr.upgrade.from-major"
MAJOR_LABEL = "io.ktrdr.upgrade.major"
TO_LABEL = "io.ktrdr.upgrade.to"
PURPOSE = "pgupgrade"

PROBE = ('printf "volume=%s\\n" "$(cat {data}/PG_VERSION 2>/dev/null)"; '
         'for p in postgres /usr/lib/postgresql/*/bin/postgres; do v=$("$p" --version 2>/dev/null) && break; done; '
         'printf "server=%s\\n" "$v"; '
         'printf "marker=%s\\n" "$(tr -d "\\n" < {data}/' + MARKER + ' 2>/dev/null)"')
DATABASES_SQL = "SELECT datname FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1"
# Every table's exact row count, in one statement (query_to_xml runs a count per table).
COUNT_SQL = (
    "SELECT n.nspname || '.' || c.relname, "
    "(xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), "
    "false, true, '')))[1]::text "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1")
# The dump's CREATE ROLE of the superuser the new volume was initialised with fails, as pg_dumpall expects.
ACCEPTED = re.compile(r'ERROR:\s+role "(?P<role>[^"]+)" already exists')
SECRET = re.compile(r"(PASSWORD\s+)'[^']*'", re.I)


class UpgradeError(Exception):
    """A step failed; ``str()`` says which and why, ``output`` holds what it printed."""

    def __init__(self, message, output=""):
        super().__init__(message)
        self.output = output


# --- decisions (pure functions) -------------------------------------------------------------------

def parse_probe(output):
    """dict(volume=major in PG_VERSION, server=major of postgres, marker=the upgrade record or None)."""
    found = dict(re.findall(r"^(volume|server|marker)=(.*)$", output, re.M))
    server = re.search(r"\(PostgreSQL\)\s+(\d+)", found.get("server", ""))
    try:
        marker = json.loads(found["marker"]) if found.get("marker", "").strip() else None
    except ValueError:
        marker = None
    return dict(volume=found.get("volume", "").strip(), server=server.group(1) if server else "",
                marker=marker if isinstance(marker, dict) else None)


def redact(text):
    """The text with the password hashes of a dump's ALTER ROLE ... PASSWORD '...' masked."""
    return SECRET.sub(r"\1'********'", text or "")


def restore_errors(stderr, user):
    """(fatal, accepted): psql's ERROR lines of a restore, the accepted ones being "role <user> already exists"."""
    fatal, accepted = [], []
    for line in (stderr or "").splitlines():
        if "ERROR:" not in line:
            continue
        m = ACCEPTED.search(line)
        (accepted if m and m.group("role") == user else fatal).append(redact(line.strip()))
    return fatal, accepted


def parse_counts(output):
    """{schema.table: rows} from COUNT_SQL's unaligned, tab-separated output."""
    counts = {}
    for line in (output or "").splitlines():
        if "\t" in line:
            table, n = line.rsplit("\t", 1)
            counts[table] = int(n)
    return counts


def compare_counts(old, new, old_name="the old database", new_name="the new one"):
    """The differences between two {database: {table: rows}} (empty when the restore carried everything)."""
    problems = []
    for db in sorted(set(old) | set(new)):
        if db not in new:
            problems.append("database %s is missing from %s" % (db, new_name))
            continue
        if db not in old:
            problems.append("database %s is in %s but not in %s" % (db, new_name, old_name))
            continue
        for table in sorted(set(old[db]) | set(new[db])):
            if table not in new[db]:
                problems.append("%s: table %s is missing from %s" % (db, table, new_name))
            elif table not in old[db]:
                problems.append("%s: table %s is in %s but not in %s" % (db, table, new_name, old_name))
            elif old[db][table] != new[db][table]:
                problems.append("%s: %s has %d rows in %s, %d in %s"
                                % (db, table, old[db][table], old_name, new[db][table], new_name))
    return problems


def summary(counts):
    return dict((db, dict(tables=len(tables), rows=sum(tables.values()))) for db, tables in counts.items())


def target_state(volume, labels, marker):
    """done, partial or foreign: an existing upgrade volume (labels, and the record in it or None)."""
    if (labels or {}).get(FROM_LABEL) != volume:
        return "foreign"
    return "done" if (marker or {}).get("from_volume") == volume else "partial"


# --- Docker steps ---------------------------------------------------------------------------------

def _text(raw):
    return (raw or b"").decode("utf-8", "replace")


def execute(container, argv, env=None, user="0"):
    """(exit code, stdout, stderr) of argv run in a running container (as root unless told)."""
    res = container.exec_run(argv, environment=env, user=user, demux=True)
    out, err = res.output if isinstance(res.output, tuple) else (res.output, None)
    return res.exit_code, _text(out), _text(err)


def logs_tail(container, lines=30):
    try:
        return redact(_text(container.logs(stdout=True, stderr=True, tail=lines)))
    except (_docker.APIError, _docker.NotFound):
        return ""


def wait_ready(container, timeout, what):
    """Until the server in ``container`` accepts TCP connections on loopback (not the entrypoint's init server)."""
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        if container.status == "running":
            try:
                rc = execute(container, ["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"])[0]
            except _docker.APIError:
                rc = None
            if rc == 0:
                return
        elif container.status != "created":
            raise UpgradeError("%s stopped before PostgreSQL accepted connections (%s, exit code %s)" % (
                what, container.status, (container.attrs.get("State") or {}).get("ExitCode")), logs_tail(container))
        if time.monotonic() > deadline:
            raise UpgradeError("%s did not accept connections within %ss" % (what, timeout), logs_tail(container))
        time.sleep(0.5)


def psql(container, user, env, db, sql):
    rc, out, err = execute(container, ["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-U", user,
                                       "-d", db, "-c", sql], env)
    if rc != 0:
        raise UpgradeError("psql in %s (database %s) failed with exit code %s" % (container.name, db, rc), redact(err))
    return out


def row_counts(container, user, env):
    """{database: {schema.table: rows}} of every database that takes connections."""
    return dict((db, parse_counts(psql(container, user, env, db, COUNT_SQL)))
                for db in psql(container, user, env, "postgres", DATABASES_SQL).splitlines() if db)


def stop(container, timeout=120):
    """Stop a temporary server cleanly (the image's STOPSIGNAL: a fast shutdown) and remove it; True when clean."""
    clean = False
    try:
        container.stop(timeout=timeout)
        code = container.wait(timeout=timeout + 30).get("StatusCode")
        clean = code == 0 or "database system is shut down" in logs_tail(container, 5)
    except Exception:  # pylint: disable=broad-except  # the container is removed below either way
        pass
    try:
        container.remove(force=True)
    except (_docker.APIError, _docker.NotFound):
        pass
    return clean


class Upgrade:
    def __init__(self, module, cli):
        self.m = module
        self.p = module.params
        self.cli = cli
        self.tag = uuid.uuid4().hex[:8]
        self.user = self.p["db_user"]
        self.pg_env = {"PGPASSWORD": self.p["db_password"]}
        self.steps = {}
        self.created_volume = False
        self.finished = False
        self.source = None          # the container the dump runs in
        self.temp_source = False    # ... started by this run (stopped and removed at the end)
        self.restore = None         # the temporary server on the new volume
        self.dump_path = "/tmp/ktrdr-upgrade-%s.sql" % self.tag

    def labels(self, **more):
        labels = dict((str(k), str(v)) for k, v in (self.p["labels"] or {}).items())
        labels.update({_docker.LABEL: PURPOSE, FROM_LABEL: self.p["volume"], TO_LABEL: self.p["upgrade_volume"]})
        labels.update(more)
        return labels

    def timed(self, name, func, *args):
        t0 = time.monotonic()
        try:
            return func(*args)
        finally:
            self.steps[name] = round(time.monotonic() - t0, 1)

    def run_container(self, image, volume, what, environment=None):
        kwargs = dict(detach=True, name="%s-%s-%s" % (self.p["container"] or "ktrdr-ops", what, self.tag),
                      network_mode="none", labels=self.labels(), environment=environment or {},
                      volumes={volume: {"bind": DATA, "mode": "rw"}})
        if self.p["container_user"]:
            kwargs["user"] = self.p["container_user"]
        return self.cli.containers.run(image, **kwargs)

    def remove_leftovers(self):
        """Temporary containers of an earlier run that did not get to remove them (a killed play)."""
        labels = ["%s=%s" % (_docker.LABEL, PURPOSE), "%s=%s" % (FROM_LABEL, self.p["volume"])]
        for c in self.cli.containers.list(all=True, filters={"label": labels}):
            stop(c, timeout=60)

    def image_major(self, image):
        rc, output = _docker.run_oneshot(self.cli, image, [PROBE.format(data="/nonexistent")], {},
                                         entrypoint=["sh", "-c"], timeout=min(self.p["timeout"], 300), purpose="pgversion")
        major = parse_probe(output)["server"]
        if rc != 0 or not major:
            raise UpgradeError("cannot tell which PostgreSQL %s runs (`postgres --version` printed nothing usable, exit "
                               "%s)" % (image, rc), output[-2000:])
        return major

    def pick_source(self):
        """The running database when it runs on the volume, else a temporary server of old_image on it."""
        volume = self.p["volume"]
        db = None
        if self.p["container"]:
            try:
                db = self.cli.containers.get(self.p["container"])
            except _docker.NotFound:
                db = None
        on_volume = db is not None and any(m.get("Name") == volume and m.get("Destination") == DATA
                                           for m in db.attrs.get("Mounts") or [])
        if on_volume and db.status == "running":
            self.source = db
            wait_ready(db, min(self.p["timeout"], 300), "the database container %s" % db.name)
            return
        if on_volume and db.status not in ("exited", "created", "dead"):
            raise UpgradeError("the database container %s is %s on %s: wait until it runs or stop it, then run again"
                               % (db.name, db.status, volume))
        users = [c.name for c in self.cli.containers.list(filters={"volume": volume})]
        if users:
            raise UpgradeError("%s is in use by %s, which is not the database container %s: a second server must not "
                               "run on it" % (volume, ", ".join(users), self.p["container"]))
        self.source = self.run_container(self.p["old_image"], volume, "pgdump")
        self.temp_source = True
        wait_ready(self.source, min(self.p["timeout"], 300),
                   "the temporary PostgreSQL of %s on %s" % (self.p["old_image"], volume))

    def dump(self):
        rc, out, err = execute(self.source, ["pg_dumpall", "-w", "-U", self.user, "-f", self.dump_path], self.pg_env)
        if rc != 0:
            raise UpgradeError("pg_dumpall in %s failed with exit code %s" % (self.source.name, rc), redact(err + out))
        rc, out, err = execute(self.source, ["sh", "-c", 'wc -c < "$1"', "sh", self.dump_path])
        return int(out.strip() or 0)

    def start_restore(self, new_major, old_major):
        volume = self.p["upgrade_volume"]
        self.cli.volumes.create(name=volume, labels=self.labels(**{FROM_MAJOR_LABEL: old_major, MAJOR_LABEL: new_major}))
        self.created_volume = True
        env = dict((str(k), str(v)) for k, v in (self.p["env"] or {}).items())
        env.update(POSTGRES_USER=self.user, POSTGRES_PASSWORD=self.p["db_password"], POSTGRES_DB="postgres")
        self.restore = self.run_container(self.p["image"], volume, "pgrestore", env)
        wait_ready(self.restore, min(self.p["timeout"], 600),
                   "the new PostgreSQL %s initialising %s (%s)" % (new_major, volume, self.p["image"]))

    def copy_and_restore(self):
        bits, dummy = self.source.get_archive(self.dump_path)
        if not self.restore.put_archive("/tmp", bits):
            raise UpgradeError("could not copy the dump from %s into %s" % (self.source.name, self.restore.name))
        rc, out, err = execute(self.restore, ["psql", "-X", "-q", "-o", "/dev/null", "-U", self.user, "-d", "postgres",
                                              "-f", self.dump_path], self.pg_env)
        fatal, accepted = restore_errors(err, self.user)
        if fatal or rc != 0:
            raise UpgradeError("the restore into %s with %s failed (%d error%s, exit code %s): %s" % (
                self.p["upgrade_volume"], self.p["image"], len(fatal), "" if len(fatal) == 1 else "s", rc,
                "; ".join(fatal[:5]) or redact(err)[-500:]), redact(err)[-4000:])
        return accepted

    def verify(self):
        new = row_counts(self.restore, self.user, self.pg_env)
        old = row_counts(self.source, self.user, self.pg_env)  # after the dump: a write since shows as a difference
        problems = compare_counts(old, new, self.p["volume"], self.p["upgrade_volume"])
        if problems:
            raise UpgradeError("the restore does not match the old database (%s%s). If the old database was written to "
                               "during the upgrade, stop the backend and workers and run again"
                               % ("; ".join(problems[:5]), "; ..." if len(problems) > 5 else ""))
        return new

    def record(self, old_major, new_major, counts, dump_bytes):
        marker = dict(from_volume=self.p["volume"], from_major=old_major, major=new_major, old_image=self.p["old_image"],
                      image=self.p["image"], dump_bytes=dump_bytes, databases=summary(counts),
                      finished=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        script = 'printf "%s\\n" "$1" > "$2" && chown "$(stat -c %u:%g "$3")" "$2" && chmod 600 "$2"'
        rc, out, err = execute(self.restore, ["sh", "-c", script, "sh", json.dumps(marker, sort_keys=True),
                                              "%s/%s" % (DATA, MARKER), "%s/PG_VERSION" % DATA])
        if rc != 0:
            raise UpgradeError("could not write the upgrade record into %s" % self.p["upgrade_volume"], err + out)
        restore, self.restore = self.restore, None
        if not stop(restore):
            raise UpgradeError("the new PostgreSQL on %s did not shut down cleanly after the restore"
                               % self.p["upgrade_volume"], logs_tail(restore))

    def run(self):
        self.timed("leftovers", self.remove_leftovers)
        new_major = self.timed("probe", self.image_major, self.p["image"])
        self.timed("source", self.pick_source)
        probe = parse_probe(execute(self.source, ["sh", "-c", PROBE.format(data=DATA)])[1])
        old_major = probe["volume"]
        if not old_major:
            raise UpgradeError("%s holds no PostgreSQL data directory (no PG_VERSION): nothing to upgrade" % self.p["volume"])
        if probe["server"] != old_major:
            raise UpgradeError("%s runs PostgreSQL %s, not the volume's %s: set database_upgrade_from_image to a "
                               "PostgreSQL %s image" % (self.source.name, probe["server"] or "?", old_major, old_major))
        if new_major == old_major:
            raise UpgradeError("%s holds PostgreSQL %s and %s runs it too: there is no major to upgrade to"
                               % (self.p["volume"], old_major, self.p["image"]))
        dump_bytes = self.timed("dump", self.dump)
        self.timed("init", self.start_restore, new_major, old_major)
        accepted = self.timed("restore", self.copy_and_restore)
        counts = self.timed("verify", self.verify)
        self.timed("record", self.record, old_major, new_major, counts, dump_bytes)
        self.finished = True
        return dict(old_major=old_major, new_major=new_major, dump_bytes=dump_bytes, databases=summary(counts),
                    accepted_errors=accepted)

    def cleanup(self):
        """Remove what this run made and does not hand over; the old volume and the database container stay."""
        if self.restore is not None:
            try:
                self.restore.remove(force=True)
            except (_docker.APIError, _docker.NotFound):
                pass
        if self.created_volume and not self.finished:
            try:
                self.cli.volumes.get(self.p["upgrade_volume"]).remove(force=True)
            except (_docker.APIError, _docker.NotFound):
                pass
        if self.source is not None:
            if self.temp_source:
                stop(self.source)
            else:
                try:
                    execute(self.source, ["rm", "-f", self.dump_path])
                except (_docker.APIError, _docker.NotFound):
                    pass


def existing_target(cli, module):
    """dict(labels, marker, used_by) of the upgrade volume, or None when it does not exist."""
    p = module.params
    try:
        vol = cli.volumes.get(p["upgrade_volume"])
    except _docker.NotFound:
        return None
    used_by = [c.name for c in cli.containers.list(all=True, filters={"volume": p["upgrade_volume"]})]
    rc, output = _docker.run_oneshot(cli, p["image"], [PROBE.format(data="/data")], {}, entrypoint=["sh", "-c"],
                                     volumes={p["upgrade_volume"]: {"bind": "/data", "mode": "ro"}},
                                     timeout=min(p["timeout"], 300), purpose="pgversion")
    return dict(labels=vol.attrs.get("Labels") or {}, marker=parse_probe(output)["marker"], used_by=used_by, vol=vol)


def main():
    argument_spec = _docker.docker_argument_spec()
    argument_spec.update(
        volume=dict(type="str", required=True),
        upgrade_volume=dict(type="str", required=True),
        image=dict(type="str", required=True),
        old_image=dict(type="str", required=True),
        container=dict(type="str"),
        db_user=dict(type="str", default="postgres"),
        db_password=dict(type="str", required=True, no_log=True),
        env=dict(type="dict", default={}, no_log=True),
        container_user=dict(type="str", default=""),
        labels=dict(type="dict", default={}),
        timeout=dict(type="int", default=3600),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not _docker.HAS_DOCKER_SDK:
        module.fail_json(msg="ktrdr.ops.database_upgrade needs the Docker SDK for Python (%s) on the managed host: "
                             "install python3-docker (the ktrdr.ops.docker_host role does)" % _docker.DOCKER_SDK_ERROR)
    _docker.check_module_params(module)
    p = module.params
    volume, target_name = p["volume"], p["upgrade_volume"]
    result = dict(changed=False, volume=target_name, old_volume=volume, old_major="", new_major="")
    if target_name == volume:
        module.fail_json(msg="upgrade_volume must be another volume than %s (which stays as it is)" % volume, **result)
    upgrade = None
    try:
        cli = _docker.client_from_params(p, timeout=max(p["timeout"], p["docker_timeout"]))
        cli.volumes.get(volume)
        target = existing_target(cli, module)
        if target is not None:
            state = target_state(volume, target["labels"], target["marker"])
            if state == "foreign":
                module.fail_json(msg="%s exists and is not an upgrade of %s (no label %s=%s): pick another upgrade_volume"
                                     % (target_name, volume, FROM_LABEL, volume), **result)
            if state == "done":
                marker = target["marker"]
                result.update(old_major=str(marker.get("from_major", "")), new_major=str(marker.get("major", "")),
                              message="%s already holds the verified upgrade of %s (PostgreSQL %s to %s, %s)"
                                      % (target_name, volume, marker.get("from_major"), marker.get("major"),
                                         marker.get("finished")))
                module.exit_json(**result)
            if target["used_by"]:
                module.fail_json(msg="%s holds an upgrade of %s that did not finish, but %s use%s it: remove %s and run "
                                     "again" % (target_name, volume, ", ".join(target["used_by"]),
                                                "s" if len(target["used_by"]) == 1 else "", "it" if len(target["used_by"]) == 1 else "them"),
                                 **result)
        if module.check_mode:
            result.update(changed=True, message="Would dump %s with %s, restore it into %s with %s%s and verify it."
                          % (volume, p["old_image"], target_name, p["image"],
                             " (replacing the unfinished upgrade there)" if target is not None else ""))
            module.exit_json(**result)
        if target is not None:  # an upgrade that did not finish: made again from the start
            target["vol"].remove(force=True)
        upgrade = Upgrade(module, cli)
        t0 = time.monotonic()
        try:
            done = upgrade.run()
        finally:
            upgrade.cleanup()
    except UpgradeError as exc:
        module.fail_json(msg="PostgreSQL upgrade of %s into %s failed: %s. Nothing was switched: %s and the database "
                             "container are as they were%s." % (volume, target_name, exc, volume,
                                                                "; %s was removed" % target_name if upgrade and upgrade.created_volume else ""),
                         output=exc.output, steps=upgrade.steps if upgrade else {}, **result)
    except (_docker.DockerRunError, _docker.DockerConfigError, _docker.DockerException) as exc:
        # (one clause: without the SDK every Docker error class is Exception)
        if isinstance(exc, _docker.NotFound) and _docker.HAS_DOCKER_SDK:
            what = "An image of the upgrade" if isinstance(exc, _docker.ImageNotFound) else \
                "The volume %s (or a container of the upgrade)" % volume
            module.fail_json(msg="%s does not exist on the Docker engine at %s: %s" % (what, p["docker_host"], exc), **result)
        module.fail_json(msg="PostgreSQL upgrade of %s into %s through %s failed: %s. Nothing was switched; what the "
                             "upgrade made was removed." % (volume, target_name, p["docker_host"], exc),
                         steps=upgrade.steps if upgrade else {}, **result)
    totals = done["databases"]
    result.update(done, changed=True, steps=upgrade.steps, message=(
        "Upgraded %s (PostgreSQL %s) into %s (PostgreSQL %s): %d database%s, %d tables, %d rows restored and verified. "
        "%s is kept as it was for a rollback (run a PostgreSQL %s image on it again)."
        % (volume, done["old_major"], target_name, done["new_major"], len(totals), "" if len(totals) == 1 else "s",
           sum(d["tables"] for d in totals.values()), sum(d["rows"] for d in totals.values()), volume, done["old_major"])))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
