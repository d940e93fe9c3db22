# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""The images role's build plan: which build contexts to stage (ktrdr.ops.build_context), then, from
their content hashes, every image's tag, build arguments and labels; the tags a build leaves stale; and whether a base image's
Python satisfies the source's requires-python (the rule ktrdr.ops.image_plan picks the base by)."""

from __future__ import annotations

from ansible_collections.ktrdr.ops.plugins.module_utils._image_plan import satisfies

# The workers' labels are settled from their torch wheels (ktrdr.ops.torch_wheel_info) afterwards.
TORCH_LABEL = {"backend": "absent", "worker_cpu": "cpu", "worker_gpu": "cuda", "postgres": "absent"}


def image_contexts(inputs):
    """The build contexts, in order: for each Python image its `builder` stage, then the full image
    (the builder is tagged by its own inputs, so its dependency layers outlive `docker image prune`);
    then ktrdr-postgres unless an existing image is used."""
    i = inputs
    optional = bool(i["check_mode"])  # in check mode the inputs are not staged yet
    specs = []
    for key in i["keys"]:
        dockerfile = {"src": "%s/%s" % (i["dockerfile_dir"], i["variants"][key]["dockerfile"]), "dest": "Dockerfile"}
        requirements = {"src": "%s/inputs/%s" % (i["build_dir"], key), "dest": "requirements", "optional": optional}
        wheels = {"src": i["wheelhouses"][key], "dest": "wheels", "link": True, "optional": optional}
        specs.append({"dest": "%s/context/%s-builder" % (i["build_dir"], key),
                      "sources": [dockerfile, requirements, wheels],
                      "hash_extra": {"base_image": i["base_id"], "stage": "builder"}})
        specs.append({"dest": "%s/context/%s" % (i["build_dir"], key),
                      "sources": [dockerfile,
                                  {"src": "%s/healthcheck.py" % i["dockerfile_dir"], "dest": "docker/healthcheck.py"},
                                  requirements, wheels,
                                  {"src": i["source_dir"], "dest": "src", "include": i["source_paths"][key],
                                   "exclude": i["source_exclude"]}],
                      "hash_extra": {"base_image": i["base_id"], "image": i["names"][key]}})
    if i["postgres"]:
        specs.append({"dest": "%s/context/postgres" % i["build_dir"],
                      "sources": [{"src": "%s/Dockerfile.postgres" % i["dockerfile_dir"], "dest": "Dockerfile"},
                                  {"src": "%s/postgres-entrypoint.sh" % i["dockerfile_dir"],
                                   "dest": "docker/postgres-entrypoint.sh"}],
                      "hash_extra": {"base_image": i["pg_base_id"] or i["base_id"], "pg_major": str(i["pg_major"])}})
    return specs


def _labels(name, version, revision, base_ref, content_hash, torch):
    return {"org.opencontainers.image.title": name,
            "org.opencontainers.image.version": version,
            "org.opencontainers.image.revision": revision,
            "org.opencontainers.image.base.name": base_ref,
            "io.ktrdr.content-hash": content_hash,
            "io.ktrdr.torch": torch}


def image_build_plan(contexts, inputs):
    """Every image by key (name, tag, ref, content hash, context path, build args, labels; the
    Python images also their builder stage), from the staged contexts in image_contexts' order."""
    i = inputs
    plan = {}
    for n, key in enumerate(i["keys"]):
        builder, final = contexts[2 * n], contexts[2 * n + 1]
        name, tag = i["names"][key], final["content_hash_short"]
        plan[key] = {
            "key": key, "name": name, "tag": tag, "ref": "%s:%s" % (name, tag),
            "content_hash": final["content_hash"], "path": final["dest"], "target": "", "torch": TORCH_LABEL[key],
            "builder": {"name": name + "-builder", "tag": builder["content_hash_short"],
                        "ref": "%s-builder:%s" % (name, builder["content_hash_short"]), "path": builder["dest"],
                        "target": "builder", "args": {"BASE_IMAGE": i["base_ref"]}, "labels": {}},
            "args": {"BASE_IMAGE": i["base_ref"], "KTRDR_CONTENT_HASH": final["content_hash"]},
            "labels": _labels(name, i["version"], i["revision"], i["base_ref"], final["content_hash"], TORCH_LABEL[key]),
        }
    if i["postgres"]:
        pg, name = contexts[-1], i["names"]["postgres"]
        base_ref, major = i["pg_base_ref"] or i["base_ref"], str(i["pg_major"])
        plan["postgres"] = {
            "key": "postgres", "name": name, "tag": pg["content_hash_short"],
            "ref": "%s:%s" % (name, pg["content_hash_short"]), "content_hash": pg["content_hash"], "path": pg["dest"],
            "target": "", "torch": "absent",
            "args": {"BASE_IMAGE": base_ref, "PG_MAJOR": major, "KTRDR_CONTENT_HASH": pg["content_hash"]},
            "labels": _labels(name, major, i["revision"], base_ref, pg["content_hash"], "absent"),
        }
    return plan


def stale_tags(images, plan, keep):
    """After a build: the tags to remove of the plan's images and builder stages - per name all but
    the newest `keep` (1 for a builder stage: a rollback uses the final images), never one the plan
    names. images: docker_host_info's images (Created, RepoTags)."""
    builders = [i["builder"] for i in plan.values() if "builder" in i]
    current = {i["ref"] for i in list(plan.values()) + builders}
    keeps = dict([(i["name"], int(keep)) for i in plan.values()] + [(b["name"], 1) for b in builders])
    stale = []
    for name, kept in keeps.items():
        tags = sorted(([img.get("Created"), ref] for img in images or [] for ref in img.get("RepoTags") or []
                       if ref.rsplit(":", 1)[0] == name), reverse=True)
        stale += [tag[1] for tag in tags[kept:] if tag[1] not in current]
    return stale


class FilterModule:
    def filters(self):
        # python_satisfies: '3.13.5' | python_satisfies('>=3.12,<3.14'), the rule image_plan picks the base by.
        return {"image_contexts": image_contexts, "image_build_plan": image_build_plan, "python_satisfies": satisfies,
                "stale_tags": stale_tags}
