# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""Run inside a base image (python3 -c): its Python, architecture, libc and tini, as one
KTRDR_PROBE JSON line that the images role reads (the wheelhouse is downloaded for them)."""
import json
import platform
import shutil

libc, ver = platform.libc_ver()
facts = {"python": platform.python_version(), "machine": platform.machine(),
         "libc": libc, "libc_version": ver, "tini": shutil.which("tini")}
print("KTRDR_PROBE " + json.dumps(facts, sort_keys=True))
