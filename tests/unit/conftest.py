"""Make the collection importable as ansible_collections.ktrdr.ops without installing it.

The checkout is the collection; `make venv` links it at .ansible/collections/ansible_collections/ktrdr/ops.
If the link is missing (a bare checkout), a temporary one is made so the tests still import the real files.
"""

import os
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COLLECTIONS = os.path.join(ROOT, ".ansible", "collections")

if not os.path.isdir(os.path.join(COLLECTIONS, "ansible_collections", "ktrdr", "ops", "plugins")):
    COLLECTIONS = tempfile.mkdtemp(prefix="ktrdr-ops-collections-")
    os.makedirs(os.path.join(COLLECTIONS, "ansible_collections", "ktrdr"))
    os.symlink(ROOT, os.path.join(COLLECTIONS, "ansible_collections", "ktrdr", "ops"))

sys.path.insert(0, COLLECTIONS)

# ansible ships a regular package named ansible_collections in site-packages; extend its search path
# so that ktrdr.ops is found next to the bundled collections.
import ansible_collections  # noqa: E402

_extra = os.path.join(COLLECTIONS, "ansible_collections")
if _extra not in list(ansible_collections.__path__):
    ansible_collections.__path__.append(_extra)
