# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""The distribute role's decisions: what a host lacks and how each image gets there
(distribution_plan), what the build host bundles for whom (bundle_deliveries), whether the host then
has the build's images (distribution_check), what a distribution did, per host and in total: the
report it writes to <ktrdr_build_dir>/distribute-report.json (distribution_report), and which of a
host's images no kept release needs (prune_candidates). Images are compared by their content-hash
label (an image ID can change when an archive is loaded into another engine, the content hash
cannot), else their ID."""

from __future__ import annotations

import re

from ansible.module_utils.parsing.convert_bool import boolean


def _by_tag(images, value):
    return {tag: value(i) for i in images or [] for tag in i.get("RepoTags") or []}


def _content(label):
    return lambda i: ((i.get("Config") or {}).get("Labels") or {}).get(label) or i.get("Id")


def distribution_plan(wanted, build_images, host_images, label, local=False):
    """wanted: the refs the host runs; build_images / host_images: docker_image_info's images on the build
    host and on this host. Each wanted ref is ok (the host has it: the same engine, or the same content),
    pull (the build host does not have it: a registry image), retag (the host has its content under
    another tag) or send."""
    build = _by_tag(build_images, _content(label))
    host = _by_tag(host_images, _content(label))
    tag_of = {content: tag for tag, content in host.items()}
    verdicts = {}
    for ref in wanted:
        if local or (ref in host and host[ref] == build.get(ref, host[ref])):
            verdicts[ref] = "ok"
        elif ref not in build:
            verdicts[ref] = "pull"
        elif build[ref] in tag_of:
            verdicts[ref] = "retag"
        else:
            verdicts[ref] = "send"

    def having(verdict):
        return [r for r, v in verdicts.items() if v == verdict]

    return {"verdicts": verdicts, "build_keys": build, "send": having("send"), "pull": having("pull"),
            "retag": [[tag_of[build[r]], r] for r in having("retag")]}


def distribution_check(wanted, found_images, build_images, build_keys, label):
    """After the transfer: the wanted refs the host does not have with the build's content hash and layers
    (bad), and one line naming each ref's hash on the host and on the build host (summary)."""
    found = {tag: {"hash": _content(label)(i), "layers": (i.get("RootFS") or {}).get("Layers")}
             for i in found_images or [] for tag in i.get("RepoTags") or [] if tag in wanted}
    layers = _by_tag(build_images, lambda i: (i.get("RootFS") or {}).get("Layers"))
    bad = [r for r in wanted if r not in found or (r in build_keys and found[r]["hash"] != build_keys[r])
           or (r in layers and found[r]["layers"] != layers[r])]
    summary = "; ".join("%s: %s (build: %s)" % (r, (found.get(r, {}).get("hash") or "missing")[:19], (build_keys.get(r) or "-")[:19])
                        for r in wanted)
    return {"bad": bad, "summary": summary}


def bundle_deliveries(hosts):
    """ktrdr.ops.image_bundle's deliveries: one per play host (its variables) that lacks images."""
    return [{"name": hv["inventory_hostname"], "images": list(hv["_distribute_missing"]),
             "present": hv["_distribute_present_layers"], "full": boolean(hv["_distribute_containerd_store"], strict=False)}
            for hv in hosts if hv.get("_distribute_missing")]


def distribution_report(hosts, release, images, registry="", deliveries=None):
    """hosts: the play hosts' variables (hostvars of each), with the distribute role's per-host answers;
    deliveries: the build host's per-host bundle answers (layers sent and skipped)."""
    deliveries = deliveries or {}
    out = {}
    for hv in hosts:
        name = hv["inventory_hostname"]
        sent = deliveries.get(name) or {}
        out[name] = {
            "local": bool(hv["_distribute_local"]), "wanted": list(hv["distribute_host_images"]),
            "sent": list(hv["_distribute_missing"]), "pulled": list(hv["_distribute_pull"]),
            "retagged": [pair[-1] for pair in hv["_distribute_retag"]],
            "bytes_sent": int(hv["_distribute_bytes_sent"] or 0),
            "layers_sent": sent.get("layers_sent", 0), "layers_skipped": sent.get("layers_skipped", 0),
            "bytes_skipped": sent.get("bytes_skipped", 0),
        }
    return {"release": release, "images": dict(images), "mode": "registry" if registry else "archive",
            "bytes_sent": sum(h["bytes_sent"] for h in out.values()), "hosts": out}


def prune_candidates(images, containers, record, keep_releases, wanted, repos):
    """The tags of a host's images to remove after a distribution: those of the ktrdr repositories
    (repos) that no kept release lists - the newest keep_releases releases of the manifest, its
    current and previous one and the release just recorded - that the host does not run (wanted)
    and whose image no container uses. images: docker_host_info's images; containers: its
    containers (verbose); record: ktrdr.ops.release_record's return (id, manifest)."""
    manifest = record.get("manifest") or {}
    releases = manifest.get("releases") or []
    ids = [r.get("id") for r in releases]
    kept_ids = set(ids[-int(keep_releases):]) | {manifest.get("current"), manifest.get("previous"), record.get("id")}
    keep = {t for r in releases if r.get("id") in kept_ids for t in r.get("host_images") or []} | set(wanted or [])
    used = {c.get("ImageID") for c in containers or []}
    repos = set(repos or [])
    return [t for i in images or [] if i.get("Id") not in used for t in i.get("RepoTags") or []
            if t not in keep and re.sub(r":[^:/]+$", "", t) in repos]


class FilterModule:
    def filters(self):
        return {"bundle_deliveries": bundle_deliveries, "distribution_plan": distribution_plan, "distribution_check": distribution_check,
                "distribution_report": distribution_report, "prune_candidates": prune_candidates}
