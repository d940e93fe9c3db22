"""ktrdr.ops.converged's decision (plugins/module_utils/_converged.py, plugins/action/converged.py): what a
run is fed, what a host has, and every way either differs from the last proven run's record."""

from __future__ import annotations

import json
import os

from ansible_collections.ktrdr.ops.plugins.action.converged import COLLECTION_ROOT, read_record, settings, write_record
from ansible_collections.ktrdr.ops.plugins.module_utils import _converged

OBSERVED = {
    "containers": [{"name": "ktrdr-t-backend", "id": "abc", "image_id": "sha256:1", "state": "running", "health": "healthy",
                    "started_at": "2026-12-03T10:00:00Z"}],
    "images": {"ktrdr-backend:1": "sha256:1"}, "strategies": {"a.yaml": "11"}, "data": {"EURUSD_1h.csv": 10},
    "dirs": {"/var/lib/ktrdr/t/models": "755 10001:10001"}, "release": "r1", "schema_revision": "head1",
    "workers": ["backtest-1", "training-1"],
}


def _tree(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "app.py").write_text("print(1)\n")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref\n")
    (src / "pkg" / "__pycache__").mkdir()
    return src


def _record(tmp_path, variables=None, observed=None):
    src = _tree(tmp_path)
    current = _converged.inputs(variables or {"ktrdr_backend_port": 8000}, [str(src)], COLLECTION_ROOT, "salt")
    return src, current, json.loads(json.dumps({"inputs": current, "observed": observed or OBSERVED, "recorded_at": "t0"}))


def test_the_same_inputs_and_host_are_converged(tmp_path):
    src, current, record = _record(tmp_path)
    again = _converged.inputs({"ktrdr_backend_port": 8000}, [str(src)], COLLECTION_ROOT, "salt")
    assert again == current
    assert _converged.differences(record, again, OBSERVED) == []


def test_no_record_is_a_difference():
    assert _converged.differences({}, {}, OBSERVED) == [
        "no run of site.yml has converged and proved this host from this controller yet"]


def test_a_changed_setting_is_named_never_its_value(tmp_path):
    src, _, record = _record(tmp_path, {"ktrdr_backend_port": 8000, "ktrdr_db_password": "s3cret"})
    now = _converged.inputs({"ktrdr_backend_port": 8001, "ktrdr_db_password": "s3cret", "workers_gpu": True},
                            [str(src)], COLLECTION_ROOT, "salt")
    diff = _converged.differences(record, now, OBSERVED)
    assert diff == ["variables: workers_gpu added; ktrdr_backend_port changed"]
    assert "s3cret" not in json.dumps(now) and "8001" not in json.dumps(now)


def test_the_salt_keeps_a_secret_from_being_looked_up(tmp_path):
    one = _converged.inputs({"ktrdr_db_password": "pw"}, [], COLLECTION_ROOT, "a")["variables"]
    two = _converged.inputs({"ktrdr_db_password": "pw"}, [], COLLECTION_ROOT, "b")["variables"]
    assert one != two


def test_a_source_file_edited_or_added_is_a_difference_caches_and_vcs_are_not(tmp_path):
    src, _, record = _record(tmp_path)
    (src / ".git" / "HEAD").write_text("other\n")
    (src / "pkg" / "__pycache__" / "app.pyc").write_bytes(b"x")
    same = _converged.inputs({"ktrdr_backend_port": 8000}, [str(src)], COLLECTION_ROOT, "salt")
    assert _converged.differences(record, same, OBSERVED) == []
    (src / "pkg" / "new.py").write_text("x = 1\n")
    diff = _converged.differences(record, _converged.inputs({"ktrdr_backend_port": 8000}, [str(src)], COLLECTION_ROOT, "salt"),
                                  OBSERVED)
    assert diff == ["source trees: %s changed" % src]


