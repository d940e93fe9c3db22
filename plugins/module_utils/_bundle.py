# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
#
# This module util is PRIVATE to the ktrdr.ops collection. It may change or go away
# without notice; do not use it from other collections.
"""Image archives that hold only the layers a host lacks (module ktrdr.ops.image_bundle).

Exports every image named in the deliveries once (``docker save`` through the engine), keeps the
export in <cache_dir>/exports keyed by tag and image ID, and writes for each delivery a
``docker load`` archive that carries every image's config and manifest but only the layer files
the target does not have yet. A layer counts as present on the target when its chain ID (the
layer and every layer under it) is a chain of an image listed in the delivery's "present", or of
an image earlier in the same delivery (they load in order). The classic Docker image store skips
a layer whose chain already exists and never opens its file, so such an archive loads like a full
one. "full" on a delivery (or layer_delta=false) gives complete archives, e.g. for engines that
use the containerd image store. Deliveries with the same plan share one archive. Files are
written under a temporary name and renamed, under a lock, so concurrent runs never see
half-written ones.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import tarfile

COPY_BUFSIZE = 4 * 1024 * 1024


def chain_ids(diff_ids):
    chains, prev = [], None
    for d in diff_ids:
        prev = d if prev is None else "sha256:" + hashlib.sha256((prev + " " + d).encode()).hexdigest()
        chains.append(prev)
    return chains


def _safe(ref):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", ref)


def _hex(digest):
    return digest.split(":", 1)[-1]


def read_export(path, ref):
    """Manifest entry, config bytes and the layer members (diff_id -> member) of a docker save archive."""
    tar = tarfile.open(path, "r:")
    names = {m.name: m for m in tar.getmembers()}
    manifest = json.load(tar.extractfile(names["manifest.json"]))
    entry = next((m for m in manifest if ref in (m.get("RepoTags") or [])), manifest[0])
    config_bytes = tar.extractfile(names[entry["Config"]]).read()
    diff_ids = json.loads(config_bytes)["rootfs"]["diff_ids"]
    if len(diff_ids) != len(entry["Layers"]):
        raise ValueError("%s: manifest lists %d layers, config %d" % (path, len(entry["Layers"]), len(diff_ids)))
    layers = []
    for d, name in zip(diff_ids, entry["Layers"]):
        member = names[name]
        # Layers shared inside one archive are symlinks to the first copy.
        seen = 0
        while member.issym() or member.islnk():
            target = member.linkname if member.islnk() else os.path.normpath(os.path.join(os.path.dirname(member.name), member.linkname))
            member = names[target]
            seen += 1
            if seen > 8:
                raise ValueError("%s: link loop at %s" % (path, name))
        layers.append((d, member))
    return tar, config_bytes, layers


class Bundler:
    """params: deliveries, cache_dir, layer_delta, prune_exports, keep_refs, check; engine: inspect(ref) -> the
    engine's image inspection (LookupError when absent), save(ref, dest) -> writes `docker save` of ref to dest."""

    def __init__(self, params, engine):
        self.p = params
        self.engine = engine
        self.cache = self.p["cache_dir"]
        self.exports_dir = os.path.join(self.cache, "exports")
        self.bundles_dir = os.path.join(self.cache, "bundles")
        self.exported = []
        self.changed = False

    def export_path(self, ref, info):
        return os.path.join(self.exports_dir, "%s@%s.tar" % (_safe(ref), _hex(info["Id"])[:12]))

    def ensure_export(self, ref, info):
        path = self.export_path(ref, info)
        if os.path.exists(path):
            return path
        tmp = "%s.%d.tmp" % (path, os.getpid())
        self.engine.save(ref, tmp)
        os.rename(tmp, path)
        self.exported.append(ref)
        self.changed = True
        return path

    def plan(self, delivery, infos):
        present = set()
        for layers in delivery.get("present") or []:
            present.update(chain_ids(list(layers)))
        delta = self.p["layer_delta"] and not delivery.get("full")
        plan = []
        for ref in delivery["images"]:
            diff_ids = infos[ref]["RootFS"]["Layers"]
            chains = chain_ids(diff_ids)
            send = [not (delta and c in present) for c in chains]
            present.update(chains)
            plan.append({"ref": ref, "id": infos[ref]["Id"], "send": send, "diff_ids": diff_ids})
        key = hashlib.sha256(json.dumps([[p["ref"], p["id"], p["send"]] for p in plan]).encode()).hexdigest()[:16]
        return key, plan

    def write_bundle(self, key, plan, infos):
        single_full = len(plan) == 1 and all(plan[0]["send"])
        if single_full:
            path = self.ensure_export(plan[0]["ref"], infos[plan[0]["ref"]])
            return path, self.layer_stats(path, plan)
        path = os.path.join(self.bundles_dir, "bundle-%s.tar" % key)
        if os.path.exists(path):
            return path, self.layer_stats(None, plan)
        tmp = "%s.%d.tmp" % (path, os.getpid())
        manifest, written, stats = [], set(), {"bytes_skipped": 0}
        with tarfile.open(tmp, "w:", format=tarfile.PAX_FORMAT) as out:
            out.copybufsize = COPY_BUFSIZE
            for item in plan:
                src_path = self.ensure_export(item["ref"], infos[item["ref"]])
                src, config_bytes, layers = read_export(src_path, item["ref"])
                with src:
                    config_name = "%s.json" % _hex(item["id"])
                    if config_name not in written:
                        ti = tarfile.TarInfo(config_name)
                        ti.size, ti.mode, ti.mtime = len(config_bytes), 0o644, 0
                        out.addfile(ti, io.BytesIO(config_bytes))
                        written.add(config_name)
                    names = []
                    for (diff_id, member), send in zip(layers, item["send"]):
                        name = "%s/layer.tar" % _hex(diff_id)
                        names.append(name)
                        if not send:
                            stats["bytes_skipped"] += member.size
                            continue
                        if name in written:
                            continue
                        ti = tarfile.TarInfo(name)
                        ti.size, ti.mode, ti.mtime = member.size, 0o644, 0
                        out.addfile(ti, src.extractfile(member))
                        written.add(name)
                    manifest.append({"Config": config_name, "RepoTags": [item["ref"]], "Layers": names})
            data = json.dumps(manifest).encode()
            ti = tarfile.TarInfo("manifest.json")
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
            out.addfile(ti, io.BytesIO(data))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.rename(tmp, path)
        self.changed = True
        return path, stats

    def layer_stats(self, export_path, plan):
        # Skipped bytes come from the exports (the archive itself only holds what is sent).
        skipped = 0
        for item in plan:
            if all(item["send"]):
                continue
            infos_path = self.export_path(item["ref"], {"Id": item["id"]})
            if not os.path.exists(infos_path):
                continue
            src, _cfg, layers = read_export(infos_path, item["ref"])
            with src:
                skipped += sum(m.size for (_d, m), s in zip(layers, item["send"]) if not s)
        return {"bytes_skipped": skipped}

    def prune(self, infos):
        keep_ids = {}
        for ref, info in infos.items():
            keep_ids.setdefault(ref.rsplit(":", 1)[0], set()).add(os.path.basename(self.export_path(ref, info)))
        unsure = set()
        for ref in self.p["keep_refs"]:
            try:
                info = self.engine.inspect(ref)
            except LookupError:
                continue
            except Exception:  # the engine did not answer for it: keep every export of that repository
                unsure.add(ref.rsplit(":", 1)[0])
                continue
            keep_ids.setdefault(ref.rsplit(":", 1)[0], set()).add(os.path.basename(self.export_path(ref, info)))
        removed = []
        for name in sorted(os.listdir(self.exports_dir)):
            if not name.endswith(".tar"):
                continue
            for repo, keep in keep_ids.items():
                if repo in unsure:
                    continue
                if name.startswith(_safe(repo) + "_") and name not in keep:
                    os.unlink(os.path.join(self.exports_dir, name))
                    removed.append(name)
        return removed

    def run(self):
        deliveries = [d for d in self.p["deliveries"] if d["images"]]
        refs = []
        for d in deliveries:
            refs.extend(r for r in d["images"] if r not in refs)
        infos = {}
        for ref in refs:
            try:
                infos[ref] = self.engine.inspect(ref)
            except LookupError as exc:
                raise LookupError("Image %s is not on the build host's engine: %s" % (ref, exc))
        results = {d["name"]: {"path": None, "bytes": 0, "images": [], "layers_total": 0, "layers_sent": 0,
                               "layers_skipped": 0, "bytes_skipped": 0, "plan": None}
                   for d in self.p["deliveries"]}
        plans = {}
        for d in deliveries:
            key, plan = self.plan(d, infos)
            plans.setdefault(key, plan)
            sent = sum(sum(p["send"]) for p in plan)
            total = sum(len(p["send"]) for p in plan)
            results[d["name"]].update({"images": d["images"], "layers_total": total, "layers_sent": sent,
                                       "layers_skipped": total - sent, "plan": key})
        if self.p["check"]:
            return results, bool(plans), []
        for path in (self.exports_dir, self.bundles_dir):
            os.makedirs(path, exist_ok=True)
        with open(os.path.join(self.cache, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # Every write happens under this lock, so a *.tmp file here is what an interrupted run
            # left (an export or archive cut short): remove it, it is never reused.
            for path in (self.exports_dir, self.bundles_dir):
                for name in os.listdir(path):
                    if name.endswith(".tmp"):
                        os.unlink(os.path.join(path, name))
            written = {}
            for key, plan in plans.items():
                written[key] = self.write_bundle(key, plan, infos)
            for name, res in results.items():
                if res["plan"]:
                    path, stats = written[res["plan"]]
                    res.update({"path": path, "bytes": os.path.getsize(path), "bytes_skipped": stats["bytes_skipped"]})
            pruned = self.prune(infos) if self.p["prune_exports"] else []
        return results, self.changed, pruned
