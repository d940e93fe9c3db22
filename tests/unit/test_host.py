"""Parsers behind ktrdr.ops.host_facts, on real tool output."""

import pytest

from ansible_collections.ktrdr.ops.plugins.module_utils._host import (
    owner_allowed,
    parse_buildx_version,
    parse_cuda_version,
    parse_gpu_csv,
    parse_proc_net_tcp,
    published_ports,
    version_at_least,
    version_tuple,
)

SMI_BANNER = """Sat Nov 22 21:50:01 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 560.35.03              Driver Version: 560.35.03      CUDA Version: 12.6     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
|   0  NVIDIA GeForce RTX 3090        Off |   00000000:01:00.0 Off |                  N/A |
"""

SMI_Q = """==============NVSMI LOG==============
Driver Version                            : 550.54.15
CUDA Version                              : 12.4
Attached GPUs                             : 1
"""

SMI_CSV = """0, NVIDIA GeForce RTX 3090, GPU-5a1b2c3d-0000-1111-2222-333344445555, 560.35.03, 24576
1, NVIDIA H100 80GB HBM3, GPU-6b1b2c3d-0000-1111-2222-333344445555, 560.35.03, 81559
"""


def test_gpu_csv():
    gpus = parse_gpu_csv(SMI_CSV)
    assert gpus[0] == dict(index=0, name="NVIDIA GeForce RTX 3090", uuid="GPU-5a1b2c3d-0000-1111-2222-333344445555",
                           driver_version="560.35.03", memory_mb=24576)
    assert gpus[1]["name"] == "NVIDIA H100 80GB HBM3" and gpus[1]["memory_mb"] == 81559
    assert parse_gpu_csv("") == []
    assert parse_gpu_csv("No devices were found\n") == []
    assert parse_gpu_csv("0, Odd, Name, GPU-x, 1.0, [N/A]\n")[0]["name"] == "Odd, Name"


def test_cuda_version_from_banner_and_query():
    assert parse_cuda_version(SMI_BANNER) == "12.6"
    assert parse_cuda_version(SMI_Q) == "12.4"
    assert parse_cuda_version("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.") is None


@pytest.mark.parametrize(
    "have,need,ok",
    [("12.6", "12.6", True), ("12.6", "12.4", True), ("12.4", "12.6", False), ("12", "12.0", True),
     ("20.10.24+dfsg1", "20.10", True), ("19.03.15", "20.10", False), (None, "1", False), ("12.10", "12.9", True)],
)
def test_version_at_least(have, need, ok):
    assert version_at_least(have, need) is ok


def test_version_tuple():
    assert version_tuple("v0.13.1") == (0, 13, 1)
    assert version_tuple("garbage") is None


def test_buildx_version():
    assert parse_buildx_version("github.com/docker/buildx v0.13.1 788433953af10f2a698f5c07611dddce2e08c7a0") == "0.13.1"
    assert parse_buildx_version("github.com/docker/buildx 0.10.5+ds1 0.10.5+ds1-1") == "0.10.5"
    assert parse_buildx_version("") is None


PROC_NET_TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 20735 1 0000000000000000 100 0 0 10 0
   1: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20736 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1538 0100007F:D2F2 01 00000000:00000000 00:00000000 00000000   106        0 20737 1 0000000000000000 20 4 30 10 -1
"""
PROC_NET_TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr
   0: 00000000000000000000000000000000:138B 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
"""


def test_proc_net_tcp_listeners():
    v4 = parse_proc_net_tcp(PROC_NET_TCP)
    assert v4 == {5432: ["127.0.0.1"], 8000: ["0.0.0.0"]}  # the ESTABLISHED line (01) is not a listener
    assert parse_proc_net_tcp(PROC_NET_TCP6) == {5003: ["::"]}


def test_published_ports_and_owners():
    containers = [
        {"Id": "abc", "Names": ["/ktrdr-backend"], "Ports": [
            {"PrivatePort": 8000, "PublicPort": 18000, "Type": "tcp", "IP": "0.0.0.0"},
            {"PrivatePort": 8000, "PublicPort": 18000, "Type": "tcp", "IP": "::"}]},
        {"Id": "def", "Names": ["/other"], "Ports": [{"PrivatePort": 53, "PublicPort": 5353, "Type": "udp"}, {"PrivatePort": 1}]},
    ]
    owners = published_ports(containers)
    assert owners == {18000: ["ktrdr-backend"]}
    assert owner_allowed(["ktrdr-backend"], ["ktrdr-*"])
    assert not owner_allowed(["ktrdr-backend", "nginx"], ["ktrdr-*"])
    assert not owner_allowed([], ["ktrdr-*"])
