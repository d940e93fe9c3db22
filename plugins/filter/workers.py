# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""The worker layout of a host, decided once: which worker containers it runs, their names, ids and
ports (worker_slots), and what each container is (worker_instances). roles/common derives
ktrdr_worker_slots from the five workers_* layout settings; the workers role runs the instances,
prechecks and gpu_host check their ports; after a roll-over, which workers the backend does not list
yet (worker_registration)."""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

# (type, settings prefix, uvicorn app, models mounted read-only)
_KINDS = (
    ("backtesting", "backtest", "ktrdr.backtesting.backtest_worker:app", True),
    ("training", "training", "ktrdr.training.training_worker:app", False),
)


def _whole(value, name, minimum=0, host=""):
    # ASCII digits only (int() refuses superscripts that isdigit() takes); 2.0 is two.
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[0-9]+(\.0*)?", text) or int(text.split(".", maxsplit=1)[0]) < minimum:
        raise AnsibleFilterError(
            "%s must be a whole number >= %d, got %r%s: set it in the inventory (host_vars/<host>.yml or group_vars)"
            % (name, minimum, value, " on %s" % host if host else ""))
    return int(text.split(".", maxsplit=1)[0])


def worker_slots(backtest_count, training_count, backtest_port_base=5003, training_port_base=5004, port_stride=2, host=""):
    """[{type, index, port}] for the backtesting workers, then the training workers: worker k (1-based) of a
    type listens on base + (k - 1) * stride. Refuses counts or ports that are not whole numbers, and
    layouts whose ports collide, naming the setting to change."""
    counts = {"backtest": _whole(backtest_count, "workers_backtest_count", 0, host),
              "training": _whole(training_count, "workers_training_count", 0, host)}
    bases = {"backtest": _whole(backtest_port_base, "workers_backtest_port_base", 1, host),
             "training": _whole(training_port_base, "workers_training_port_base", 1, host)}
    # 0 is fine while a host runs at most one worker of each type; the collision check says otherwise.
    stride = _whole(port_stride, "workers_port_stride", 0, host)
    slots = [{"type": kind, "index": k + 1, "port": bases[prefix] + k * stride}
             for kind, prefix, _app, _ro in _KINDS for k in range(counts[prefix])]
    ports = [s["port"] for s in slots]
    if len(set(ports)) != len(ports) or any(p > 65535 for p in ports):
        raise AnsibleFilterError(
            "worker ports%s overlap or exceed 65535 (%s): raise workers_port_stride (2 fits one backtesting and one "
            "training worker per step) or move workers_backtest_port_base / workers_training_port_base"
            % (" of %s" % host if host else "", ", ".join(map(str, ports))))
    return slots


def worker_instances(slots, project, host, gpu=False, public_host="", cpu_image="", gpu_image=""):
    """The worker containers of a host, one per slot: container name (<project>-<kind>-<k>, kind
    training-gpu for training on the GPU image), worker id (<host>-<kind>-<k>, stable across runs),
    app, image, and the URL the backend calls it at (its container name on the backend's engine,
    else public_host)."""
    apps = {kind: (app, read_only) for kind, _prefix, app, read_only in _KINDS}
    out = []
    for slot in slots:
        on_gpu = bool(gpu) and slot["type"] == "training"
        kind = slot["type"] == "training" and ("training-gpu" if on_gpu else "training") or "backtest"
        name = "%s-%s-%d" % (project, kind, slot["index"])
        app, read_only = apps[slot["type"]]
        out.append({
            "name": name, "type": slot["type"], "app": app, "port": slot["port"],
            "image": gpu_image if on_gpu else cpu_image, "gpu": on_gpu, "models_read_only": read_only,
            "worker_id": "%s-%s-%d" % (host, kind, slot["index"]),
            "public_url": "http://%s:%d" % (public_host or name, slot["port"]),
        })
    return out


def worker_registration(containers, images, workers):
    """After a roll-over: which of a host's worker containers the backend does not list as usable on the
    image the container runs. containers: docker_host_info's (verbose) list; images: docker_image_info's;
    workers: ktrdr.ops.workers_info's. The image a container runs is its image's io.ktrdr.content-hash
    label (else its ID), 12 digits; a worker that reports capabilities.image_revision (the reference
    service; ktrdr reports none, and then registration alone counts) must report that one."""
    hash_of = {}
    for image in images or []:
        labels = (image.get("Config") or {}).get("Labels") or {}
        for tag in image.get("RepoTags") or []:
            hash_of[tag] = labels.get("io.ktrdr.content-hash", image.get("Id", ""))
    expected = {}
    for c in containers or []:
        worker_id = (c.get("Labels") or {}).get("io.ktrdr.worker-id")
        if worker_id:
            expected[worker_id] = (hash_of.get(c.get("Image"), "") or "")[:12]
    listed = {w["worker_id"]: str((w.get("capabilities") or {}).get("image_revision") or "")[:12]
              for w in workers or [] if w.get("status") in ("available", "busy")}
    missing = []
    for worker_id, want in sorted(expected.items()):
        if worker_id not in listed:
            missing.append("%s (expected image revision %s, backend lists no usable worker)" % (worker_id, want or "any"))
        elif want and listed[worker_id] and listed[worker_id] != want:
            missing.append("%s (expected image revision %s, backend lists %s)" % (worker_id, want, listed[worker_id]))
    return {"expected": sorted(expected), "missing": missing}


class FilterModule:
    def filters(self):
        return {"worker_slots": worker_slots, "worker_instances": worker_instances, "worker_registration": worker_registration}
