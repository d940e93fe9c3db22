# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""Controller side of ktrdr.ops.deploy_lock: names the run (the ansible-playbook process, its
user and controller), waits while another live run holds the lock, and tells a stale lock (its
run, on this controller, has ended) from a live one."""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.ktrdr.ops.plugins.module_utils import _ledger

display = Display()
POLL = 2.0
SAY_EVERY = 60.0


def lock_status(lock):
    """free / stale / held / unknown for a lock record (None: free)."""
    if not lock:
        return "free"
    if lock.get("kind") == "maintenance":
        return "held"
    alive = _ledger.run_alive({"id": lock.get("run", ""), "pid": lock.get("pid"), "controller": lock.get("controller"),
                               "namespace": lock.get("namespace", "")})
    return {True: "held", False: "stale", None: "unknown"}[alive]


def break_command(task_vars):
    sources = task_vars.get("ansible_inventory_sources") or []
    return "ansible-playbook%s playbooks/lock.yml -e ktrdr_lock=break" % ("".join(" -i %s" % s for s in sources))


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        args["run"] = _ledger.controller_run()
        wait = int(args.get("wait", 900))
        where = "%s (%s)" % (args.get("root_dir"), task_vars.get("inventory_hostname"))
        t0 = time.monotonic()
        said = None
        while True:
            res = self._execute_module(module_name="ktrdr.ops.deploy_lock", module_args=args, task_vars=task_vars)
            lock = res.get("lock")
            if res.get("failed") or args.get("state", "acquired") != "acquired" or res.get("acquired"):
                if not res.get("failed"):
                    res["status"] = "mine" if res.get("acquired") else lock_status(lock)
                    res["waited"] = round(time.monotonic() - t0, 1)
                result.update(res)
                return result
            status = lock_status(lock)
            text = _ledger.describe_lock(lock)
            if status == "stale":
                result.update(res, failed=True, status=status, msg=(
                    "The deploy lock at %s is stale: %s, and that run has ended without releasing it (killed or "
                    "interrupted). Nothing was changed. Look at what it left (playbooks/status.yml), then break it: %s"
                    % (where, text, break_command(task_vars))))
                return result
            waited = time.monotonic() - t0
            if self._play_context.check_mode or waited >= wait:
                result.update(res, status=status, waited=round(waited, 1))
                if self._play_context.check_mode:
                    result["warnings"] = ["the deploy lock is %s: a real run would wait for it" % text]
                    return result
                then = ("its holder releases it with playbooks/lock.yml -e ktrdr_lock=release; to take it from them: %s"
                        if lock.get("kind") == "maintenance" else "if that run is gone, break it: %s") % break_command(task_vars)
                result.update(failed=True, msg=(
                    "The deploy lock at %s is %s%s. Nothing was changed. Run again when it is released (ktrdr_lock_wait: "
                    "seconds to wait); %s" % (where, text, " (waited %d s)" % waited if wait else "", then)))
                return result
            if said is None or time.monotonic() - said >= SAY_EVERY:
                display.display("%s: waiting up to %d s for the deploy lock, %s%s" % (
                    task_vars.get("inventory_hostname"), wait, text,
                    "" if status == "held" else " (from another controller: cannot tell whether that run is alive)"))
                said = time.monotonic()
            time.sleep(POLL)
