# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
#
# This module util is PRIVATE to the ktrdr.ops collection. It may change or go away
# without notice; do not use it from other collections.
"""The alembic side of ktrdr.ops.migration.

Two parts: RUNNER, a small script that runs *inside* a ktrdr backend container (one-shot or
exec) with ``python -c``, and the pure revision-graph logic the module applies to what the
runner reports. The runner only uses what a ktrdr backend image already has (alembic and
asyncpg; psycopg as a fallback), so nothing is installed at run time.
"""

from __future__ import annotations

import json

RESULT_MARKER = "@@ktrdr-ops-migration@@"
# "ktrdrmig" as a signed 64-bit integer: the advisory lock key every ktrdr.ops migration run takes.
DEFAULT_LOCK_KEY = int.from_bytes(b"ktrdrmig", "big")
ARGS_ENV = "KTRDR_OPS_MIGRATION_ARGS"

RUNNER = r'''
import asyncio, json, os, re, subprocess, sys, time, traceback

MARKER = "@@ktrdr-ops-migration@@"
args = json.loads(os.environ.pop("KTRDR_OPS_MIGRATION_ARGS"))
result = {"ok": False, "mode": args["mode"]}


def emit():
    sys.stdout.flush()
    sys.stdout.write("\n" + MARKER + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


def env(name, default):
    return os.environ.get("KTRDR_" + name) or os.environ.get(name) or default


DB = dict(host=env("DB_HOST", "localhost"), port=int(env("DB_PORT", "5432")), database=env("DB_NAME", "ktrdr"),
          user=env("DB_USER", "ktrdr"), password=env("DB_PASSWORD", None))
result["db"] = "%s@%s:%s/%s" % (DB["user"], DB["host"], DB["port"], DB["database"])


def graph():
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    cfg = Config(os.path.join(args["workdir"], "alembic.ini"))
    script = ScriptDirectory.from_config(cfg)
    revs = {}
    for rev in script.walk_revisions():
        down = rev.down_revision
        down = [] if down is None else ([down] if isinstance(down, str) else list(down))
        revs[rev.revision] = {"down": down, "doc": (rev.doc or "").strip()}
    return revs, list(script.get_heads())


class Conn:
    """asyncpg when the image has it (ktrdr's does), else psycopg 3 or psycopg2."""

    def __init__(self):
        self.kind = None
        try:
            import asyncpg  # noqa: F401
            self.kind = "asyncpg"
            self.loop = asyncio.new_event_loop()
            self.c = self.loop.run_until_complete(asyncpg.connect(
                timeout=args["connect_timeout"], server_settings={"application_name": "ktrdr.ops migration"}, **DB))
            return
        except ImportError:
            pass
        try:
            import psycopg
            self.kind = "psycopg"
            self.c = psycopg.connect(host=DB["host"], port=DB["port"], dbname=DB["database"], user=DB["user"],
                                     password=DB["password"], connect_timeout=int(args["connect_timeout"]),
                                     application_name="ktrdr.ops migration", autocommit=True)
            return
        except ImportError:
            pass
        import psycopg2
        self.kind = "psycopg2"
        self.c = psycopg2.connect(host=DB["host"], port=DB["port"], dbname=DB["database"], user=DB["user"],
                                  password=DB["password"], connect_timeout=int(args["connect_timeout"]),
                                  application_name="ktrdr.ops migration")
        self.c.autocommit = True

    def rows(self, sql, *params):
        if self.kind == "asyncpg":
            return [tuple(r) for r in self.loop.run_until_complete(self.c.fetch(sql, *params))]
        sql = sql.replace("$1", "%s")
        with self.c.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

    def close(self):
        try:
            if self.kind == "asyncpg":
                self.loop.run_until_complete(self.c.close())
                self.loop.close()
            else:
                self.c.close()
        except Exception:
            pass


def current(conn):
    if conn.rows("SELECT to_regclass('alembic_version')")[0][0] is None:
        return []
    return sorted(r[0] for r in conn.rows("SELECT version_num FROM alembic_version"))


def connect():
    deadline = time.time() + args["connect_timeout"]
    while True:
        try:
            return Conn()
        except Exception as exc:
            # A refused password or an unknown role/database will not heal by waiting.
            if re.search(r"password authentication failed|role .* does not exist|database .* does not exist", str(exc)):
                raise RuntimeError("PostgreSQL %s refuses the connection: %s: %s (nothing was migrated: check the database "
                                   "user, name and password, ktrdr_db_* in the inventory)" % (result["db"], type(exc).__name__, exc))
            if time.time() >= deadline:
                raise RuntimeError("cannot connect to PostgreSQL %s: %s: %s (nothing was migrated: start the database, or fix "
                                   "db_host/db_port/network so this runner reaches it)" % (result["db"], type(exc).__name__, exc))
            time.sleep(1)


def main():
    if not DB["password"]:
        # No fallback: a guessed password would hide a deployment that lost its secret.
        raise RuntimeError("no database password: neither KTRDR_DB_PASSWORD nor DB_PASSWORD is set in the container, "
                           "and db_password was not given (set ktrdr_db_password in the inventory)")
    os.chdir(args["workdir"])
    sys.path.insert(0, args["workdir"])
    result["revisions"], result["heads"] = graph()
    conn = connect()
    try:
        result["current_before"] = current(conn)
        if args["mode"] == "inspect":
            result["ok"] = True
            return
        t0 = time.time()
        key = args["lock_key"]
        while not conn.rows("SELECT pg_try_advisory_lock($1::bigint)", key)[0][0]:
            if time.time() - t0 > args["lock_timeout"]:
                holders = conn.rows(
                    "SELECT a.pid, a.application_name, a.client_addr::text FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                    "WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = $1::bigint", key)
                raise RuntimeError("another migration holds the advisory lock %d (held by %s) and did not release it within %ss"
                                   % (key, holders or "an unknown session", args["lock_timeout"]))
            time.sleep(0.5)
        result["lock_waited_seconds"] = round(time.time() - t0, 2)
        try:
            # Re-read under the lock: a run that waited may find the work already done.
            before = current(conn)
            result["current_before"] = before
            target = args["target"]
            if (target is None and not before) or (target is not None and before == [target]):
                result["skipped"] = True
            else:
                cmd = [sys.executable, "-m", "alembic", args["direction"], target or "base"]
                result["command"] = " ".join(cmd[1:])
                remaining = max(args["deadline"] - time.time(), 1)
                try:
                    proc = subprocess.run(cmd, cwd=args["workdir"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          timeout=remaining)
                    result["rc"] = proc.returncode
                    result["output"] = proc.stdout.decode("utf-8", "replace")
                except subprocess.TimeoutExpired as exc:
                    result["rc"] = None
                    result["timed_out"] = True
                    result["output"] = (exc.stdout or b"").decode("utf-8", "replace")
            result["current_after"] = current(conn)
        finally:
            conn.rows("SELECT pg_advisory_unlock($1::bigint)", key)
        result["ok"] = True
    finally:
        conn.close()


try:
    main()
except Exception as exc:
    result["error"] = "%s: %s" % (type(exc).__name__, exc)
    result["traceback"] = traceback.format_exc()
emit()
'''


