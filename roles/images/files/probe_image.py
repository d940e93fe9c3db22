# Run inside every built Python image (python -c, no network): what it really contains, on one line
# prefixed KTRDR_PROBE so that other output cannot confuse it. The modules named on the command line
# are reported as present or not; "packages" are the ten largest installed distributions (bytes).
import importlib.util
import json
import os
import platform
import pwd
import sys
from importlib import metadata

r = {"python": platform.python_version(), "uid": os.getuid(), "user": pwd.getpwuid(os.getuid()).pw_name,
     "torch": None, "cuda": None, "alembic_ini": os.path.exists("/app/alembic.ini"),
     "modules": {m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]}}
try:
    import torch
    r["torch"] = torch.__version__
    r["cuda"] = torch.version.cuda
except ModuleNotFoundError:
    pass
sizes = {}
for dist in metadata.distributions():
    total = 0
    for f in dist.files or []:
        try:
            total += os.path.getsize(dist.locate_file(f))
        except OSError:
            pass
    sizes[dist.metadata["Name"]] = total
r["packages"] = dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:10])
print("KTRDR_PROBE " + json.dumps(r, sort_keys=True))
