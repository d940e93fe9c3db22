# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""The address other hosts reach an inventory host at (host_address): its ktrdr_advertise_address,
else its ansible_host, else its inventory name. roles/common uses it for the database and the
backend host, the workers role for the URL the backend calls its workers at."""

from __future__ import annotations


def host_address(host, hostvars):
    """host: an inventory host name; hostvars: Ansible's hostvars."""
    hv = hostvars[host]
    for key in ("ktrdr_advertise_address", "ansible_host"):
        if key in hv and hv[key]:
            return str(hv[key])
    return str(host)


class FilterModule:
    def filters(self):
        return {"host_address": host_address}
