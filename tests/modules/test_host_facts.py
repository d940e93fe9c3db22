"""ktrdr.ops.host_facts on this machine: real Docker engine, real sockets; it must never change anything."""

import socket

import pytest

from ansible_run import module_task, run_tasks


@pytest.fixture
def listener():
    """A TCP port something really listens on, and one that is free."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    free_port = free.getsockname()[1]
    free.close()
    yield s.getsockname()[1], free_port
    s.close()


def checks_by_name(result):
    return {c["name"]: c for c in result["checks"]}


def test_host_facts_checks_and_facts(listener):
    busy, free = listener
    run = run_tasks([
        module_task("host_facts", {"ports": [busy, free], "required_disk_gb": 1}, check=True),
        module_task("host_facts", {"ports": [busy, free], "required_disk_gb": 1}),
        module_task("host_facts", {"required_disk_gb": 1e6, "require_gpu": True, "required_cuda": "12.6", "require_buildx": True}),
        module_task("host_facts", {"require_gpu": True, "fail_on_failed_checks": True}),
        module_task("host_facts", {"ports": [0]}),
    ])
    check_run, real, impossible, strict, bad = run.results

    for res in (check_run, real):
        assert not res.failed and not res.changed
        facts = res["ansible_facts"]["ktrdr_host"]
        assert facts["docker"]["reachable"] is True
        assert facts["docker"]["server_version"]
        assert facts["docker"]["sdk_version"]
        c = checks_by_name(res)
        assert c["docker_engine"]["passed"] and c["docker_sdk"]["passed"]
        assert c["disk"]["passed"]
        assert not c["port_%d" % busy]["passed"]
        assert c["port_%d" % busy]["detail"] == "port %d is taken (a process listens on 127.0.0.1)" % busy
        assert c["port_%d" % free]["passed"]
        assert res["failed_checks"] == ["port_%d" % busy]
        assert facts["ports"][str(busy)]["free"] is False

    # Requirements this machine cannot meet: every check fails with what was found and what is needed.
    c = checks_by_name(impossible)
    assert not impossible.failed  # only fail_on_failed_checks fails the task
    assert not c["disk"]["passed"] and "but 1000000.0 GiB needed" in c["disk"]["detail"]
    if not impossible["ansible_facts"]["ktrdr_host"]["gpus"]:
        assert not c["gpu"]["passed"] and "require_gpu is set" in c["gpu"]["detail"]
        assert not c["nvidia_runtime"]["passed"] and "nvidia-ctk runtime configure" in c["nvidia_runtime"]["detail"]
        assert not c["cuda"]["passed"] and "CUDA 12.6 is required" in c["cuda"]["detail"]
    if not impossible["ansible_facts"]["ktrdr_host"]["buildx"]["present"]:
        assert not c["buildx"]["passed"] and "it is required" in c["buildx"]["detail"]
    assert set(impossible["failed_checks"]) >= {"disk"}

    if strict["ansible_facts"]["ktrdr_host"]["gpus"]:
        pytest.skip("this machine has a GPU; the no-GPU failure path was not exercised")
    assert strict.failed
    assert strict.msg.startswith("Host preflight failed: ")
    assert "require_gpu is set" in strict.msg

    assert bad.failed and bad.msg == "ports must be TCP port numbers 1-65535, got 0"


def test_port_published_by_an_allowed_container_passes(docker_container_with_port):
    name, port = docker_container_with_port
    run = run_tasks([
        module_task("host_facts", {"ports": [port]}),
        module_task("host_facts", {"ports": [port], "allow_port_owners": [name[:6] + "*"]}),
    ])
    denied, allowed = run.results
    c = checks_by_name(denied)["port_%d" % port]
    assert not c["passed"] and ("published by container %s" % name) in c["detail"]
    c = checks_by_name(allowed)["port_%d" % port]
    assert c["passed"] and "allow_port_owners allows" in c["detail"]
