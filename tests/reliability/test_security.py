"""Security controls (docs/reliability.md, "Security"), each proven on the deployed badinput stack or the repository.

- secrets never printed: a full converge at -vvv, a failing deploy's output and its diagnostics hold neither
  the DB password nor the JWT secret;
- every task whose module arguments carry a secret has no_log (a static scan of roles and playbooks);
- the database port is published on 127.0.0.1 by default, and so are the backend and worker ports;
- containers run as a non-root user; strategies and data (and the backend's models) are mounted read-only;
- the backend image carries no build tools;
- the repository holds no real secret: literal secrets are throwaway values in inventories that say so, and
  the example vault is encrypted with a published dummy password.
"""

import glob
import json
import os
import re
import subprocess
import sys

import yaml

from conftest import ARTIFACTS, BACKEND_CONTAINER, DB_CONTAINER, ROOT, VARS, containers, docker

SECRET_VARS = ("ktrdr_db_password", "ktrdr_jwt_secret")


def secret_values():
    return [VARS[k] for k in SECRET_VARS]


def inspect(name):
    return json.loads(docker("inspect", name).stdout)[0]


def test_a_full_converge_at_vvv_prints_no_secret(stack):
    text = open(stack.log_path).read()
    # It is the -vvv output of the whole site.yml, secret-bearing tasks included.
    for marker in ("PLAY [Check the inventory]", "ktrdr.ops.database : Run the PostgreSQL container until healthy",
                   "ktrdr.ops.backend : Run alembic for the backend image", "ktrdr.ops.workers : Start the worker containers",
                   "ktrdr.ops.canary", "<localhost> EXEC", "the output has been hidden due to the fact that"):
        assert marker in text, "not in the converge log: %s" % marker
    for value in secret_values():
        assert value not in text, "a secret value is in the -vvv output of site.yml (%s)" % stack.log_path


def test_a_failing_deploy_and_its_diagnostics_print_no_secret(wrong_password_deploy):
    """The deploy that refused another DB password: its output and the diagnostics it collected."""
    run, dummy = wrong_password_deploy
    files = [p for p in glob.glob(os.path.join(ARTIFACTS["dir"], "diagnostics", "**", "*"), recursive=True) if os.path.isfile(p)]
    inspected = [p for p in files if p.endswith(DB_CONTAINER + ".inspect.json")]
    assert inspected, files
    # The inspect output keeps the variable, with its value redacted: the check below is not blind.
    assert "POSTGRES_PASSWORD=********" in open(inspected[0]).read()
    leaks = secret_values() + ["another-password-Wq8Lm2"]
    for value in leaks:
        assert value not in run.stdout + run.stderr
        for path in files:
            with open(path, errors="replace") as fh:
                assert value not in fh.read(), "%s holds a secret value" % path


def module_args_of_tasks():
    """(file, task name, module arguments) of every task in roles/*/tasks and playbooks/*.yml."""
    keywords = {"name", "when", "tags", "loop", "loop_control", "register", "changed_when", "failed_when", "notify", "run_once",
                "delegate_to", "check_mode", "ignore_errors", "until", "retries", "delay", "become", "module_defaults",
                "listen", "no_log", "vars", "block", "rescue", "always", "environment", "diff"}

    def walk(items):
        for t in items or []:
            if isinstance(t, dict):
                for k in ("block", "rescue", "always"):
                    yield from walk(t.get(k))
                if "block" not in t:
                    yield t

    for path in sorted(glob.glob(os.path.join(ROOT, "roles", "*", "tasks", "*.yml")) + glob.glob(os.path.join(ROOT, "playbooks", "*.yml"))):
        doc = yaml.safe_load(open(path)) or []
        plays = doc if "/playbooks/" in path else [{"tasks": doc}]
        for play in plays:
            for t in walk(play.get("tasks", []) + play.get("pre_tasks", []) + play.get("post_tasks", [])):
                yield os.path.relpath(path, ROOT), t, {k: v for k, v in t.items() if k not in keywords}


def _masked_by_the_module(args, carries):
    """A ktrdr.ops module whose argument spec marks every secret-carrying option no_log: Ansible then masks
    those values in the whole result, so the task needs no no_log (which would hide its messages too)."""
    module = next((k for k in args if k.startswith("ktrdr.ops.")), None)
    if module is None or not isinstance(args[module], dict):
        return False
    with open(os.path.join(ROOT, "plugins", "modules", module.split(".")[-1] + ".py")) as fh:
        source = fh.read()
    secret_keys = [k for k, v in args[module].items() if carries.search(yaml.safe_dump({k: v}))]
    return all(re.search(r"\b%s=dict\([^)]*no_log=True" % re.escape(k), source) for k in secret_keys)


def test_every_task_passing_a_secret_to_a_module_has_no_log():
    # Messages (assert/fail/debug) only name the secret variables; the -vvv tests above prove they print no value.
    messages = {"ansible.builtin.assert", "ansible.builtin.fail", "ansible.builtin.debug", "ansible.builtin.set_fact"}
    carries = re.compile(r"db_password|jwt_secret|_database_env\b|_backend_env\b|_workers_common_env|PGPASSWORD")
    checked, missing = 0, []
    for path, task, args in module_args_of_tasks():
        if any(k in messages for k in args) or not carries.search(yaml.safe_dump(args)):
            continue
        checked += 1
        if not task.get("no_log") and not _masked_by_the_module(args, carries):
            missing.append("%s: %s" % (path, task.get("name")))
    assert checked >= 6, "the scan found too few secret-bearing tasks (%d): is it still reading the roles?" % checked
    assert missing == [], "tasks passing a secret to a module without no_log: true: %s" % missing


