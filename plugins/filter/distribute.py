# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""What a distribution did, per host and in total: the report the distribute role writes to
<ktrdr_build_dir>/distribute-report.json (distribution_report)."""

from __future__ import annotations


def distribution_report(hosts, release, images, registry="", deliveries=None):
    """hosts: the play hosts' variables (hostvars of each), with the distribute role's per-host answers;
    deliveries: the build host's per-host bundle answers (layers sent and skipped)."""
    deliveries = deliveries or {}
    out = {}
    for hv in hosts:
        name = hv["inventory_hostname"]
        sent = deliveries.get(name) or {}
        out[name] = {
            "local": bool(hv["_distribute_local"]), "wanted": list(hv["_distribute_wanted"]),
            "sent": list(hv["_distribute_missing"]), "pulled": list(hv["_distribute_pull"]),
            "retagged": [pair[-1] for pair in hv["_distribute_retag"]],
            "bytes_sent": int(hv["_distribute_bytes_sent"] or 0),
            "layers_sent": sent.get("layers_sent", 0), "layers_skipped": sent.get("layers_skipped", 0),
            "bytes_skipped": sent.get("bytes_skipped", 0),
        }
    return {"release": release, "images": dict(images), "mode": "registry" if registry else "archive",
            "bytes_sent": sum(h["bytes_sent"] for h in out.values()), "hosts": out}


class FilterModule:
    def filters(self):
        return {"distribution_report": distribution_report}
