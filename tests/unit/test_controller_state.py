"""Where the controller's state goes (plugins/lookup/controller_state.py): the checkout keeps it
in build/ and artifacts/, an installed collection never does, the environment variables win,
and a broken images.json is named instead of read as "no build"."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ansible.errors import AnsibleLookupError

from ansible_collections.ktrdr.ops.plugins.lookup import controller_state as cs

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_the_checkout_keeps_its_state_beside_its_code(tmp_path):
    env = {"HOME": str(tmp_path)}
    assert cs.is_checkout(ROOT)
    assert cs.state_path("build_dir", environ=env, root=ROOT) == os.path.join(ROOT, "build")
    assert cs.state_path("artifacts_dir", "canary", environ=env, root=ROOT) == os.path.join(ROOT, "artifacts", "canary")
    assert cs.state_path("source_dir", environ=env, root=ROOT) == os.path.join(ROOT, "deploy", "reference")


def test_an_installed_collection_keeps_no_state_inside_itself(tmp_path):
    installed = tmp_path / "ansible_collections" / "ktrdr" / "ops"
    installed.mkdir(parents=True)
    (installed / "MANIFEST.json").write_text("{}")
    env = {"HOME": str(tmp_path / "home")}
    build = cs.state_path("build_dir", environ=env, root=str(installed))
    artifacts = cs.state_path("artifacts_dir", "homelab", environ=env, root=str(installed))
    assert build == str(tmp_path / "home" / ".cache" / "ktrdr.ops" / "build")
    assert artifacts == str(tmp_path / "home" / ".cache" / "ktrdr.ops" / "artifacts" / "homelab")
    assert not build.startswith(str(installed)) and not artifacts.startswith(str(installed))
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    assert cs.state_path("build_dir", environ=env, root=str(installed)) == str(tmp_path / "xdg" / "ktrdr.ops" / "build")


def test_the_environment_variables_win(tmp_path):
    env = {"KTRDR_BUILD_DIR": "rel/build", "KTRDR_ARTIFACTS_DIR": str(tmp_path), "KTRDR_SOURCE_DIR": str(tmp_path / "src")}
    assert cs.state_path("build_dir", environ=env, root=ROOT) == os.path.abspath("rel/build")
    assert cs.state_path("artifacts_dir", "local", environ=env, root=ROOT) == str(tmp_path / "local")
    assert cs.state_path("source_dir", environ=env, root=ROOT) == str(tmp_path / "src")
    with pytest.raises(AnsibleLookupError, match="unknown term 'cache'"):
        cs.state_path("cache", environ=env, root=ROOT)


def test_the_build_record(tmp_path):
    assert cs.build_record(str(tmp_path)) == {}
    (tmp_path / "images.json").write_text(json.dumps({"images": {"backend": "ktrdr-backend:abc"}, "probes": {}}))
    assert cs.build_record(str(tmp_path))["images"] == {"backend": "ktrdr-backend:abc"}
    (tmp_path / "images.json").write_text('{"images": {"backend": ')
    with pytest.raises(AnsibleLookupError, match=r"images.json is not JSON .*run playbooks/build.yml again"):
        cs.build_record(str(tmp_path))
    (tmp_path / "images.json").write_text('["backend"]')
    with pytest.raises(AnsibleLookupError, match="holds no images map"):
        cs.build_record(str(tmp_path))


def test_the_lookup_as_a_playbook_reads_it(tmp_path):
    """Through ansible-playbook: a dict comes back as a dict, a path as a string."""
    (tmp_path / "images.json").write_text(json.dumps({"images": {"backend": "ktrdr-backend:abc"}}))
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.assert:\n        that:\n"
        "          - lookup('ktrdr.ops.controller_state', 'images', build_dir=d)['backend'] == 'ktrdr-backend:abc'\n"
        "          - lookup('ktrdr.ops.controller_state', 'build_dir') == d\n"
    )
    env = dict(os.environ, KTRDR_BUILD_DIR=str(tmp_path), ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    done = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
         str(playbook), "-e", f"d={tmp_path}"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