def test_ports_are_published_on_loopback_by_default(stack):
    bindings = {name: inspect(name)["HostConfig"]["PortBindings"] for name in containers()}
    db = bindings[DB_CONTAINER]["5432/tcp"]
    assert db == [{"HostIp": "127.0.0.1", "HostPort": str(VARS["ktrdr_db_port"])}], db
    for name, ports in bindings.items():
        for port, binds in ports.items():
            assert all(b["HostIp"] == "127.0.0.1" for b in binds), "%s publishes %s on %s" % (name, port, binds)
    assert len(bindings) == 4  # db, backend, two workers


def test_containers_run_as_a_non_root_user(stack):
    for name in containers():
        uid = docker("exec", name, "id", "-u").stdout.strip()
        assert uid and uid != "0", "%s runs as uid %s" % (name, uid)
        top = docker("top", name, "-o", "pid,uid,comm").stdout.splitlines()[1:]
        assert top and all(line.split()[1] not in ("0", "root") for line in top), "%s has root processes: %s" % (name, top)


def test_strategies_and_data_are_mounted_read_only(stack):
    want_ro = {"/app/strategies", "/app/data"}
    seen = 0
    for name in containers():
        if name == DB_CONTAINER:
            continue
        mounts = {m["Destination"]: m["RW"] for m in inspect(name)["Mounts"]}
        for dest in want_ro:
            assert mounts[dest] is False, "%s mounts %s read-write" % (name, dest)
        assert mounts["/app/checkpoints"] is True
        labels = inspect(name)["Config"]["Labels"]
        # Only training workers write models; the backend and backtest workers read them.
        assert mounts["/app/models"] is (labels.get("io.ktrdr.component") == "training-worker"), (name, mounts)
        seen += 1
    assert seen == 3
    # And the container really cannot write there.
    proc = docker("exec", BACKEND_CONTAINER, "sh", "-c", "touch /app/strategies/x 2>&1", check=False)
    assert proc.returncode != 0 and "Read-only file system" in proc.stdout + proc.stderr


def test_backend_image_has_no_build_tools(stack):
    tools = ["gcc", "cc", "c++", "g++", "make", "ld", "as", "cpp"]
    proc = docker("run", "--rm", "--network", "none", "--entrypoint", "sh", stack.images["backend"], "-c",
                  "for t in %s; do command -v $t; done; true" % " ".join(tools))
    assert proc.stdout.strip() == "", "build tools in %s: %s" % (stack.images["backend"], proc.stdout.split())
    # The same shell does find what it has: the check is not blind.
    proc = docker("run", "--rm", "--network", "none", "--entrypoint", "sh", stack.images["backend"], "-c", "command -v python")
    assert proc.stdout.strip()


# -- the repository --------------------------------------------------------------------------------------

SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "generic API key": re.compile(r"\b(sk|rk)_(live|test)_[A-Za-z0-9]{20,}\b"),
}


def tracked_files():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [f for f in out.split("\0") if f and os.path.isfile(os.path.join(ROOT, f))]


def test_no_known_secret_pattern_in_tracked_files():
    files = tracked_files()
    assert len(files) > 100
    hits = []
    for f in files:
        try:
            text = open(os.path.join(ROOT, f), encoding="utf-8").read()
        except UnicodeDecodeError:
            continue
        hits += ["%s: %s" % (f, kind) for kind, rx in SECRET_PATTERNS.items() if rx.search(text)]
    assert hits == []


def test_literal_secrets_are_throwaway_and_flagged():
    """Every literal ktrdr_db_password / ktrdr_jwt_secret in tracked YAML says 'throwaway', and its file sets
    ktrdr_throwaway_secrets: true; anything else is a reference (the vault) or encrypted."""
    found = 0
    for f in tracked_files():
        if not f.endswith((".yml", ".yaml")):
            continue
        text = open(os.path.join(ROOT, f)).read()
        if text.startswith("$ANSIBLE_VAULT"):
            continue
        for key, value in re.findall(r"(?m)^[ \t]*(ktrdr_db_password|ktrdr_jwt_secret):[ \t]*(\S.*?)[ \t]*$", text):
            value = value.strip("\"'")
            # a reference (the vault), or the empty default of roles/common: no secret (prechecks refuse it)
            if "{{" in value or not value:
                continue
            found += 1
            assert "throwaway" in value, "%s: %s is a literal that does not say throwaway" % (f, key)
            assert re.search(r"(?m)^ktrdr_throwaway_secrets:\s*true", text), "%s: literal secrets without ktrdr_throwaway_secrets: true" % f
    assert found >= 4


def test_example_vault_is_encrypted_with_the_published_dummy_password():
    example = os.path.join(ROOT, "inventories", "homelab-example")
    vault = os.path.join(example, "group_vars", "all", "vault.yml")
    assert open(vault).read().startswith("$ANSIBLE_VAULT;1.1;AES256")
    dummy = os.path.join(example, "vault-password.dummy.txt")
    assert "dummy" in open(dummy).read() and "dummy" in open(os.path.join(example, "README.md")).read()
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-vault"), "view", "--vault-password-file", dummy, vault],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    values = yaml.safe_load(proc.stdout)
    assert set(values) == {"vault_ktrdr_db_password", "vault_ktrdr_jwt_secret"}
    assert all("replace-me" in v for v in values.values()), "the example vault must hold only example values"
