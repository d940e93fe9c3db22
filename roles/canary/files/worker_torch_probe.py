# Runs inside a worker container: torch imports, a matmul agrees with float64, an nn.Linear
# forward gives finite values of the right shape. Prints one JSON line.
import json
import time

import torch

t0 = time.time()
dev = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(0)
a = torch.randn(256, 256, device=dev)
b = torch.randn(256, 256, device=dev)
c = a @ b
ref = (a.double() @ b.double()).float()
lin = torch.nn.Linear(256, 16).to(dev)
with torch.no_grad():
    y = lin(c)
print(json.dumps({
    "torch": torch.__version__,
    "device": dev,
    # The build, as io.ktrdr.torch labels it: a CUDA build on a host without a GPU runs on the CPU.
    "build": "cpu" if torch.version.cuda is None else "cuda-%s" % torch.version.cuda,
    "cuda": torch.cuda.is_available(),
    "gpu_name": torch.cuda.get_device_name(0) if dev == "cuda" else None,
    "matmul_ok": bool(torch.allclose(c, ref, rtol=1e-3, atol=1e-3)),
    "linear_shape": list(y.shape),
    "linear_finite": bool(torch.isfinite(y).all()),
    "seconds": round(time.time() - t0, 3),
}))
