# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
#
# This doc fragment is PRIVATE to the ktrdr.ops collection; do not use it from other collections.

from __future__ import annotations


class ModuleDocFragment:
    # The attribute descriptions; each module states its own support level and details.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled/queried by the module has not changed in a relevant way.
"""

    # Modules that only read (use together with DOCUMENTATION).
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  idempotent:
    support: full
    details:
      - This action does not modify state.
"""

    FACTS = r"""
options: {}
attributes:
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
    support: full
"""

    ACTIONGROUP_API = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/ktrdr.ops.api) in C(module_defaults) to set O(api_url), O(api_token) and the other connection options once.
    support: full
    membership:
      - ktrdr.ops.api
"""

    ACTIONGROUP_DOCKER = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/ktrdr.ops.docker) in C(module_defaults) to set O(docker_host), the TLS options and O(docker_timeout) once.
    support: full
    membership:
      - ktrdr.ops.docker
"""
