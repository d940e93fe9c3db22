#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: migration
short_description: Migrate the ktrdr database with alembic, once, under a PostgreSQL advisory lock
version_added: 0.1.0
description:
  - Reports the database's current alembic revision and the migrations' head, and upgrades the database to O(target)
    (or downgrades it, only with O(allow_downgrade=true)).
  - Alembic runs where ktrdr keeps it, in the backend image (C(python -m alembic) in C(/app)); either in a one-shot container
    of O(image) on the database's network, or by exec in a running backend O(container). Nothing is installed on the host.
  - A small runner script, passed with C(python -c), reads the revision graph of the image's migrations and the database's
    C(alembic_version), and takes a PostgreSQL advisory lock around C(alembic upgrade), so two runs (two hosts, two
    playbooks) never migrate at once; the one that waited finds nothing left to do.
  - Optionally dumps the database with C(pg_dump) (run in the database container) before an upgrade that has revisions to apply.
  - Alembic runs all revisions in one transaction on PostgreSQL, so when a migration fails the module returns alembic's own
    output and the database stays at its previous revision.
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._attributes
  - ktrdr.ops._attributes.ACTIONGROUP_DOCKER
  - ktrdr.ops._docker
attributes:
  check_mode:
    support: partial
    details:
      - The database, the backup directory and the engine's images, networks and containers are left as they were, but check
        mode is not free of actions. To read the revisions it still runs the runner once, as a real run does.
      - With O(image) it creates and starts a one-shot container of O(image) (named C(ktrdr-ops-migration-<random>), label
        C(io.ktrdr.ops=migration)) on O(network) and removes it when the runner has finished or O(timeout) has passed.
        With O(container) it runs the runner with C(docker exec) in that container.
      - The runner connects to the database (as O(db_user), or the container's own user with O(container)) and reads the
        C(alembic_version) table and the image's revision graph. It does not take the advisory lock, does not run alembic and writes nothing.
      - Nothing is dumped (no C(pg_dump), no file in O(backup_dir)).
      - The result is C(changed=true) with RV(pending) listing the revisions a real run would apply, or C(changed=false)
        when there is nothing to do.
  diff_mode:
    support: full
    details:
      - The revision before and after.
  idempotent:
    support: full
    details:
      - Reports a change only when the database revision moved.
options:
  image:
    description:
      - Backend image to run alembic from in a one-shot container, for example C(ktrdr-backend:3f2a9c1d0b7e). The image must
        already be on the engine; it is not pulled.
      - Exactly one of O(image) and O(container) is required.
    type: str
  container:
    description:
      - Name of a running backend container to run alembic in (C(docker exec)).
      - Its own C(KTRDR_DB_*) settings are used for anything not given in the C(db_*) options.
    type: str
  network:
    description:
      - Docker network for the one-shot container. Defaults to the first user-defined network of the container named
        O(db_host), when there is one (the database's network), else the default bridge.
    type: str
  db_host:
    description:
      - Database host as the container sees it (the database container's name on O(network)). Required with O(image).
    type: str
  db_port:
    description:
      - Database port.
    type: int
    default: 5432
  db_name:
    description:
      - Database name. Defaults to ktrdr's own default (C(ktrdr)) with O(image), or the container's setting with O(container).
    type: str
  db_user:
    description:
      - Database user; it needs the right to create tables. Defaults like O(db_name).
    type: str
  db_password:
    description:
      - Database password. Passed to the runner in its environment, never on a command line.
    type: str
  target:
    description:
      - Revision to migrate to, V(head), or V(base) (with O(allow_downgrade=true), an empty schema). A unique prefix of a
        revision id of at least 4 characters works.
    type: str
    default: head
  allow_downgrade:
    description:
      - Allow moving the database to an older revision than it has. Without it, such a O(target) fails before anything runs.
    type: bool
    default: false
  backup_dir:
    description:
      - Directory on the managed host to write a C(pg_dump) custom-format dump to before an upgrade that applies revisions
        (named C(<db>-<revision before>-<UTC time>.dump), mode 0600). Requires O(backup_container).
    type: path
  backup_container:
    description:
      - Name of the PostgreSQL container in which C(pg_dump) runs (over its local socket) for O(backup_dir).
    type: str
  env:
    description:
      - Extra environment variables for the one-shot container or the exec (for example C(KTRDR_ENV)).
      - They may carry secrets, so the option is C(no_log). Each of its values is masked (C(********)) wherever it
        appears in the module's result, alembic's output included. A value that also occurs in other text (V(1), V(true))
        is masked there too, inside revision ids and messages; leave such non-secret settings to the image or the container.
    type: dict
    default: {}
  workdir:
    description:
      - Directory in the image that holds C(alembic.ini) and is the working directory of alembic.
    type: path
    default: /app
  lock_timeout:
    description:
      - Seconds to wait for the advisory lock held by another migration run before failing.
    type: float
    default: 300
  lock_key:
    description:
      - The 64-bit advisory lock key. Every ktrdr.ops run uses the same default; change it only to keep two databases on one server apart.
    type: int
  timeout:
    description:
      - Seconds one runner may take (lock wait included) before it is stopped and the module fails.
      - The engine requests that last as long as the runner (waiting for the one-shot container, the exec, the C(pg_dump)
        stream) wait up to this plus 60 seconds (or O(docker_timeout), if that is longer); every other request to the engine
        waits up to O(docker_timeout).
    type: float
    default: 600
requirements:
  - docker (Docker SDK for Python) on the managed host
notes:
  - "Run it once per database (C(run_once: true)) before starting workers; the lock makes a second run harmless, not useful."
  - Migrating while old backend containers serve requests is as safe as the migrations are backwards compatible; ktrdr's are additive.
seealso:
  - module: community.docker.docker_container
"""

EXAMPLES = r"""
- name: Migrate the database to head from the backend image, with a dump first
  ktrdr.ops.migration:
    image: "{{ ktrdr_images.backend }}"
    db_host: ktrdr-db
    db_name: ktrdr
    db_user: ktrdr
    db_password: "{{ ktrdr_db_password }}"
    backup_dir: /srv/ktrdr/backups
    backup_container: ktrdr-db
  run_once: true
  register: migration

- name: What would be applied (check mode lists the pending revisions)
  ktrdr.ops.migration:
    container: ktrdr-backend
  check_mode: true
  register: pending

- name: Roll back one revision with the running backend's settings
  ktrdr.ops.migration:
    container: ktrdr-backend
    target: 6bfcfd0a377f
    allow_downgrade: true
"""

RETURN = r"""
revision_before:
  description: Revision of the database before the run (C(null) for an empty database; C(a,b) for several branch heads).
  returned: success
  type: str
  sample: 6bfcfd0a377f
revision:
  description: Revision of the database after the run (in check mode, the revision it has now).
  returned: success
  type: str
  sample: a1b2c3d4e5f6
head:
  description: Head revision of the image's migrations (C(a,b) when there are several heads).
  returned: success
  type: str
  sample: a1b2c3d4e5f6
target:
  description: The revision O(target) resolved to (C(null) for V(base)).
  returned: success
  type: str
  sample: a1b2c3d4e5f6
direction:
  description: V(upgrade), V(downgrade) or V(none).
  returned: success
  type: str
  sample: upgrade
pending:
  description: Revisions that had to be applied (or un-applied) when the module looked, in the order alembic runs them.
  returned: success
  type: list
  elements: str
  sample: [a1b2c3d4e5f6]
applied:
  description:
    - Revisions this run applied (or un-applied). Empty in check mode, and when another run applied them while this one waited for the lock.
  returned: success
  type: list
  elements: str
  sample: [a1b2c3d4e5f6]
revisions:
  description: The image's migrations, C({revision, down_revisions, description}), oldest first.
  returned: success
  type: list
  elements: dict
  sample: [{revision: 6bfcfd0a377f, down_revisions: [], description: create operations table}]
output:
  description: What alembic printed (empty when it did not run).
  returned: always
  type: str
  sample: "INFO  [alembic.runtime.migration] Running upgrade 6bfcfd0a377f -> a1b2c3d4e5f6, create checkpoints table"
command:
  description: The alembic command that ran.
  returned: when alembic ran
  type: str
  sample: -m alembic upgrade a1b2c3d4e5f6
backup_path:
  description: The dump written before the upgrade.
  returned: when a backup was taken
  type: str
  sample: /srv/ktrdr/backups/ktrdr-6bfcfd0a377f-20261122T215501Z.dump
lock_waited_seconds:
  description: How long the run waited for the advisory lock.
  returned: when the module applied or checked under the lock
  type: float
  sample: 0.0
"""

import datetime
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.ktrdr.ops.plugins.module_utils import _docker
from ansible_collections.ktrdr.ops.plugins.module_utils._migration import (
    ARGS_ENV,
    DEFAULT_LOCK_KEY,
    RUNNER,
    MigrationError,
    describe,
    ordered,
    parse_runner_output,
    plan,
    runner_args,
    single,
)


# "sqlalchemy.exc.ProgrammingError: ..." / "KeyError: 'x'" / "alembic.util.exc.CommandError: ..."
EXCEPTION_LINE = re.compile(r"^(?:FAILED:|(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Failure)\w*(?::|$))")


class Migrator:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.result = dict(changed=False, output="")
        self.start = time.time()
        try:
            # Quick requests (ping, inspect) wait docker_timeout; the runner's and the backup's as long as the run may take.
            self.cli = _docker.client_from_params(self.p)
            self.cli.ping()
            self.run_cli = _docker.client_from_params(self.p, timeout=max(self.p["docker_timeout"], int(self.p["timeout"]) + 60),
                                                      version=self.cli.api.api_version)
        except _docker.DockerConfigError as exc:
            self.fail(str(exc))
        except Exception as exc:
            self.fail("Cannot reach the Docker engine at %s: %s" % (self.p["docker_host"], to_native(exc)))
        self.network = None
        if self.p["image"]:
            self.check_image()
            self.network = self.p["network"] or _docker.network_of(self.cli, self.p["db_host"])
            if self.p["network"]:
                try:
                    self.cli.networks.get(self.p["network"])
                except _docker.NotFound:
                    self.fail("Docker network %s does not exist; create it or name the database's network" % self.p["network"])
        else:
            try:
                _docker.running_container(self.cli, self.p["container"])
            except _docker.DockerRunError as exc:
                self.fail("Cannot exec into the backend: %s" % exc)

    def fail(self, msg, **extra):
        self.result.update(extra)
        self.module.fail_json(msg=msg, **self.result)

    def check_image(self):
        try:
            self.cli.images.get(self.p["image"])
        except _docker.ImageNotFound:
            self.fail("Image %s is not on the Docker engine at %s (it is not pulled): build or load it first"
                      % (self.p["image"], self.p["docker_host"]))

    def environment(self, args):
        env = {str(k): str(v) for k, v in self.p["env"].items()}
        # Both spellings: KTRDR_* is what ktrdr reads first, DB_* what older alembic env.py files read.
        for opt, name in (("db_host", "DB_HOST"), ("db_port", "DB_PORT"), ("db_name", "DB_NAME"),
                          ("db_user", "DB_USER"), ("db_password", "DB_PASSWORD")):
            value = self.p[opt]
            # In a running container, its own port setting stays unless the host is overridden too.
            if value is None or (opt == "db_port" and self.p["container"] and self.p["db_host"] is None):
                continue
            env["KTRDR_" + name] = str(value)
            env[name] = str(value)
        env[ARGS_ENV] = args
        return env

    def run_runner(self, mode, target=None, direction="upgrade"):
        deadline = self.start + self.p["timeout"]
        remaining = deadline - time.time()
        if remaining <= 5:
            self.fail("timeout of %ss used up before alembic could run" % self.p["timeout"])
        args = runner_args(mode, workdir=self.p["workdir"], target=target, direction=direction,
                           lock_key=self.p["lock_key"] if self.p["lock_key"] is not None else DEFAULT_LOCK_KEY,
                           lock_timeout=self.p["lock_timeout"], connect_timeout=min(30, remaining / 2), deadline=deadline)
        env = self.environment(args)
        command = ["python", "-c", RUNNER]
        where = "image %s" % self.p["image"] if self.p["image"] else "container %s" % self.p["container"]
        try:
            if self.p["image"]:
                rc, output = _docker.run_oneshot(self.run_cli, self.p["image"], command, env, network=self.network,
                                                 workdir=self.p["workdir"], timeout=remaining, purpose="migration")
            else:
                rc, output = _docker.exec_in(self.run_cli, self.p["container"], command, environment=env, workdir=self.p["workdir"])
        except _docker.DockerRunError as exc:
            self.fail("Migration runner in %s failed: %s" % (where, exc), output=exc.output or "")
        except _docker.DockerException as exc:
            self.fail("Cannot run the migration runner in %s: %s" % (where, to_native(exc)))
        try:
            res, logs = parse_runner_output(output)
        except MigrationError as exc:
            self.fail("Migration runner in %s exited with %s: %s" % (where, rc, exc), output=output)
        if res.get("error"):
            self.fail("Migration runner in %s (database %s) failed: %s" % (where, res.get("db"), res["error"]),
                      output=res.get("output") or logs, runner_traceback=res.get("traceback"))
        return res

    def take_backup(self, before):
        bdir = self.p["backup_dir"]
        if not os.path.isdir(bdir):
            self.fail("backup_dir %s does not exist on the managed host" % bdir)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        db_name = self.p["db_name"] or "ktrdr"
        path = os.path.join(bdir, "%s-%s-%s.dump" % (db_name, before or "empty", stamp))
        cmd = ["pg_dump", "--format=custom", "--username", self.p["db_user"] or "ktrdr", "--dbname", db_name]
        env = {"PGPASSWORD": self.p["db_password"]} if self.p["db_password"] else None
        try:
            rc, err, size = _docker.exec_to_file(self.run_cli, self.p["backup_container"], cmd, path, environment=env)
        except (_docker.DockerRunError, _docker.DockerException, OSError) as exc:
            self.fail("Backup before migrating failed (nothing migrated): %s" % to_native(exc))
        if rc != 0:
            self.fail("Backup before migrating failed (nothing migrated): pg_dump in %s exited %s: %s"
                      % (self.p["backup_container"], rc, err.strip()))
        self.result["backup_path"] = path
        self.result["backup_bytes"] = size

    def run(self):
        info = self.run_runner("inspect")
        revisions, heads = info["revisions"], info["heads"]
        current = info.get("current_before") or []
        self.result.update(
            revision_before=single(current),
            revision=single(current),
            head=single(sorted(heads)),
            revisions=[dict(revision=r, down_revisions=revisions[r]["down"], description=revisions[r]["doc"])
                       for r in ordered(revisions, set(revisions))],
            applied=[],
        )
        try:
            step = plan(revisions, heads, current, self.p["target"])
        except MigrationError as exc:
            self.fail(str(exc))
        self.result.update(target=step["target"], direction=step["direction"], pending=step["revisions"])
        if step["direction"] == "downgrade" and not self.p["allow_downgrade"]:
            self.fail("target %s is older than the database's revision %s; migrating would un-apply %s. Set allow_downgrade=true "
                      "to do that." % (self.p["target"], single(current), describe(revisions, step["revisions"])))
        if self.module._diff:
            self.result["diff"] = dict(before=dict(revision=single(current)),
                                       after=dict(revision=step["target"] if step["revisions"] else single(current)))
        if not step["revisions"]:
            self.result["msg"] = "Database is at revision %s (%s); nothing to do" % (
                single(current), "head" if current and sorted(current) == sorted(heads) else "target")
            self.module.exit_json(**self.result)
        if self.module.check_mode:
            self.result["changed"] = True
            self.result["msg"] = "Would %s the database from %s to %s: %s (check mode)" % (
                step["direction"], single(current) or "an empty schema", step["target"] or "base", describe(revisions, step["revisions"]))
            self.module.exit_json(**self.result)

        if self.p["backup_dir"] and step["direction"] == "upgrade":
            self.take_backup(single(current))

        res = self.run_runner("apply", target=step["target"], direction=step["direction"])
        before = res.get("current_before") or []
        after = res.get("current_after") or []
        self.result.update(
            revision_before=single(before),
            revision=single(after),
            output=res.get("output") or "",
            lock_waited_seconds=res.get("lock_waited_seconds"),
        )
        if res.get("command"):
            self.result["command"] = res["command"]
        if res.get("timed_out"):
            self.fail("alembic %s %s did not finish within the timeout of %ss and was stopped; the database is at revision %s"
                      % (step["direction"], step["target"] or "base", self.p["timeout"], single(after) or "none (empty)"))
        if res.get("rc") not in (None, 0):
            self.fail("alembic %s %s failed (exit %s); the database is %s revision %s. alembic said: %s"
                      % (step["direction"], step["target"] or "base", res["rc"],
                         "still at" if after == before else "now at", single(after) or "none (empty)",
                         _last_error(res.get("output"))))
        if before == after:
            self.result["msg"] = "Database already at revision %s: another run applied %s while this one waited %ss for the lock" % (
                single(after), describe(revisions, step["revisions"]), res.get("lock_waited_seconds"))
            self.module.exit_json(**self.result)
        moved = plan(revisions, heads, before, single(after) or "base") if after else dict(revisions=step["revisions"])
        self.result["applied"] = moved["revisions"]
        self.result["changed"] = True
        if self.module._diff:
            self.result["diff"] = dict(before=dict(revision=single(before)), after=dict(revision=single(after)))
        self.result["msg"] = "Database %sd from %s to %s: %s" % (
            step["direction"], single(before) or "an empty schema", single(after) or "base", describe(revisions, self.result["applied"]))
        self.module.exit_json(**self.result)


def _last_error(output):
    """The line that says what went wrong (the exception at the end of alembic's traceback, with its SQL)."""
    lines = [line.strip() for line in (output or "").splitlines() if line.strip()]
    for i in range(len(lines) - 1, -1, -1):
        if EXCEPTION_LINE.match(lines[i]):
            text = lines[i]
            if i + 1 < len(lines) and lines[i + 1].startswith("[SQL:"):
                text += " " + lines[i + 1]
            return text[:1000]
    meaningful = [line for line in lines if not line.startswith("(Background on this error")]
    return meaningful[-1][:1000] if meaningful else "(no output)"


def main():
    argument_spec = _docker.docker_argument_spec()
    argument_spec.update(
        image=dict(type="str"),
        container=dict(type="str"),
        network=dict(type="str"),
        db_host=dict(type="str"),
        db_port=dict(type="int", default=5432),
        db_name=dict(type="str"),
        db_user=dict(type="str"),
        db_password=dict(type="str", no_log=True),
        target=dict(type="str", default="head"),
        allow_downgrade=dict(type="bool", default=False),
        backup_dir=dict(type="path"),
        backup_container=dict(type="str"),
        env=dict(type="dict", default={}, no_log=True),
        workdir=dict(type="path", default="/app"),
        lock_timeout=dict(type="float", default=300.0),
        lock_key=dict(type="int", no_log=False),
        timeout=dict(type="float", default=600.0),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("image", "container")],
        required_one_of=[("image", "container")],
        required_together=[("backup_dir", "backup_container")],
    )
    if not _docker.HAS_DOCKER_SDK:
        module.fail_json(msg=missing_required_lib("docker (Docker SDK for Python)"), exception=_docker.DOCKER_SDK_ERROR)
    _docker.check_module_params(module)
    if module.params["image"] and not module.params["db_host"]:
        module.fail_json(msg="db_host is required with image: the one-shot container needs to know where the database is "
                             "(the database container's name on its network)")
    if not (module.params["target"] or "").strip():
        module.fail_json(msg="target must be head, base or a revision id")
    Migrator(module).run()


if __name__ == "__main__":
    main()
