"""The worker layout (plugins/filter/workers.py): one rule for the names, ids and ports of a host's
workers, which the workers role runs and prechecks and gpu_host check. Bad settings are refused
with the name of the setting to change."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ktrdr.ops.plugins.filter.workers import worker_instances, worker_slots


def test_default_layout_is_one_of_each_on_5003_and_5004():
    assert worker_slots(1, 1) == [{"type": "backtesting", "index": 1, "port": 5003},
                                  {"type": "training", "index": 1, "port": 5004}]


def test_ports_step_by_the_stride_and_inventory_strings_count_as_numbers():
    slots = worker_slots("3", "2", "29003", "29004", "2")
    assert [s["port"] for s in slots] == [29003, 29005, 29007, 29004, 29006]
    assert worker_slots(0, 2, 5003, 5004, 2) == [{"type": "training", "index": 1, "port": 5004},
                                                 {"type": "training", "index": 2, "port": 5006}]


@pytest.mark.parametrize("args, name", [
    (("two", 1), "workers_backtest_count"),
    ((1, "-1"), "workers_training_count"),
    ((1, 1, "50x3"), "workers_backtest_port_base"),
    ((1, 1, 5003, 5004, "-2"), "workers_port_stride"),
    (("\u00b2", 1), "workers_backtest_count"),  # a superscript two: isdigit() says yes, int() no
    ((True, 1), "workers_backtest_count"),
])
def test_a_setting_that_is_no_whole_number_is_named(args, name):
    with pytest.raises(AnsibleFilterError, match=name + " must be a whole number"):
        worker_slots(*args)


def test_whole_valued_numbers_count_and_stride_0_is_fine_for_one_worker_of_each_type():
    assert [s["port"] for s in worker_slots("2.0", 1.0, 5003, 5004, 2)] == [5003, 5005, 5004]
    assert [s["port"] for s in worker_slots(1, 1, 5003, 5004, 0)] == [5003, 5004]
    with pytest.raises(AnsibleFilterError, match="overlap.*raise workers_port_stride"):
        worker_slots(2, 1, 5003, 5004, 0)


def test_the_host_is_named():
    with pytest.raises(AnsibleFilterError, match="got 'two' on gpu1: set it in the inventory"):
        worker_slots("two", 1, host="gpu1")
    with pytest.raises(AnsibleFilterError, match="worker ports of gpu1 overlap"):
        worker_slots(2, 1, 5003, 5004, 1, host="gpu1")


def test_colliding_ports_name_the_fix():
    # stride 1: backtest 5003, 5004 collide with training 5004
    with pytest.raises(AnsibleFilterError, match=r"overlap.*5003, 5004, 5004.*raise workers_port_stride"):
        worker_slots(2, 1, 5003, 5004, 1)
    with pytest.raises(AnsibleFilterError, match="exceed 65535"):
        worker_slots(2, 0, 65535, 5004, 2)


def test_instances_on_the_backends_engine_are_called_by_container_name():
    slots = worker_slots(2, 1)
    got = worker_instances(slots, "ktrdr-local", "localhost", cpu_image="cpu:1", gpu_image="gpu:1")
    assert [(i["name"], i["worker_id"], i["port"], i["public_url"]) for i in got] == [
        ("ktrdr-local-backtest-1", "localhost-backtest-1", 5003, "http://ktrdr-local-backtest-1:5003"),
        ("ktrdr-local-backtest-2", "localhost-backtest-2", 5005, "http://ktrdr-local-backtest-2:5005"),
        ("ktrdr-local-training-1", "localhost-training-1", 5004, "http://ktrdr-local-training-1:5004"),
    ]
    assert {i["image"] for i in got} == {"cpu:1"} and not any(i["gpu"] for i in got)
    assert [i["models_read_only"] for i in got] == [True, True, False]
    assert got[0]["app"] == "ktrdr.backtesting.backtest_worker:app"
    assert got[2]["app"] == "ktrdr.training.training_worker:app"


def test_on_a_gpu_host_training_runs_the_gpu_image_and_is_called_at_the_hosts_address():
    got = worker_instances(worker_slots(1, 1), "ktrdr-homelab", "gpu1", gpu=True, public_host="10.0.0.7",
                           cpu_image="cpu:1", gpu_image="gpu:1")
    backtest, training = got
    assert (backtest["image"], backtest["gpu"], backtest["public_url"]) == ("cpu:1", False, "http://10.0.0.7:5003")
    assert (training["name"], training["worker_id"], training["image"], training["gpu"]) == (
        "ktrdr-homelab-training-gpu-1", "gpu1-training-gpu-1", "gpu:1", True)


def _container(worker_id, image):
    return {"Image": image, "Labels": {"io.ktrdr.worker-id": worker_id, "io.ktrdr.kind": "worker"}}


IMAGES = [{"Id": "sha256:feed", "RepoTags": ["ktrdr-worker-cpu:new"],
           "Config": {"Labels": {"io.ktrdr.content-hash": "0123456789abcdef"}}}]


def test_registration_is_complete_when_every_worker_is_usable_on_its_image():
    from ansible_collections.ktrdr.ops.plugins.filter.workers import worker_registration
    containers = [_container("w-backtest-1", "ktrdr-worker-cpu:new"), _container("w-training-1", "ktrdr-worker-cpu:new")]
    workers = [{"worker_id": "w-backtest-1", "status": "available", "capabilities": {"image_revision": "0123456789ab"}},
               # ktrdr reports no image revision: registration alone counts
               {"worker_id": "w-training-1", "status": "busy", "capabilities": {}}]
    got = worker_registration(containers, IMAGES, workers)
    assert got == {"expected": ["w-backtest-1", "w-training-1"], "missing": []}


def test_a_worker_missing_or_on_the_old_image_is_named():
    from ansible_collections.ktrdr.ops.plugins.filter.workers import worker_registration
    containers = [_container("w-backtest-1", "ktrdr-worker-cpu:new"), _container("w-training-1", "ktrdr-worker-cpu:new"),
                  {"Image": "ktrdr-worker-cpu:new", "Labels": {}}]  # no worker id: not a worker of ours
    workers = [{"worker_id": "w-backtest-1", "status": "available", "capabilities": {"image_revision": "aaaaaaaaaaaa"}},
               {"worker_id": "w-training-1", "status": "temporarily_unavailable"}]
    got = worker_registration(containers, IMAGES, workers)
    assert got["missing"] == [
        "w-backtest-1 (expected image revision 0123456789ab, backend lists aaaaaaaaaaaa)",
        "w-training-1 (expected image revision 0123456789ab, backend lists no usable worker)",
    ]
