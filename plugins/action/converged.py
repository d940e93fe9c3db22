# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""Controller side of ktrdr.ops.converged: the digests of what this run is fed (the host's settings,
the source trees, the collection), and the records, one file per host, that the last proven run left."""

from __future__ import annotations

import json
import os
import secrets
import time

from ansible.module_utils.parsing.convert_bool import boolean
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
# Where the host is: a worker moved to ktrdr_gpu_workers, or a new address, is a difference.
PLACE = {"group_names", "ansible_host", "ansible_port"}


def settings(task_vars, template):
    """name -> value of every collection setting the host sees, templated (a value that does not
    template is compared as written), with the host's place in the inventory (its groups, its
    address, the ktrdr_* groups' members). Facts are not settings (ktrdr_host: the prechecks' disk...)."""
    out = {}
    facts = set(task_vars.get("ansible_facts") or {})
    for name in sorted(task_vars):
        if (not name.startswith(PREFIXES) or name in NOT_INPUTS or name in facts) and name not in PLACE:
            continue
        try:
            out[name] = template(task_vars[name])
        except Exception as exc:  # e.g. a setting that refers to a fact set later in the run
            out[name] = "(as written: %r, %s)" % (task_vars[name], type(exc).__name__)
    out["groups"] = {g: sorted(h) for g, h in (task_vars.get("groups") or {}).items() if g.startswith("ktrdr_")}
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


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class ActionModule(ActionBase):
    """Compare: the inputs are kept on the controller (<host>.pending.json, 0600) for the record at the
    end of the run, never returned; a host that differs loses its record, so that a run which does not
    end proven leaves none. Record: the pending inputs with what the host has now, as <host>.json."""

    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        base = os.path.join(args["record_dir"], task_vars.get("inventory_hostname", "localhost"))
        path, pending_path = base + ".json", base + ".pending.json"
        recording = boolean(args.get("record", False), strict=False)
        recorded = read_record(path)
        if recording:
            current = read_record(pending_path).get("inputs")
            if not current and self._task.check_mode:  # the comparison in check mode kept nothing; neither is anything written
                result.update(changed=False, converged=False, skip=False, differences=[], observed={}, recorded_at="")
                return result
            if not current:
                result.update(failed=True, msg="ktrdr.ops.converged: nothing to record for %s - no comparison ran at the start "
                                               "of this run (%s is missing)" % (task_vars.get("inventory_hostname"), pending_path))
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
        differences = [] if recording else _converged.differences(recorded, current, observed)
        if not self._task.check_mode:
            if recording:
                write_record(path, {"inputs": current, "observed": observed,
                                    "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
                remove(pending_path)
            else:
                write_record(pending_path, {"inputs": current})
                if differences:
                    remove(path)
        converged = not recording and not differences
        result.update(changed=False, converged=converged, differences=differences, observed=observed,
                      skip=converged and boolean(args.get("allow_skip", True), strict=False),
                      recorded_at=recorded.get("recorded_at", ""))
        return result
