# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""Controller side of ktrdr.ops.audit: names the run (user@controller, playbook, start)."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.ktrdr.ops.plugins.module_utils import _ledger


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        run = dict(_ledger.controller_run(), host=(task_vars or {}).get("inventory_hostname", ""))
        result.update(self._execute_module(module_name="ktrdr.ops.audit", module_args=dict(self._task.args, run=run),
                                           task_vars=task_vars))
        return result
