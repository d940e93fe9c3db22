# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
"""Run inside the worker-gpu image (python -c, argv[1] = matrix size): what torch sees, and a matmul
on the GPU checked against the CPU, as one KTRDR_GPU_SMOKE JSON line that the gpu_host role reads."""
import json
import sys
import time

import torch
r = {"torch": torch.__version__, "cuda_build": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
if r["cuda_available"]:
    n = int(sys.argv[1])
    r["device_count"] = torch.cuda.device_count()
    r["device"] = torch.cuda.get_device_name(0)
    r["memory_mb"] = torch.cuda.get_device_properties(0).total_memory // 2**20
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    torch.cuda.synchronize()
    t = time.perf_counter()
    c = a @ b
    torch.cuda.synchronize()
    r["matmul_ms"] = round((time.perf_counter() - t) * 1000, 2)
    ref = a[:64].cpu() @ b.cpu()
    r["matmul_max_error"] = float((c[:64].cpu() - ref).abs().max())
    r["matmul_ok"] = bool(torch.allclose(c[:64].cpu(), ref, rtol=1e-2, atol=1e-1))
print("KTRDR_GPU_SMOKE " + json.dumps(r, sort_keys=True))
