# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""Controller side of ktrdr.ops.converged: the digests of what this run is fed (the host's settings,
the source trees, the collection), and the records, one file per host, that the last proven run left."""

from __future__ import annotations

import json
import os
import secrets
import time

from ansible.plugins.action import ActionBase

from ansible_collections.ktrdr.ops.plugins.module_utils import _converged

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The collection's settings: ktrdr_* and each role's own prefix (the roles name their variables so)...
PREFIXES = ("ktrdr_", "backend_", "canary_", "database_", "diagnostics_", "distribute_", "docker_host_", "gpu_host_",
            "images_", "strategies_", "workers_")
# ...less those that steer a run rather than say what it deploys (the ledger's records, the lock, this
# comparison, the canary's mode), and ktrdr_images, which is compared by what it names: the images
# on each engine (a rewritten build record that names the same images is no difference).
NOT_INPUTS = {"ktrdr_images", "ktrdr_skip_when_converged", "ktrdr_lock", "ktrdr_lock_wait", "ktrdr_lock_message", "canary_mode"}


def settings(task_vars, template):
    """name -> value of every collection setting the host sees, templated (a value that does not
    template is compared as written). Facts are not settings (ktrdr_host: the prechecks' disk, load...)."""
    out = {}
    facts = set(task_vars.get("ansible_facts") or {})
    for name in sorted(task_vars):
        if not name.startswith(PREFIXES) or name in NOT_INPUTS or name in facts:
            continue
        try:
            out[name] = template(task_vars[name])
        except Exception as exc:  # e.g. a setting that refers to a fact set later in the run
            out[name] = "(as written: %r, %s)" % (task_vars[name], type(exc).__name__)
    return out


def read_record(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def write_record(path, record):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
        json.dump(record, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        path = os.path.join(args["record_dir"], "%s.json" % task_vars.get("inventory_hostname", "localhost"))
        recorded = read_record(path)
        if args.get("record"):
            current = args.get("inputs") or {}
            if not current:
                result.update(failed=True, msg="ktrdr.ops.converged: record=true needs inputs (the comparison's at the start of the run)")
                return result
        else:
            salt = recorded.get("inputs", {}).get("salt") or secrets.token_hex(16)
            current = dict(_converged.inputs(settings(task_vars, self._templar.template), args.get("trees") or [],
                                             COLLECTION_ROOT, salt), salt=salt)
        res = self._execute_module(module_name="ktrdr.ops.converged", module_args=args, task_vars=task_vars)
        if res.get("failed"):
            result.update(res)
            return result
        observed = res["observed"]
        if args.get("record"):
            if not self._task.check_mode:
                write_record(path, {"inputs": current, "observed": observed,
                                    "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            differences = []
        else:
            differences = _converged.differences(recorded, current, observed)
        result.update(changed=False, converged=not args.get("record") and not differences, differences=differences,
                      inputs=current, observed=observed, recorded_at=recorded.get("recorded_at", ""))
        return result