def test_a_tree_the_controller_lacks_never_matches_and_an_empty_name_is_left_out(tmp_path):
    one = _converged.inputs({}, ["", str(tmp_path / "nowhere")], COLLECTION_ROOT, "s")["trees"]
    two = _converged.inputs({}, ["", str(tmp_path / "nowhere")], COLLECTION_ROOT, "s")["trees"]
    assert list(one) == [str(tmp_path / "nowhere")] and one != two


def test_every_container_field_and_host_fact_that_moved_is_named(tmp_path):
    _, current, record = _record(tmp_path)
    now = json.loads(json.dumps(OBSERVED))
    now["containers"][0]["started_at"] = "2026-12-03T11:00:00Z"
    now["containers"][0]["health"] = "unhealthy"
    now["containers"].append({"name": "ktrdr-t-worker", "id": "def"})
    now["strategies"]["a.yaml"] = "22"
    del now["data"]["EURUSD_1h.csv"]
    now["dirs"]["/var/lib/ktrdr/t/models"] = "missing"
    now["schema_revision"] = "refused: password authentication failed"
    now["workers"] = ["backtest-1"]
    now["images"]["ktrdr-backend:1"] = ""
    assert _converged.differences(record, current, now) == [
        "container ktrdr-t-backend: health was healthy, is unhealthy",
        "container ktrdr-t-backend: started_at was 2026-12-03T10:00:00Z, is 2026-12-03T11:00:00Z",
        "container ktrdr-t-worker is new",
        "images on the engine: ktrdr-backend:1 changed",
        "strategy files: a.yaml changed",
        "market data files: EURUSD_1h.csv removed",
        "shared directories: /var/lib/ktrdr/t/models changed",
        "the schema revision was head1, is refused: password authentication failed",
        "the registered workers was ['backtest-1', 'training-1'], is ['backtest-1']",
    ]


def test_the_collection_itself_is_an_input(tmp_path):
    _, current, record = _record(tmp_path)
    record["inputs"]["collection"] = "old"
    assert _converged.differences(record, current, OBSERVED) == [
        "the collection ktrdr.ops itself changed (its playbooks, plugins, roles, meta or deploy files)"]


def test_settings_are_the_collections_own_templated_and_a_failing_one_is_kept_as_written():
    def template(value):
        if value == "{{ later }}":
            raise ValueError("undefined")
        return value.replace("{{ env }}", "t") if isinstance(value, str) else value

    got = settings({"ktrdr_project": "ktrdr-{{ env }}", "workers_gpu": True, "ansible_host": "h", "_private": 1,
                    "hostvars": {}, "canary_x": "{{ later }}", "other_role_setting": 1, "ledger_step": "x",
                    "ktrdr_images": {"backend": "b:1"}, "ktrdr_skip_when_converged": False, "canary_mode": "always",
                    "ktrdr_host": {"disk_free_gb": 80}, "ansible_facts": {"ktrdr_host": {"disk_free_gb": 80}},
                    "group_names": ["ktrdr_gpu_workers"], "groups": {"all": ["h"], "ktrdr_gpu_workers": ["h"]}}, template)
    assert got["ktrdr_project"] == "ktrdr-t" and got["workers_gpu"] is True
    assert got["canary_x"].startswith("(as written: '{{ later }}'")
    # where the host is counts too: its groups, its address, the ktrdr_* groups' members
    assert got["group_names"] == ["ktrdr_gpu_workers"] and got["groups"] == {"ktrdr_gpu_workers": ["h"]}
    assert set(got) == {"ktrdr_project", "workers_gpu", "canary_x", "ansible_host", "group_names", "groups"}


def test_the_record_is_written_whole_and_readable_only_by_its_owner(tmp_path):
    path = str(tmp_path / "converged" / "h.json")
    assert read_record(path) == {}
    write_record(path, {"inputs": {}, "observed": OBSERVED})
    assert read_record(path)["observed"] == OBSERVED
    assert os.stat(path).st_mode & 0o777 == 0o600
    (tmp_path / "converged" / "bad.json").write_text("{not json")
    assert read_record(str(tmp_path / "converged" / "bad.json")) == {}
