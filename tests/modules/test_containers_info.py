"""ktrdr.ops.containers_info on this machine's Docker engine: real containers, one running and one stopped."""

import uuid

import pytest

from ansible_run import module_task, run_tasks
from conftest import TEST_LABEL, docker


@pytest.fixture
def two_containers(tiny_image):
    tag = uuid.uuid4().hex[:8]
    label = "io.ktrdr.test-run=%s" % tag
    names = ["ktrdr-ops-test-%s-%s" % (tag, n) for n in ("a", "b")]
    docker("run", "-d", "--name", names[0], "--label", TEST_LABEL, "--label", label, "-e", "SECRET=do-not-return", tiny_image)
    docker("create", "--name", names[1], "--label", TEST_LABEL, "--label", label, tiny_image)
    yield label, names
    docker("rm", "-f", *names, check=False)


def test_lists_and_inspects_every_container_in_one_call(two_containers):
    label, names = two_containers
    run = run_tasks([
        module_task("containers_info", {"labels": [label]}),
        module_task("containers_info", {"labels": [label]}, check=True),
        module_task("containers_info", {"labels": [label, "io.ktrdr.test-run-missing"]}),
    ])
    found, checked, none = run.results
    assert not found.failed and not found.changed
    by_name = {c["name"]: c for c in found["containers"]}
    assert list(by_name) == names  # sorted by name
    running, created = by_name[names[0]], by_name[names[1]]
    assert running["state"] == "running" and running["started_at"] > "2000"
    assert created["state"] == "created"
    assert running["health"] == "none" and running["labels"]["io.ktrdr.test-run"] == label.split("=")[1]
    assert len(running["id"]) == 64 and running["image_id"].startswith("sha256:")
    assert "do-not-return" not in str(found)  # never the environment
    assert checked["containers"] == found["containers"] and not checked.changed
    assert none["containers"] == []


def test_says_what_to_fix_when_the_engine_does_not_answer():
    run = run_tasks([module_task("containers_info", {"labels": ["io.ktrdr.project=x"], "docker_host": "unix:///nonexistent.sock"})])
    assert run[0].failed and "Cannot read the containers" in run[0].msg and "/nonexistent.sock" in run[0].msg


def test_quotes_the_last_log_lines_with_secrets_masked(tiny_image):
    tag = uuid.uuid4().hex[:8]
    label = "io.ktrdr.test-run=%s" % tag
    name = "ktrdr-ops-test-%s-crash" % tag
    # sleep refuses the argument on stderr and exits: a container that cannot start its service.
    docker("run", "--name", name, "--label", TEST_LABEL, "--label", label, tiny_image, "/bin/sleep", "s3cret-value", check=False)
    try:
        run = run_tasks([
            module_task("containers_info", {"labels": [label], "log_lines": 5, "redact": ["s3cret-value"]}),
            module_task("containers_info", {"labels": [label]}),
        ])
        quoted, plain = run.results
        c = quoted["containers"][0]
        assert c["state"] == "exited" and c["exit_code"] != 0
        assert "invalid time interval" in c["log_tail"] and "********" in c["log_tail"]
        assert "s3cret-value" not in str(quoted)
        assert plain["containers"][0]["log_tail"] == ""
    finally:
        docker("rm", "-f", name, check=False)
