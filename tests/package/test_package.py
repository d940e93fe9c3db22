"""What ships, and that it runs once installed: the Galaxy tarball's listing, the collection
installed from it (not the checkout) answering ansible-doc and --syntax-check by FQCN, the
changelog, and the execution-environment build context.

Real tools throughout: ansible-galaxy, ansible-doc, ansible-playbook, antsibull-changelog,
ansible-builder. make test's package stage runs it (tests/run.sh).
"""

import fnmatch
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
TARBALL_NAME = "%s-%s-%s.tar.gz" % (GALAXY["namespace"], GALAXY["name"], GALAXY["version"])

# Everything a user runs, and nothing else (fnmatch patterns over the member paths).
SHIPS = [
    "MANIFEST.json", "FILES.json", "README.md", "LICENSE", "CHANGELOG.md",
    "requirements.txt", "bindep.txt",
    "changelogs", "changelogs/changelog.yaml", "changelogs/config.yaml",
    "meta", "meta/*.yml",
    "plugins", "plugins/*",
    "roles", "roles/*",
    "playbooks", "playbooks/*.yml",
    "deploy", "deploy/docker", "deploy/docker/*",
    "deploy/reference", "deploy/reference/*",
    "docs", "docs/*.md",
    "inventories", "inventories/*",
]
# Dev-only or generated, wherever it is.
NEVER = ["*__pycache__*", "*.py[co]", "*.swp", "*~", "*/.pytest_cache*", ".pytest_cache*",
         "artifacts*", "build*", ".venv*", ".ansible*", "molecule*", "tests*", "bench*", "scripts*",
         "deploy/reference/tests*", "changelogs/fragments*", "ee*", "Makefile", "ansible.cfg", ".ci*"]


def run(cmd, **kw):
    env = dict(os.environ)
    env.pop("ANSIBLE_CONFIG", None)  # the checkout's config points Ansible at the checkout
    env.update(kw.pop("env", {}))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, **kw)
    assert res.returncode == 0, "%s exited %s\nstdout:\n%s\nstderr:\n%s" % (cmd, res.returncode, res.stdout[-3000:], res.stderr[-3000:])
    return res.stdout


def members(path):
    with tarfile.open(path) as tf:
        return [m.name.rstrip("/") for m in tf.getmembers()]


@pytest.fixture(scope="session")
def used_checkout(tmp_path_factory):
    """A copy of the checkout (tracked and untracked-but-not-ignored files) plus what a used one accumulates."""
    dest = tmp_path_factory.mktemp("checkout") / "ops"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for f in filter(None, files):
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)
    junk = ["artifacts/local/backend.log", ".pytest_cache/v/cache/nodeids", "roles/images/tasks/.main.yml.swp",
            "roles/images/tasks/main.yml~", "plugins/modules/__pycache__/strategy.cpython-311.pyc",
            "build/images.json", "deploy/reference/ktrdr/__pycache__/x.pyc", ".venv/bin/python",
            "changelogs/fragments/1-new.yml", "ktrdr-ops-0.0.9.tar.gz"]
    for j in junk:
        (dest / j).parent.mkdir(parents=True, exist_ok=True)
        (dest / j).write_text("junk\n")
    return dest


