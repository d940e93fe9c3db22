"""ktrdr.ops.strategy for real: files on disk, then (with the reference stack) the backend's confirmation.

Four steps as in community.postgresql's tests: check mode (nothing written) -> real run -> idempotent
rerun (changed=false) -> change/remove, asserting on changed, diff and msg each time.
"""

import hashlib
import os
import shutil
import stat

import pytest

from ansible_run import ROOT, module_task, run_tasks

REFERENCE = os.path.join(ROOT, "deploy", "reference", "strategies")
E2E = os.path.join(REFERENCE, "v3_e2e_test.yaml")


def read(path):
    with open(path, "rb") as fh:
        return fh.read()


@pytest.fixture
def src_dir(tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    for name in ("v3_e2e_test.yaml", "v3_minimal.yaml"):
        shutil.copy(os.path.join(REFERENCE, name), d / name)
    (d / "notes.yml").write_text("name: ignored\n")
    return d


def test_present_check_real_idempotent_update_absent(tmp_path, src_dir):
    dest = tmp_path / "strategies"  # missing: the module creates it
    e2e_sum = hashlib.sha256(read(src_dir / "v3_e2e_test.yaml")).hexdigest()
    args = {"src": str(src_dir), "dest_dir": str(dest), "mode": "0640"}
    check_run = run_tasks([module_task("strategy", args, check=True)])[0]
    assert not check_run.failed and check_run.changed
    assert [s["action"] for s in check_run["strategies"]] == ["created", "created"]
    assert not dest.exists(), "check mode must not write anything"

    run = run_tasks([
        module_task("strategy", args),
        module_task("strategy", args),
        module_task("strategy", args, check=True),
    ])
    real, again, check_again = run.results
    assert check_run["diff"][0]["before"] == "" and "name: v3_e2e_test" in check_run["diff"][0]["after"]

    assert not real.failed and real.changed
    assert real.msg == "strategy v3_e2e_test created; strategy v3_minimal created"
    assert {s["name"]: s["checksum"] for s in real["strategies"]}["v3_e2e_test"] == e2e_sum
    assert read(dest / "v3_e2e_test.yaml") == read(src_dir / "v3_e2e_test.yaml")
    assert stat.S_IMODE(os.stat(dest / "v3_minimal.yaml").st_mode) == 0o640
    assert not (dest / "notes.yml").exists()
    assert any("notes.yml skipped" in w for w in real["warnings"])
    assert real["strategies"][0]["valid"] is None  # no api_url: not confirmed

    for res in (again, check_again):
        assert not res.failed and not res.changed, res
        assert [s["action"] for s in res["strategies"]] == ["unchanged", "unchanged"]
        assert "diff" not in res or res["diff"] == []
    assert again.msg == "strategy v3_e2e_test unchanged; strategy v3_minimal unchanged"

    # A one-line change: updated, with a diff of exactly that file; then mode drift alone is a change too.
    text = read(src_dir / "v3_minimal.yaml").replace(b"epochs: 10", b"epochs: 12")
    (src_dir / "v3_minimal.yaml").write_bytes(text)
    os.chmod(dest / "v3_e2e_test.yaml", 0o600)
    run = run_tasks([module_task("strategy", args), module_task("strategy", args)])
    update, again = run.results
    assert update.changed
    actions = {s["name"]: s["action"] for s in update["strategies"]}
    assert actions == {"v3_e2e_test": "updated", "v3_minimal": "updated"}
    assert len(update["diff"]) == 1 and "epochs: 12" in update["diff"][0]["after"] and "epochs: 10" in update["diff"][0]["before"]
    assert stat.S_IMODE(os.stat(dest / "v3_e2e_test.yaml").st_mode) == 0o640
    assert not again.changed

    rm = {"name": "v3_minimal", "dest_dir": str(dest), "state": "absent"}
    run = run_tasks([module_task("strategy", rm, check=True), module_task("strategy", rm), module_task("strategy", rm)])
    check_rm, real_rm, again_rm = run.results
    assert check_rm.changed and check_rm["strategies"][0]["action"] == "removed"
    assert real_rm.changed and real_rm.msg == "strategy v3_minimal removed"
    assert not (dest / "v3_minimal.yaml").exists() and (dest / "v3_e2e_test.yaml").exists()
    assert not again_rm.changed and again_rm.msg == "strategy v3_minimal absent"


def test_content_name_from_yaml_and_invalid_files_install_nothing(tmp_path, src_dir):
    dest = tmp_path / "strategies"
    dest.mkdir()
    good = read(src_dir / "v3_minimal.yaml").decode()
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    shutil.copy(src_dir / "v3_e2e_test.yaml", broken_dir / "v3_e2e_test.yaml")
    (broken_dir / "v3_bad.yaml").write_text(good.replace("name: v3_minimal", "name: v3_bad").replace("nn_inputs:", "nn_inputz:"))
    (broken_dir / "v3_worse.yaml").write_text("name: v3_worse\nindicators: [1, 2\n")
    run = run_tasks([
        module_task("strategy", {"content": good, "dest_dir": str(dest)}),
        module_task("strategy", {"content": good, "name": "other_name", "dest_dir": str(dest), "name_check": "error"}),
        module_task("strategy", {"src": str(broken_dir), "dest_dir": str(dest)}),
        module_task("strategy", {"content": good, "name": "../etc/x", "dest_dir": str(dest)}),
        module_task("strategy", {"src": str(tmp_path / "nope.yaml"), "dest_dir": str(dest)}),
        module_task("strategy", {"content": good, "dest_dir": str(dest), "confirm": True}),
    ])
    from_content, mismatch, broken, traversal, missing, confirm_no_url = run.results

    assert from_content.changed and from_content["strategies"][0]["name"] == "v3_minimal"
    assert (dest / "v3_minimal.yaml").read_text() == good

    assert mismatch.failed
    assert "content (other_name): key 'name' is 'v3_minimal' but the file is other_name.yaml" in mismatch.msg
    assert not (dest / "other_name.yaml").exists()

    assert broken.failed and broken.msg.startswith("Strategy validation failed (nothing installed): ")
    errors = broken["errors"]
    assert any(e.startswith(str(broken_dir / "v3_bad.yaml") + ": missing required key 'nn_inputs'") for e in errors)
    worse = [e for e in errors if e.startswith(str(broken_dir / "v3_worse.yaml"))]
    assert len(worse) == 1 and ": not valid YAML at line 3, column 1: " in worse[0]
    assert worse[0].endswith("(while parsing a flow sequence that starts at line 2, column 13); fix the syntax")
    assert not (dest / "v3_e2e_test.yaml").exists(), "one bad file must stop the whole set"

    assert traversal.failed and "'../etc/x' is not a valid strategy name" in traversal.msg
    assert missing.failed and "does not exist on the managed host" in missing.msg
    assert confirm_no_url.failed and confirm_no_url.msg == "confirm=true needs api_url (or KTRDR_API_URL) to reach the backend"


def test_files_install_a_set_in_one_run_and_one_bad_file_installs_none(tmp_path, src_dir):
    dest = tmp_path / "strategies"
    files = {"v3_e2e_test": read(src_dir / "v3_e2e_test.yaml").decode(), "v3_minimal": read(src_dir / "v3_minimal.yaml").decode()}
    bad = dict(files, v3_bad=files["v3_minimal"].replace("name: v3_minimal", "name: v3_bad").replace("nn_inputs:", "nn_inputz:"))
    refused = run_tasks([module_task("strategy", {"files": bad, "dest_dir": str(dest)})])[0]
    assert refused.failed and "v3_bad.yaml: missing required key 'nn_inputs'" in refused.msg
    assert not dest.exists(), "one bad file must stop the whole set"
    run = run_tasks([
        module_task("strategy", {"files": files, "dest_dir": str(dest)}, check=True),
        module_task("strategy", {"files": files, "dest_dir": str(dest)}),
        module_task("strategy", {"files": files, "dest_dir": str(dest)}),
        module_task("strategy", {"files": {"v3_minimal": ""}, "dest_dir": str(dest), "state": "absent"}),
    ])
    check_run, real, again, removed = run.results
    assert check_run.changed and [s["action"] for s in check_run["strategies"]] == ["created", "created"]
    assert real.changed and real.msg == "strategy v3_e2e_test created; strategy v3_minimal created"
    assert read(dest / "v3_e2e_test.yaml").decode() == files["v3_e2e_test"]
    assert not again.changed and [s["action"] for s in again["strategies"]] == ["unchanged", "unchanged"]
    assert removed.changed and not (dest / "v3_minimal.yaml").exists() and (dest / "v3_e2e_test.yaml").exists()


# -- with the reference backend: the backend confirms what was installed ---------------------------------


def renamed(name):
    """The e2e strategy under another name: a file the backend has not seen yet."""
    return open(E2E).read().replace("name: v3_e2e_test", "name: %s" % name)


@pytest.mark.needs_stack
def test_confirmed_by_the_backend(backend, strategies_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "v3_ops_confirm.yaml").write_text(renamed("v3_ops_confirm"))
    args = {"src": str(src), "dest_dir": str(strategies_dir), "api_url": backend.url}
    run = run_tasks([module_task("strategy", args, check=True), module_task("strategy", args), module_task("strategy", args)])
    check_run, real, again = run.results
    assert check_run.changed and check_run["strategies"][0]["valid"] is None  # check mode does not ask the backend
    assert not real.failed, real.msg
    assert real.changed and real.msg == "strategy v3_ops_confirm created"
    entry = real["strategies"][0]
    assert entry["valid"] is True and entry["listed"] is True and entry["issues"] == []
    assert (strategies_dir / "v3_ops_confirm.yaml").read_text() == renamed("v3_ops_confirm")
    assert not again.changed and again["strategies"][0]["valid"] is True


@pytest.mark.needs_stack
def test_a_rerun_of_an_unchanged_set_asks_the_backend_nothing(backend, strategies_dir):
    files = {"v3_ops_quiet": renamed("v3_ops_quiet")}
    args = {"files": files, "dest_dir": str(strategies_dir), "api_url": backend.url, "confirm_unchanged": False}
    real, again = run_tasks([module_task("strategy", args), module_task("strategy", args)]).results
    assert not real.failed, real.msg
    assert real.changed and real["strategies"][0]["valid"] is True
    # Not asked: an unchanged file keeps valid/listed null (with confirm_unchanged=true it is asked again).
    assert not again.changed and again["strategies"][0]["valid"] is None and again["strategies"][0]["listed"] is None


@pytest.mark.needs_stack
def test_backend_cannot_see_a_directory_it_does_not_read(backend, strategies_dir, tmp_path):
    elsewhere = tmp_path / "not-mounted"
    res = run_tasks([module_task("strategy", {"content": renamed("v3_ops_elsewhere"), "dest_dir": str(elsewhere),
                                              "api_url": backend.url})])[0]
    assert res.failed and res["changed"]  # the file was written; the backend just cannot see it
    assert (elsewhere / "v3_ops_elsewhere.yaml").is_file()
    assert res.msg.startswith("Installed, but the backend does not accept it: the backend cannot see v3_ops_elsewhere.yaml")
    assert res.msg.endswith("is %s the directory mounted at /app/strategies in the backend container?" % elsewhere)
    assert res["strategies"][0]["valid"] is False


@pytest.mark.needs_stack
def test_backend_rejects_what_local_validation_lets_through(backend, strategies_dir):
    # Locally well-formed, but an indicator type the backend does not know.
    text = open(E2E).read().replace("type: RSI", "type: NOT_AN_INDICATOR").replace("name: v3_e2e_test", "name: v3_unknown_ind")
    run = run_tasks([module_task("strategy", {"content": text, "dest_dir": str(strategies_dir), "api_url": backend.url})])
    res = run[0]
    assert res.failed
    assert res.msg.startswith("Installed, but the backend does not accept it: the backend rejects v3_unknown_ind: ")
    assert res["strategies"][0]["valid"] is False
