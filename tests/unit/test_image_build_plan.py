"""The images role's build plan (plugins/filter/images.py): the contexts staged, in the order the
plan reads them back, and every image's tag, args and labels from its context's content hash."""

from __future__ import annotations

import pytest

from ansible_collections.ktrdr.ops.plugins.filter.images import FilterModule, image_build_plan, image_contexts

INPUTS = {
    "keys": ["backend", "worker_cpu"],
    "variants": {"backend": {"dockerfile": "Dockerfile.backend"}, "worker_cpu": {"dockerfile": "Dockerfile.worker-cpu"}},
    "build_dir": "/b", "dockerfile_dir": "/c/deploy/docker", "source_dir": "/src",
    "wheelhouses": {"backend": "/cache/wh/backend", "worker_cpu": "/cache/wh/worker"},
    "source_paths": {"backend": ["ktrdr"], "worker_cpu": ["ktrdr", "strategies"]}, "source_exclude": ["*.pyc"],
    "names": {"backend": "ktrdr-backend", "worker_cpu": "ktrdr-worker-cpu", "postgres": "ktrdr-postgres"},
    "base_id": "sha256:base", "base_ref": "ktrdr-base:trixie", "pg_base_id": "", "pg_base_ref": "",
    "pg_major": 15, "postgres": True, "version": "1.0.7", "revision": "2c5c717", "check_mode": False,
}


def staged(specs):
    """What ktrdr.ops.build_context returns for them: a content hash per context."""
    return [{"dest": s["dest"], "content_hash": "sha256:%032d" % n, "content_hash_short": "%012d" % n}
            for n, s in enumerate(specs)]


def test_contexts_builder_then_image_then_postgres():
    specs = image_contexts(INPUTS)
    assert [s["dest"] for s in specs] == ["/b/context/backend-builder", "/b/context/backend",
                                         "/b/context/worker_cpu-builder", "/b/context/worker_cpu", "/b/context/postgres"]
    builder, final = specs[2], specs[3]
    assert [s["dest"] for s in builder["sources"]] == ["Dockerfile", "requirements", "wheels"]
    assert builder["hash_extra"] == {"base_image": "sha256:base", "stage": "builder"}
    assert final["sources"][-1] == {"src": "/src", "dest": "src", "include": ["ktrdr", "strategies"], "exclude": ["*.pyc"]}
    assert final["hash_extra"] == {"base_image": "sha256:base", "image": "ktrdr-worker-cpu"}
    assert specs[-1]["hash_extra"] == {"base_image": "sha256:base", "pg_major": "15"}
    assert not any(s.get("optional") for spec in specs for s in spec["sources"])
    assert all(s["optional"] for s in image_contexts(dict(INPUTS, check_mode=True))[0]["sources"][1:])


def test_plan_from_the_content_hashes():
    specs = image_contexts(INPUTS)
    plan = image_build_plan(staged(specs), INPUTS)
    assert sorted(plan) == ["backend", "postgres", "worker_cpu"]
    worker = plan["worker_cpu"]
    assert worker["ref"] == "ktrdr-worker-cpu:000000000003" and worker["path"] == "/b/context/worker_cpu"
    assert worker["builder"]["ref"] == "ktrdr-worker-cpu-builder:000000000002"
    assert worker["args"] == {"BASE_IMAGE": "ktrdr-base:trixie", "KTRDR_CONTENT_HASH": "sha256:%032d" % 3}
    assert worker["labels"]["io.ktrdr.torch"] == "cpu" and worker["labels"]["org.opencontainers.image.version"] == "1.0.7"
    assert plan["backend"]["torch"] == "absent"
    pg = plan["postgres"]
    assert pg["ref"] == "ktrdr-postgres:000000000004" and "builder" not in pg
    assert pg["args"]["PG_MAJOR"] == "15" and pg["labels"]["org.opencontainers.image.version"] == "15"


def test_the_database_on_its_own_base_or_an_existing_image():
    own = dict(INPUTS, pg_base_id="sha256:bookworm", pg_base_ref="ktrdr-base:bookworm")
    specs = image_contexts(own)
    assert specs[-1]["hash_extra"]["base_image"] == "sha256:bookworm"
    assert image_build_plan(staged(specs), own)["postgres"]["args"]["BASE_IMAGE"] == "ktrdr-base:bookworm"
    existing = dict(INPUTS, postgres=False)
    specs = image_contexts(existing)
    assert len(specs) == 4 and "postgres" not in image_build_plan(staged(specs), existing)


def test_a_missing_wheelhouse_is_a_key_error():
    with pytest.raises(KeyError):
        image_contexts(dict(INPUTS, wheelhouses={}))


def test_python_satisfies_is_image_plans_rule():
    satisfies = FilterModule().filters()["python_satisfies"]
    assert satisfies("3.13.5", ">=3.12,<3.14") and not satisfies("3.11.2", ">=3.12,<3.14")
    assert satisfies("3.11.2", "~=3.11") and not satisfies("3.12.0", "==3.11.*")
