"""What the two prunes remove: the images role's tags beyond images_keep after a build (filter
ktrdr.ops.stale_tags) and the distribute role's images that no kept release needs on a host
(filter ktrdr.ops.prune_candidates)."""

from __future__ import annotations

from ansible_collections.ktrdr.ops.plugins.filter.distribute import prune_candidates
from ansible_collections.ktrdr.ops.plugins.filter.images import stale_tags

PLAN = {
    "backend": {"name": "ktrdr-backend", "ref": "ktrdr-backend:c",
                "builder": {"name": "ktrdr-backend-builder", "ref": "ktrdr-backend-builder:c"}},
    "postgres": {"name": "ktrdr-postgres", "ref": "ktrdr-postgres:p1"},
}


def image(created, *tags, id_=None):
    return {"Created": created, "RepoTags": list(tags), "Id": id_ or "sha256:" + (tags[0] if tags else "none")}


def test_stale_tags_keeps_the_newest_and_one_builder():
    images = [image(1, "ktrdr-backend:a"), image(2, "ktrdr-backend:b"), image(3, "ktrdr-backend:c"),
              image(4, "ktrdr-backend:z"),  # newer than the plan's own, still within the two kept
              image(1, "ktrdr-backend-builder:a"), image(3, "ktrdr-backend-builder:c"),
              image(2, "ktrdr-postgres:p0"), image(3, "ktrdr-postgres:p1"),
              image(1, "other:a"), image(1, "ktrdr-backend-extra:a")]
    # The images first, then the builder stages (the order the tags are removed in).
    assert stale_tags(images, PLAN, 2) == ["ktrdr-backend:b", "ktrdr-backend:a", "ktrdr-backend-builder:a"]
    assert stale_tags(images, PLAN, "3") == ["ktrdr-backend:a", "ktrdr-backend-builder:a"]


def test_stale_tags_never_names_what_the_plan_runs():
    # The plan's tag is the oldest: beyond `keep`, but it is what the build just made.
    images = [image(1, "ktrdr-backend:c"), image(5, "ktrdr-backend:x"), image(6, "ktrdr-backend:y")]
    assert stale_tags(images, PLAN, 1) == ["ktrdr-backend:x"]
    assert stale_tags([], PLAN, 1) == []


RECORD = {"id": "r4", "manifest": {"current": "r3", "previous": "r2", "releases": [
    {"id": "r1", "host_images": ["ktrdr-backend:1"]},
    {"id": "r2", "host_images": ["ktrdr-backend:2"]},
    {"id": "r3", "host_images": ["ktrdr-backend:3"]},
    {"id": "r4", "host_images": ["ktrdr-backend:4"]},
]}}
REPOS = ["ktrdr-backend", "ktrdr-worker-cpu"]


def test_prune_candidates_keeps_the_kept_releases_and_what_runs():
    images = [image(0, "ktrdr-backend:%d" % n) for n in range(6)] + [image(0, "ktrdr-worker-cpu:old"),
                                                                      image(0, "postgres:15"), image(0)]
    # r1 is beyond the two newest and neither current nor previous; 0 and 5 belong to no release.
    assert prune_candidates(images, [], RECORD, 2, [], REPOS) == ["ktrdr-backend:0", "ktrdr-backend:1",
                                                                   "ktrdr-backend:5", "ktrdr-worker-cpu:old"]
    # What the host runs now stays, and so does an image a container uses (under any of its tags).
    used = [{"ImageID": "sha256:ktrdr-backend:0"}]
    assert prune_candidates(images, used, RECORD, 2, ["ktrdr-backend:5"], REPOS) == ["ktrdr-backend:1", "ktrdr-worker-cpu:old"]


def test_prune_candidates_leaves_other_repositories_and_registry_paths_alone():
    images = [image(0, "registry.example:5000/ktrdr-backend:9"), image(0, "ktrdr-backend-builder:9")]
    assert prune_candidates(images, [], RECORD, 2, [], REPOS) == []
    assert prune_candidates(images, [], RECORD, 2, [], REPOS + ["registry.example:5000/ktrdr-backend"]) == [
        "registry.example:5000/ktrdr-backend:9"]
