# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""Controller side of ktrdr.ops.status_info: the canary report lives on the controller, and only
the controller can tell whether a lock's run (started here) has ended."""

from __future__ import annotations

import json

from ansible.plugins.action import ActionBase

from ansible_collections.ktrdr.ops.plugins.action.deploy_lock import lock_status


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        canary = {}
        if args.get("canary_report"):
            try:
                with open(args["canary_report"]) as fh:
                    report = json.load(fh)
                canary = {k: report.get(k) for k in ("verdict", "checked_at", "proven_at")}
            except (OSError, ValueError):
                canary = {}
        args["canary"] = canary
        res = self._execute_module(module_name="ktrdr.ops.status_info", module_args=args, task_vars=task_vars)
        lock = res.get("lock")
        if lock and "status" not in lock:
            lock["status"] = lock_status(lock)
            host = (task_vars or {}).get("inventory_hostname", "")
            res["summary"] = [(line if not line.startswith("  lock: ") else line.replace("[held]", "[%s]" % lock["status"]))
                              for line in res.get("summary", [])]
            if lock["status"] == "stale":
                res.setdefault("warnings", []).append("%s: the deploy lock is stale (its run has ended): "
                                                      "playbooks/lock.yml -e ktrdr_lock=break" % host)
        if "host" in res:
            res["host"]["lock"] = lock
        result.update(res)
        return result
