"""The image archive cache's prune (plugins/module_utils/_bundle.py, Bundler.prune): exports of the images
in use and of keep_refs stay; a keep_ref the engine cannot answer for keeps every export of its repository."""

from __future__ import annotations

import os

from ansible_collections.ktrdr.ops.plugins.module_utils._bundle import Bundler


class Engine:
    def __init__(self, ids, broken=()):
        self.ids, self.broken = ids, set(broken)

    def inspect(self, ref):
        if ref in self.broken:
            raise RuntimeError("500 Server Error: engine busy")
        if ref not in self.ids:
            raise LookupError(ref)
        return {"Id": "sha256:" + self.ids[ref]}


def _bundler(tmp_path, engine, keep):
    b = Bundler({"cache_dir": str(tmp_path), "keep_refs": keep}, engine)
    os.makedirs(b.exports_dir)
    for name in ("ktrdr-backend_new@%s.tar" % ("a" * 12), "ktrdr-backend_old@%s.tar" % ("b" * 12),
                 "ktrdr-backend_older@%s.tar" % ("c" * 12)):
        open(os.path.join(b.exports_dir, name), "w").close()
    return b


def test_exports_neither_in_use_nor_kept_are_removed(tmp_path):
    engine = Engine({"ktrdr-backend:new": "a" * 64, "ktrdr-backend:old": "b" * 64})
    b = _bundler(tmp_path, engine, ["ktrdr-backend:old", "ktrdr-backend:gone"])
    assert b.prune({"ktrdr-backend:new": engine.inspect("ktrdr-backend:new")}) == ["ktrdr-backend_older@%s.tar" % ("c" * 12)]


def test_a_keep_ref_the_engine_cannot_answer_for_keeps_its_repository(tmp_path):
    engine = Engine({"ktrdr-backend:new": "a" * 64}, broken=["ktrdr-backend:old"])
    b = _bundler(tmp_path, engine, ["ktrdr-backend:old"])
    assert b.prune({"ktrdr-backend:new": engine.inspect("ktrdr-backend:new")}) == []
    assert len(os.listdir(b.exports_dir)) == 3