class MigrationError(Exception):
    pass


def runner_args(mode, workdir="/app", target=None, direction="upgrade", lock_key=DEFAULT_LOCK_KEY,
                lock_timeout=300, connect_timeout=30, deadline=None):
    return json.dumps(dict(mode=mode, workdir=workdir, target=target, direction=direction, lock_key=lock_key,
                           lock_timeout=lock_timeout, connect_timeout=connect_timeout, deadline=deadline))


def parse_runner_output(output):
    """(result dict, the output before the result line). Raises MigrationError if there is no result."""
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else (output or "")
    idx = text.rfind(RESULT_MARKER)
    if idx < 0:
        raise MigrationError("the migration runner printed no result; its output was:\n%s" % text[-4000:])
    line = text[idx + len(RESULT_MARKER):].splitlines()[0]
    try:
        return json.loads(line), text[:idx].rstrip()
    except ValueError as exc:
        raise MigrationError("cannot parse the runner's result (%s): %s" % (exc, line[:500]))


def ancestors(revisions, rev):
    """``rev`` and every revision below it (following down_revisions)."""
    seen = set()
    stack = [rev] if rev else []
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        if cur not in revisions:
            raise MigrationError("revision %s is not in this image's migrations" % cur)
        seen.add(cur)
        stack.extend(revisions[cur]["down"])
    return seen


def ordered(revisions, subset):
    """``subset`` in the order alembic applies them (every revision after its down_revisions)."""
    out = []
    done = set()

    def visit(rev):
        if rev in done or rev not in subset:
            return
        done.add(rev)
        for down in sorted(revisions[rev]["down"]):
            visit(down)
        out.append(rev)

    for rev in sorted(subset):
        visit(rev)
    return out


def resolve_target(revisions, heads, target):
    """The full revision id ``target`` names ('head', 'base' -> None, an id or a unique prefix of one)."""
    if target in ("head", "heads"):
        if len(heads) != 1:
            raise MigrationError("the migrations have %d heads (%s); merge them, or give target as one revision"
                                 % (len(heads), ", ".join(sorted(heads)) or "none"))
        return heads[0]
    if target == "base":
        return None
    if target in revisions:
        return target
    matches = sorted(r for r in revisions if r.startswith(target))
    if len(matches) == 1 and len(target) >= 4:
        return matches[0]
    if len(matches) > 1:
        raise MigrationError("target %r is ambiguous: it starts %s" % (target, ", ".join(matches)))
    raise MigrationError("target %r is not a revision of this image's migrations (known: %s; or head, base)"
                         % (target, ", ".join(ordered(revisions, set(revisions))) or "none"))


def plan(revisions, heads, current, target):
    """What moving from ``current`` (list of revisions in alembic_version) to ``target`` takes.

    Returns dict(target=<resolved id or None>, direction='upgrade'|'downgrade'|'none', revisions=[...]),
    revisions in the order they would run (downgrades newest first).
    """
    resolved = resolve_target(revisions, heads, target)
    unknown = [c for c in current if c not in revisions]
    if unknown:
        raise MigrationError(
            "the database is at revision %s, which this image's migrations do not contain (known: %s); it was migrated by a "
            "newer image: migrate with that image, or downgrade with it first" % (", ".join(unknown), ", ".join(sorted(revisions))))
    have = set()
    for rev in current:
        have |= ancestors(revisions, rev)
    want = ancestors(revisions, resolved)
    if have == want:
        return dict(target=resolved, direction="none", revisions=[])
    if want > have or not have:
        return dict(target=resolved, direction="upgrade", revisions=ordered(revisions, want - have))
    if want < have:
        return dict(target=resolved, direction="downgrade", revisions=list(reversed(ordered(revisions, have - want))))
    raise MigrationError("target %s is on another branch than the database's revision %s; alembic cannot move between branches "
                         "in one step" % (resolved, ", ".join(current)))


def describe(revisions, revs):
    return ", ".join("%s (%s)" % (r, revisions[r]["doc"]) if revisions.get(r, {}).get("doc") else r for r in revs)


def single(current):
    """alembic_version rows as one value for results: None, the id, or 'a,b' for branches."""
    if not current:
        return None
    return ",".join(current)
