"""The distribution report (plugins/filter/distribute.py): per host what was sent, pulled or re-tagged,
and the total, as distribute-report.json holds it (tests/faults/test_transfer.py reads a real one)."""

from __future__ import annotations

from ansible_collections.ktrdr.ops.plugins.filter.distribute import distribution_report


def host(name, **kw):
    hv = {"inventory_hostname": name, "_distribute_local": False, "distribute_host_images": ["ktrdr-backend:1"],
          "_distribute_missing": [], "_distribute_pull": [], "_distribute_retag": [], "_distribute_bytes_sent": 0}
    hv.update(kw)
    return hv


def test_hosts_and_total():
    report = distribution_report(
        [host("build", _distribute_local=True),
         host("gpu1", _distribute_missing=["ktrdr-backend:1"], _distribute_bytes_sent="2500000",
              _distribute_retag=[["ktrdr-backend:0", "ktrdr-backend:1"]])],
        "abc123", {"backend": "ktrdr-backend:1"}, "",
        {"gpu1": {"layers_sent": 2, "layers_skipped": 5, "bytes_skipped": 900}})
    assert report["mode"] == "archive" and report["release"] == "abc123" and report["bytes_sent"] == 2500000
    assert report["hosts"]["gpu1"] == {"local": False, "wanted": ["ktrdr-backend:1"], "sent": ["ktrdr-backend:1"],
                                       "pulled": [], "retagged": ["ktrdr-backend:1"], "bytes_sent": 2500000,
                                       "layers_sent": 2, "layers_skipped": 5, "bytes_skipped": 900}
    assert report["hosts"]["build"]["local"] is True and report["hosts"]["build"]["layers_sent"] == 0


def test_registry_mode():
    assert distribution_report([host("a")], "r", {}, "registry.lan:5000")["mode"] == "registry"
