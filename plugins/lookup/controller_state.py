# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""Where the controller keeps what ktrdr.ops builds and records, and the last build's images."""

from __future__ import annotations

DOCUMENTATION = r"""
name: controller_state
version_added: 0.2.0
short_description: Where ktrdr.ops keeps its state on the controller, and the images of the last build
description:
  - 'V(build_dir): C($KTRDR_BUILD_DIR); else C(<checkout>/build) when the collection runs from its source checkout;
    else C($XDG_CACHE_HOME/ktrdr.ops/build) (C(~/.cache/ktrdr.ops/build)). Never inside an installed collection, which
    C(ansible-galaxy collection install --force) replaces and which may be read-only or shared.'
  - 'V(artifacts_dir): C($KTRDR_ARTIFACTS_DIR/<env_name>); else C(<checkout>/artifacts/<env_name>) from the checkout;
    else C($XDG_CACHE_HOME/ktrdr.ops/artifacts/<env_name>).'
  - 'V(source_dir): C($KTRDR_SOURCE_DIR); else the reference service shipped in the collection
    (C(deploy/reference), only read).'
  - 'V(images): the images recorded in C(<build_dir>/images.json) (its C(images) key), V({}) when there is none yet;
    V(record): the whole record (images, probes, ...).'
  - Decides nothing the inventory sets - the roles use it only as the default of C(ktrdr_build_dir),
    C(ktrdr_artifacts_dir), C(ktrdr_source_dir) and C(ktrdr_images) (role C(ktrdr.ops.common)).
options:
  _terms:
    description: One of V(build_dir), V(artifacts_dir), V(source_dir), V(images), V(record).
    required: true
  env_name:
    description: The environment, for V(artifacts_dir).
    type: str
    default: local
  build_dir:
    description: The build directory whose C(images.json) V(images) and V(record) read.
    type: path
"""

EXAMPLES = r"""
ktrdr_build_dir: "{{ lookup('ktrdr.ops.controller_state', 'build_dir') }}"
ktrdr_images: "{{ lookup('ktrdr.ops.controller_state', 'images', build_dir=ktrdr_build_dir) }}"
"""

RETURN = r"""
_raw:
  description: An absolute path, or for V(images) a dict of image refs (keys postgres, backend, worker_cpu, worker_gpu).
  type: list
  elements: raw
"""

import json
import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

# plugins/lookup/ -> the collection's root (a checkout or an installed copy).
COLLECTION_ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))


def is_checkout(root=COLLECTION_ROOT):
    """An installed collection carries MANIFEST.json; its source tree does not."""
    return not os.path.exists(os.path.join(root, "MANIFEST.json"))


def user_cache(environ=None):
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ktrdr.ops")


def state_path(kind, env_name="local", environ=None, root=COLLECTION_ROOT):
    environ = os.environ if environ is None else environ
    if kind == "source_dir":
        return os.path.abspath(environ.get("KTRDR_SOURCE_DIR") or os.path.join(root, "deploy", "reference"))
    if kind == "build_dir":
        if environ.get("KTRDR_BUILD_DIR"):
            return os.path.abspath(environ["KTRDR_BUILD_DIR"])
        return os.path.join(root if is_checkout(root) else user_cache(environ), "build")
    if kind == "artifacts_dir":
        if environ.get("KTRDR_ARTIFACTS_DIR"):
            return os.path.join(os.path.abspath(environ["KTRDR_ARTIFACTS_DIR"]), env_name)
        return os.path.join(root if is_checkout(root) else user_cache(environ), "artifacts", env_name)
    raise AnsibleLookupError(f"ktrdr.ops.controller_state: unknown term {kind!r} (build_dir, artifacts_dir, source_dir, images, record)")


def build_record(build_dir):
    """images.json ({} before the first build); a broken record is named, not ignored."""
    path = os.path.join(build_dir, "images.json")
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise AnsibleLookupError(f"{path} is not JSON ({exc}): delete it and run playbooks/build.yml again") from exc
    images = record.get("images", record) if isinstance(record, dict) else None
    if not isinstance(images, dict):
        raise AnsibleLookupError(f"{path} holds no images map: delete it and run playbooks/build.yml again")
    return record


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        out = []
        for term in terms:
            if term in ("images", "record"):
                record = build_record(self.get_option("build_dir") or state_path("build_dir"))
                out.append(record.get("images", record) if term == "images" else record)
            else:
                out.append(state_path(term, self.get_option("env_name")))
        return out
