"""host_address (plugins/filter/address.py): the one rule for the address other hosts reach a host at."""

from __future__ import annotations

from ansible_collections.ktrdr.ops.plugins.filter.address import host_address

HOSTVARS = {
    "db1": {"ktrdr_advertise_address": "10.0.0.5", "ansible_host": "db1.lan"},
    "gpu1": {"ansible_host": "192.168.1.20"},
    "localhost": {},
    "blank": {"ktrdr_advertise_address": "", "ansible_host": "blank.lan"},
}


def test_advertise_address_then_ansible_host_then_the_name():
    assert host_address("db1", HOSTVARS) == "10.0.0.5"
    assert host_address("gpu1", HOSTVARS) == "192.168.1.20"
    assert host_address("localhost", HOSTVARS) == "localhost"
    assert host_address("blank", HOSTVARS) == "blank.lan"  # an empty setting counts as unset
