# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""Filters over the ledger's records (plugins/module_utils/_ledger.py): release_id, release_images,
host_image_keys, lock_text, release_skew."""

from __future__ import annotations

from ansible_collections.ktrdr.ops.plugins.module_utils._ledger import (
    describe_lock, host_image_keys, release_id, release_images, release_skew)


class FilterModule:
    def filters(self):
        return {"release_id": release_id, "release_images": release_images, "host_image_keys": host_image_keys,
                "lock_text": describe_lock, "release_skew": release_skew}
