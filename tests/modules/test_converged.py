"""ktrdr.ops.converged on this machine's Docker engine: a real container of a throwaway "environment",
its strategy and data directories; compared, recorded, compared again, then changed under it."""

import json
import os
import uuid

import pytest

from ansible_run import module_task, run_tasks
from conftest import TEST_LABEL, docker


@pytest.fixture
def environment(tiny_image, tmp_path):
    project = "ktrdr-ops-test-%s" % uuid.uuid4().hex[:8]
    name = project + "-backend"
    docker("run", "-d", "--name", name, "--label", TEST_LABEL, "--label", "io.ktrdr.project=" + project,
           "--label", "io.ktrdr.component=backend", tiny_image)
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "a.yaml").write_text("name: a\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("print(1)\n")
    args = {"project": project, "root_dir": str(tmp_path / "root"), "record_dir": str(tmp_path / "records"),
            "trees": [str(tmp_path / "src")], "images": [tiny_image, "ktrdr-ops-test-absent:1"],
            "strategies_dir": str(tmp_path / "strategies"), "data_dir": str(tmp_path / "data"),
            "dirs": [str(tmp_path / "data")]}
    yield args, name, tmp_path
    docker("rm", "-f", name, check=False)


def test_a_recorded_host_is_converged_until_something_changes(environment):
    args, name, tmp = environment
    first = run_tasks([
        module_task("converged", args),
        module_task("converged", dict(args, record=True), check=True),
        module_task("converged", dict(args, record=True)),
        module_task("converged", args),
        module_task("converged", dict(args, allow_skip=False)),
    ])
    compared, check_recorded, recorded, again, not_allowed = first.results
    assert not compared.failed and not compared.changed and compared["converged"] is False
    assert compared["differences"] == ["no run of site.yml has converged and proved this host from this controller yet"]
    assert not check_recorded.changed and not recorded.changed and not recorded.failed, recorded.msg
    assert again["converged"] is True and again["skip"] is True and again["differences"] == [], again["differences"]
    assert not_allowed["converged"] is True and not_allowed["skip"] is False
    assert "inputs" not in again and "variables" not in json.dumps(again["observed"])  # the digests stay on the controller
    seen = again["observed"]
    assert [c["name"] for c in seen["containers"]] == [name] and seen["containers"][0]["state"] == "running"
    assert seen["images"]["ktrdr-ops-test-absent:1"] == "" and seen["images"][args["images"][0]].startswith("sha256:")
    record = os.path.join(args["record_dir"], "localhost.json")
    assert os.stat(record).st_mode & 0o777 == 0o600
    assert json.load(open(record))["observed"] == seen

    docker("restart", "-t", "0", name)
    (tmp / "strategies" / "a.yaml").write_text("name: a\n# edited\n")
    (tmp / "data" / "EURUSD_1h.csv").write_text("t,o\n")
    (tmp / "src" / "new.py").write_text("x = 1\n")
    os.chmod(tmp / "data", 0o700)
    drifted = run_tasks([module_task("converged", args)]).results[0]
    assert drifted["converged"] is False
    assert not os.path.exists(record), "a host that differs keeps its record (a failed run would then match it)"
    assert "strategy files: a.yaml changed" in drifted["differences"]
    assert "market data files: EURUSD_1h.csv added" in drifted["differences"]
    assert "source trees: %s changed" % args["trees"][0] in drifted["differences"]
    assert any(d.startswith("container %s: started_at was" % name) for d in drifted["differences"]), drifted["differences"]
    assert "shared directories: %s changed" % (tmp / "data") in drifted["differences"]


def test_check_mode_writes_nothing_and_a_record_needs_a_comparison_first(environment):
    args, _, _ = environment
    run = run_tasks([
        module_task("converged", args, check=True),
        module_task("converged", dict(args, record=True), check=True),
        module_task("converged", dict(args, record=True)),
    ])
    compared, checked, bare = run.results
    assert not compared.failed and not checked.failed and not checked.changed, checked.msg
    assert not os.path.exists(args["record_dir"])
    assert bare.failed and "no comparison ran at the start of this run" in bare.msg