@pytest.fixture(scope="session")
def tarball(used_checkout, tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    run(["ansible-galaxy", "collection", "build", "--output-path", str(out)], cwd=used_checkout)
    return out / TARBALL_NAME


@pytest.fixture(scope="session")
def installed(tarball, tmp_path_factory):
    """The collection installed from the tarball into a collections path of its own, as a user would."""
    path = tmp_path_factory.mktemp("collections")
    # (run outside the checkout and with only this path configured: Ansible must not see the checkout's copy)
    run(["ansible-galaxy", "collection", "install", "--no-deps", "-p", str(path), str(tarball)], cwd=path,
        env={"ANSIBLE_COLLECTIONS_PATH": str(path)})
    return path


def test_tarball_holds_only_what_users_run(tarball):
    names = members(tarball)
    stray = [n for n in names if not any(fnmatch.fnmatch(n, p) for p in SHIPS)]
    dev_only = [n for n in names if any(fnmatch.fnmatch(n, p) for p in NEVER)]
    assert not stray, "shipped but not in the allowlist (add to galaxy.yml build_ignore, or to SHIPS if users need it): %s" % stray
    assert not dev_only, "dev-only or generated files in the tarball (galaxy.yml build_ignore): %s" % dev_only


def test_tarball_holds_everything_users_run(tarball):
    names = set(members(tarball))
    wanted = {"LICENSE", "CHANGELOG.md", "changelogs/changelog.yaml", "meta/runtime.yml", "meta/execution-environment.yml",
              "requirements.txt", "bindep.txt", "deploy/docker/Dockerfile.backend", "deploy/reference/alembic.ini"}
    for sub in ("plugins/modules", "plugins/module_utils", "plugins/doc_fragments", "playbooks", "docs"):
        wanted |= {str(p.relative_to(REPO)) for p in (REPO / sub).glob("*") if p.is_file() and p.suffix in (".py", ".yml", ".md")}
    wanted |= {str(p.relative_to(REPO)) for p in REPO.glob("roles/*/meta/argument_specs.yml")}
    assert not sorted(wanted - names), "missing from the tarball: %s" % sorted(wanted - names)
    manifest = json.loads(tarfile.open(tarball).extractfile("MANIFEST.json").read())
    assert manifest["collection_info"]["license_file"] == "LICENSE"
    assert "community.docker" in manifest["collection_info"]["dependencies"]


def test_installed_copy_is_what_ansible_uses(installed, tmp_path):
    out = run(["ansible-galaxy", "collection", "list", "ktrdr.ops", "--format", "json"], cwd=tmp_path,
              env={"ANSIBLE_COLLECTIONS_PATH": str(installed)})
    paths = list(json.loads(out))
    assert paths == [str(installed / "ansible_collections")], paths


def test_every_module_and_role_documents_itself_from_the_installed_copy(installed, tmp_path):
    env = {"ANSIBLE_COLLECTIONS_PATH": str(installed)}
    ops = installed / "ansible_collections" / "ktrdr" / "ops"
    modules = sorted(p.stem for p in (ops / "plugins" / "modules").glob("*.py"))
    roles = sorted(p.parent.parent.name for p in (ops / "roles").glob("*/meta/argument_specs.yml"))
    assert modules and roles
    docs = json.loads(run(["ansible-doc", "--json", "-t", "module"] + ["ktrdr.ops." + m for m in modules], cwd=tmp_path, env=env))
    assert sorted(docs) == ["ktrdr.ops." + m for m in modules]
    for name, doc in docs.items():
        assert doc["doc"]["filename"].startswith(str(ops)), (name, doc["doc"]["filename"])
        assert doc["examples"] and doc["return"], "%s lacks EXAMPLES or RETURN" % name
    role_docs = json.loads(run(["ansible-doc", "--json", "-t", "role"] + ["ktrdr.ops." + r for r in roles], cwd=tmp_path, env=env))
    assert sorted(role_docs) == ["ktrdr.ops." + r for r in roles]
    for name, doc in role_docs.items():
        assert doc["path"].startswith(str(ops)), (name, doc["path"])
        assert "main" in doc["entry_points"], name


def test_every_playbook_parses_by_fqcn_from_the_installed_copy(installed, tmp_path):
    env = {"ANSIBLE_COLLECTIONS_PATH": str(installed)}
    ops = installed / "ansible_collections" / "ktrdr" / "ops"
    playbooks = sorted(p.stem for p in (ops / "playbooks").glob("*.yml"))
    assert "site" in playbooks
    for inventory in ("local", "homelab-example"):
        for pb in playbooks:
            run(["ansible-playbook", "--syntax-check", "-i", str(ops / "inventories" / inventory), "ktrdr.ops." + pb],
                cwd=tmp_path, env=env)


def test_changelog_fragments_are_valid():
    run(["antsibull-changelog", "lint"], cwd=REPO)
    changelog = yaml.safe_load((REPO / "changelogs" / "changelog.yaml").read_text())
    assert changelog["releases"], "changelogs/changelog.yaml records no release"
    assert GALAXY["version"] in changelog["releases"] or _unreleased_fragments(), (
        "galaxy.yml version %s is neither released in changelogs/changelog.yaml nor has fragments waiting" % GALAXY["version"])


def _unreleased_fragments():
    return [p for p in (REPO / "changelogs" / "fragments").glob("*.y*ml")]


def test_execution_environment_build_context(tarball, tmp_path):
    ee = tmp_path / "ee"
    shutil.copytree(REPO / "ee", ee)
    shutil.copy2(tarball, ee / TARBALL_NAME)
    definition = yaml.safe_load((ee / "execution-environment.yml").read_text())
    requirements = yaml.safe_load((ee / "requirements.yml").read_text())
    assert {"src": TARBALL_NAME, "dest": "collections"} in definition["additional_build_files"]
    assert "collections/" + TARBALL_NAME in [c["name"] for c in requirements["collections"]], "ee/requirements.yml names another tarball"
    run(["ansible-builder", "create", "-f", str(ee / "execution-environment.yml"), "-c", str(tmp_path / "context"),
         "--output-filename", "Containerfile"], cwd=tmp_path)
    context = tmp_path / "context"
    containerfile = (context / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile
    assert (context / "_build" / "collections" / TARBALL_NAME).is_file()
    # What ansible-builder's introspection reads from the installed collection during the build.
    meta = yaml.safe_load(tarfile.open(tarball).extractfile("meta/execution-environment.yml").read())
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}


def test_check_mode_writes_nothing_from_the_installed_copy(installed, tmp_path):
    """`ktrdr.ops.build --check` with a build directory that does not exist yet: it says what it would do
    and creates nothing, neither there nor inside the installed collection."""
    env = {"ANSIBLE_COLLECTIONS_PATH": str(installed)}
    ops = installed / "ansible_collections" / "ktrdr" / "ops"
    before = sorted(str(p.relative_to(ops)) for p in ops.rglob("*"))
    build_dir = tmp_path / "new-build"
    out = run(["ansible-playbook", "-i", str(ops / "inventories" / "local"), "ktrdr.ops.build", "--check",
               "-e", "ktrdr_build_dir=%s" % build_dir, "-e", "images_cache_dir=%s" % (tmp_path / "new-cache")],
              cwd=tmp_path, env=env)
    assert "PLAY RECAP" in out
    assert not build_dir.exists() and not (tmp_path / "new-cache").exists()
    assert sorted(str(p.relative_to(ops)) for p in ops.rglob("*")) == before


def test_installed_copy_keeps_its_state_outside_itself(installed, tmp_path):
    """Default paths from the installed copy (no KTRDR_BUILD_DIR, no ktrdr_build_dir): the build directory and the
    artifacts are in the user's cache, never in the collection; `ktrdr.ops.build --check` then creates neither."""
    xdg = tmp_path / "xdg"
    env = {"ANSIBLE_COLLECTIONS_PATH": str(installed), "XDG_CACHE_HOME": str(xdg), "KTRDR_BUILD_DIR": "",
           "KTRDR_ARTIFACTS_DIR": ""}
    ops = installed / "ansible_collections" / "ktrdr" / "ops"
    where = tmp_path / "where.yml"
    where.write_text(
        "- hosts: localhost\n  gather_facts: false\n  roles: [ktrdr.ops.common]\n  tasks:\n"
        "    - ansible.builtin.assert:\n        that:\n"
        "          - ktrdr_build_dir == '%s/ktrdr.ops/build'\n"
        "          - ktrdr_artifacts_dir == '%s/ktrdr.ops/artifacts/local'\n"
        "          - ktrdr_source_dir == '%s/deploy/reference'\n" % (xdg, xdg, ops))
    run(["ansible-playbook", "-i", "localhost,", "-c", "local", str(where)], cwd=tmp_path, env=env)
    before = sorted(str(p.relative_to(ops)) for p in ops.rglob("*"))
    out = run(["ansible-playbook", "-i", str(ops / "inventories" / "local"), "ktrdr.ops.build", "--check"],
              cwd=tmp_path, env=env)
    assert "PLAY RECAP" in out
    # (uv keeps its own cache there when the plan exports the lock: uv's, not ours)
    assert not (xdg / "ktrdr.ops").exists(), "--check created %s" % sorted(str(p) for p in xdg.rglob("*"))
    assert sorted(str(p.relative_to(ops)) for p in ops.rglob("*")) == before
