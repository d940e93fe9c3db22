"""The release record (plugins/module_utils/_ledger.py record_release, module ktrdr.ops.release_record):
which release is current and which previous after each event, what is forgotten, and that the
module writes a file only when the manifest changed (check mode and diff through ansible-playbook)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.ktrdr.ops.plugins.module_utils import _ledger

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def images(n):
    return {"postgres": "ktrdr-postgres:pg", "backend": "ktrdr-backend:b%d" % n, "worker_cpu": "ktrdr-worker-cpu:w%d" % n}


def record(old, event, n, **kw):
    kw.setdefault("now", "2026-12-03T06:%02d:00Z" % n)
    return _ledger.record_release(old, event, images(n), ["backend", "worker_cpu"], **kw)


def test_distributed_then_deployed_then_the_next_release():
    m1, r1 = record(None, "distributed", 1)
    assert (m1["current"], m1["previous"]) == (None, None)
    assert m1["releases"][0]["host_images"] == ["ktrdr-backend:b1", "ktrdr-worker-cpu:w1"]
    assert r1 == _ledger.release_id(images(1))
    m2, _ = record(m1, "deployed", 2 - 1, schema_revision="0003", now="2026-12-03T07:00:00Z")
    assert m2["current"] == r1 and m2["previous"] is None
    entry = m2["releases"][0]
    assert entry["distributed_at"] == "2026-12-03T06:01:00Z", "the first distribution's time is kept"
    assert entry["deployed_at"] == "2026-12-03T07:00:00Z" and entry["schema_revision"] == "0003"
    m3, r2 = record(m2, "deployed", 2)
    assert (m3["current"], m3["previous"]) == (r2, r1)
    assert [r["id"] for r in m3["releases"]] == [r1, r2]


def test_a_repeated_event_changes_nothing():
    m1, _ = record(None, "deployed", 1, schema_revision="0003")
    again, _ = record(json.loads(json.dumps(m1)), "deployed", 1, schema_revision="0003", now="2026-12-04T00:00:00Z")
    assert again == m1
    redistributed, _ = record(m1, "distributed", 1, now="2026-12-04T00:00:00Z")
    assert redistributed == m1


def test_history_forgets_the_oldest_never_current_or_previous():
    m = None
    for n in range(1, 6):
        m, _ = record(m, "deployed" if n in (1, 2) else "distributed", n, history=3)
    ids = [r["id"] for r in m["releases"]]
    assert len(ids) == 3
    assert m["current"] in ids and m["previous"] in ids
    assert _ledger.release_id(images(3)) not in ids and _ledger.release_id(images(5)) in ids


def test_bad_event_is_named():
    with pytest.raises(_ledger.LedgerError, match="unknown release event 'running'"):
        _ledger.record_release({}, "running", images(1), [])


def test_the_module_writes_only_a_change(tmp_path):
    path = tmp_path / "env" / "releases.json"
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ktrdr.ops.release_record:\n"
        "        path: %s\n        event: deployed\n        images: %s\n        host_keys: [backend]\n"
        "        env: unit\n        host: localhost\n"
        "      register: r\n"
        "    - ansible.builtin.debug: {var: r}\n" % (path, json.dumps(images(1)))
    )

    def play(*extra):
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
        done = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
             str(playbook), "-e", "ansible_python_interpreter=" + sys.executable, *extra], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    out = play("--check", "--diff")
    assert "changed=1" in out and '"current": "' in out and not path.exists(), "check mode writes nothing"
    assert "changed=1" in play()
    written = json.loads(path.read_text())
    assert written["current"] == _ledger.release_id(images(1)) and written["env"] == "unit"
    mtime = path.stat().st_mtime_ns
    assert "changed=0" in play()
    assert path.stat().st_mtime_ns == mtime
    path.write_text("{broken")
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    failed = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook),
         "-e", "ansible_python_interpreter=" + sys.executable],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert failed.returncode != 0 and "is not JSON" in failed.stdout and "move it away or fix it" in failed.stdout
