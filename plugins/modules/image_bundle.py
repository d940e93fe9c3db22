#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: image_bundle
short_description: Make one loadable image archive per target host, holding only the layers that host lacks
version_added: 0.2.0
description:
  - Runs on the build host (the role C(distribute) delegates it there). Exports each image named in O(deliveries) once
    (C(docker save) through the engine), keeps the export in C(<cache_dir>/exports) keyed by tag and image ID, and
    writes per delivery a C(docker load) archive with every image's config and manifest but only the layer files the
    target lacks.
  - A layer counts as present on the target when its chain ID is a chain of an image listed in the delivery's C(present),
    or of an image earlier in the same delivery (they load in order). The classic Docker image store skips a layer whose
    chain exists and never opens its file, so such an archive loads like a full one. Engines that use the containerd
    image store need C(full=true).
  - Deliveries with the same plan share one archive. Files are written under a temporary name and renamed, under a
    lock, so concurrent runs never see half-written ones; a temporary file an interrupted run left is removed.
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._attributes
  - ktrdr.ops._attributes.ACTIONGROUP_DOCKER
  - ktrdr.ops._docker
attributes:
  check_mode:
    support: full
    details:
      - Plans each delivery (layers sent and skipped) from the engine's image inspections; nothing is exported or written.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - An export or archive that exists for the same images and plan is reused, and the run reports no change.
options:
  deliveries:
    description: One entry per target host that lacks images.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The target (a host name); keys the answer.
        type: str
        required: true
      images:
        description: The image references to deliver, in load order.
        type: list
        elements: str
        required: true
      present:
        description: The layers (C(RootFS.Layers), diff IDs) of each image the target already has.
        type: list
        elements: list
        default: []
      full:
        description: Send every layer (for engines with the containerd image store).
        type: bool
        default: false
  cache_dir:
    description: Directory on the build host for the exports and archives; created if missing.
    type: path
    required: true
  layer_delta:
    description: Send only the layers a target lacks (V(false) - whole images).
    type: bool
    default: true
  prune_exports:
    description: Remove the exports of the repositories delivered that belong to neither these images nor O(keep_refs).
    type: bool
    default: true
  keep_refs:
    description: Image references whose exports survive pruning (the releases kept for rollback).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Make the archives on the build host
  ktrdr.ops.image_bundle:
    cache_dir: /var/cache/ktrdr/distribute
    deliveries:
      - name: gpu1
        images: [ktrdr-worker-gpu:3f2a9c1d0b7e]
        present: [["sha256:5d0da3dc9764..."]]
  delegate_to: build1
  register: bundles
"""

RETURN = r"""
deliveries:
  description: Per target - the archive's C(path) and C(bytes), C(images), C(layers_total), C(layers_sent), C(layers_skipped),
    C(bytes_skipped) and the C(plan) key (targets with the same plan share the archive). C(path) is null in check mode.
  returned: always
  type: dict
  sample: {gpu1: {path: /var/cache/ktrdr/distribute/bundles/bundle-1a2b3c4d5e6f7a8b.tar, bytes: 734003200,
                  images: [ktrdr-worker-gpu:3f2a9c1d0b7e], layers_total: 9, layers_sent: 3, layers_skipped: 6,
                  bytes_skipped: 129000000, plan: 1a2b3c4d5e6f7a8b}}
exported:
  description: The images exported in this run (the others were in the cache).
  returned: always
  type: list
  elements: str
pruned:
  description: Export files removed.
  returned: always
  type: list
  elements: str
seconds:
  description: How long the run took.
  returned: always
  type: float
"""

import os
import tarfile
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.ktrdr.ops.plugins.module_utils import _docker
from ansible_collections.ktrdr.ops.plugins.module_utils._bundle import COPY_BUFSIZE, Bundler
from ansible_collections.ktrdr.ops.plugins.module_utils._docker import DOCKER_SDK_ERROR, HAS_DOCKER_SDK


class Engine:
    """What the Bundler asks of the engine, through the Docker SDK (the collection's one client)."""

    def __init__(self, api):
        self.api = api

    def inspect(self, ref):
        try:
            return self.api.inspect_image(ref)
        except _docker.NotFound as exc:
            raise LookupError(str(exc))

    def save(self, ref, dest):
        with open(dest, "wb") as out:
            for chunk in self.api.get_image(ref, chunk_size=COPY_BUFSIZE):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())


def main():
    argument_spec = _docker.docker_argument_spec()
    argument_spec.update(
        deliveries=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            images=dict(type="list", elements="str", required=True),
            present=dict(type="list", elements="list", default=[]),
            full=dict(type="bool", default=False),
        )),
        cache_dir=dict(type="path", required=True),
        layer_delta=dict(type="bool", default=True),
        prune_exports=dict(type="bool", default=True),
        keep_refs=dict(type="list", elements="str", default=[]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_DOCKER_SDK:
        module.fail_json(msg=missing_required_lib("docker (the Docker SDK for Python)"), exception=DOCKER_SDK_ERROR)
    started = time.monotonic()
    params = dict(module.params, check=module.check_mode)
    try:
        # Exports of multi-GB images take minutes: the engine timeout covers one request, at least 10 minutes.
        api = _docker.client_from_params(module.params, timeout=max(module.params["docker_timeout"], 600)).api
        bundler = Bundler(params, Engine(api))
        results, changed, pruned = bundler.run()
    except _docker.DockerConfigError as exc:
        module.fail_json(msg=str(exc))
    except (OSError, ValueError, KeyError, LookupError, tarfile.TarError, IndexError, _docker.DockerException,
            _docker.requests.exceptions.RequestException) as exc:
        module.fail_json(msg="Making the image archives failed: %s" % exc, exception=traceback.format_exc())
    module.exit_json(changed=changed, deliveries=results, exported=bundler.exported, pruned=pruned,
                     seconds=round(time.monotonic() - started, 1))


if __name__ == "__main__":
    main()
