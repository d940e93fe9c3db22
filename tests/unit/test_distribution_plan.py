"""What a host lacks and how each image gets there, whether it then has the build's images, and what the
build host bundles for whom (plugins/filter/distribute.py; tests/faults/test_transfer.py runs them for real)."""

from __future__ import annotations

from ansible_collections.ktrdr.ops.plugins.filter.distribute import bundle_deliveries, distribution_check, distribution_plan

LABEL = "io.ktrdr.content-hash"


def image(tags, content=None, layers=("l1",), iid="sha256:x"):
    return {"RepoTags": list(tags), "Id": iid, "RootFS": {"Layers": list(layers)},
            "Config": {"Labels": {LABEL: content} if content else None}}


BUILD = [image(["ktrdr-backend:2"], "c-backend-2", ("b1", "b2")), image(["ktrdr-worker-cpu:2"], "c-worker-2"),
         image(["ktrdr-postgres:1"], "c-pg-1")]


def test_each_ref_is_ok_pulled_retagged_or_sent():
    host = [image(["ktrdr-postgres:1"], "c-pg-1"), image(["ktrdr-backend:old"], "c-backend-2")]
    plan = distribution_plan(["ktrdr-backend:2", "ktrdr-worker-cpu:2", "ktrdr-postgres:1", "postgres:16"], BUILD, host, LABEL)
    assert plan["verdicts"] == {"ktrdr-backend:2": "retag", "ktrdr-worker-cpu:2": "send", "ktrdr-postgres:1": "ok",
                                "postgres:16": "pull"}
    assert plan["send"] == ["ktrdr-worker-cpu:2"] and plan["pull"] == ["postgres:16"]
    assert plan["retag"] == [["ktrdr-backend:old", "ktrdr-backend:2"]]
    assert plan["build_keys"]["ktrdr-backend:2"] == "c-backend-2"


def test_the_same_tag_with_other_content_is_sent_and_the_build_engine_has_everything():
    host = [image(["ktrdr-worker-cpu:2"], "c-worker-OTHER")]
    assert distribution_plan(["ktrdr-worker-cpu:2"], BUILD, host, LABEL)["send"] == ["ktrdr-worker-cpu:2"]
    local = distribution_plan(["ktrdr-worker-cpu:2", "postgres:16"], BUILD, [], LABEL, local=True)
    assert set(local["verdicts"].values()) == {"ok"}


def test_an_image_without_the_label_is_compared_by_its_id():
    build = [image(["postgres:16"], iid="sha256:pg")]
    assert distribution_plan(["postgres:16"], build, [image(["postgres:16"], iid="sha256:pg")], LABEL)["verdicts"] == {"postgres:16": "ok"}


def test_the_check_names_what_is_missing_or_differs():
    plan = distribution_plan(["ktrdr-backend:2", "ktrdr-worker-cpu:2"], BUILD, [], LABEL)
    good = [image(["ktrdr-backend:2"], "c-backend-2", ("b1", "b2")), image(["ktrdr-worker-cpu:2"], "c-worker-2")]
    assert distribution_check(["ktrdr-backend:2", "ktrdr-worker-cpu:2"], good, BUILD, plan["build_keys"], LABEL)["bad"] == []
    short = [image(["ktrdr-backend:2"], "c-backend-2", ("b1",))]
    check = distribution_check(["ktrdr-backend:2", "ktrdr-worker-cpu:2"], short, BUILD, plan["build_keys"], LABEL)
    assert check["bad"] == ["ktrdr-backend:2", "ktrdr-worker-cpu:2"]
    assert check["summary"] == "ktrdr-backend:2: c-backend-2 (build: c-backend-2); ktrdr-worker-cpu:2: missing (build: c-worker-2)"


def test_deliveries_only_for_hosts_that_lack_images():
    hosts = [{"inventory_hostname": "build", "_distribute_missing": [], "_distribute_present_layers": [],
              "_distribute_containerd_store": False},
             {"inventory_hostname": "gpu1", "_distribute_missing": ["ktrdr-worker-cpu:2"],
              "_distribute_present_layers": [["l1"]], "_distribute_containerd_store": "True"}]
    assert bundle_deliveries(hosts) == [{"name": "gpu1", "images": ["ktrdr-worker-cpu:2"], "present": [["l1"]], "full": True}]
