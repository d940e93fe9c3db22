# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
#
# This module util is PRIVATE to the ktrdr.ops collection. It may change or go away
# without notice; do not use it from other collections.
"""Pure parsers behind ktrdr.ops.host_facts (tool output in, plain data out)."""

from __future__ import annotations

import fnmatch
import re

GPU_QUERY = "index,name,uuid,driver_version,memory.total"

_CUDA_RE = re.compile(r"CUDA Version\s*:\s*([0-9]+(?:\.[0-9]+)*)")
_BUILDX_RE = re.compile(r"\bv?([0-9]+\.[0-9]+(?:\.[0-9]+)?)\b")
TCP_LISTEN = "0A"


def version_tuple(text):
    """'12.6' -> (12, 6); '20.10.24+dfsg1' -> (20, 10, 24); None when there is no leading number."""
    if text is None:
        return None
    m = re.match(r"\s*v?([0-9]+(?:\.[0-9]+)*)", str(text))
    if not m:
        return None
    return tuple(int(x) for x in m.group(1).split("."))


def version_at_least(have, need):
    """Compare dotted versions, padding the shorter one with zeros ('12' >= '12.0')."""
    h, n = version_tuple(have), version_tuple(need)
    if h is None or n is None:
        return False
    width = max(len(h), len(n))
    return h + (0,) * (width - len(h)) >= n + (0,) * (width - len(n))


def parse_gpu_csv(text):
    """``nvidia-smi --query-gpu=index,name,uuid,driver_version,memory.total --format=csv,noheader,nounits``."""
    gpus = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 5:
            continue
        # A GPU name never contains a comma today, but join the middle if one ever does.
        index, uuid, driver, memory = fields[0], fields[-3], fields[-2], fields[-1]
        name = ", ".join(fields[1:-3]).strip()
        try:
            memory_mb = int(float(memory))
        except ValueError:
            memory_mb = None
        try:
            index = int(index)
        except ValueError:
            pass
        gpus.append(dict(index=index, name=name, uuid=uuid, driver_version=driver, memory_mb=memory_mb))
    return gpus


def parse_cuda_version(text):
    """The highest CUDA version the driver supports, from the ``nvidia-smi`` banner or ``nvidia-smi -q``."""
    m = _CUDA_RE.search(text or "")
    return m.group(1) if m else None


def parse_buildx_version(text):
    """``github.com/docker/buildx v0.13.1 ...`` -> '0.13.1'."""
    for token in (text or "").split():
        if token.startswith("v") or token[:1].isdigit():
            m = _BUILDX_RE.match(token)
            if m:
                return m.group(1)
    return None


def parse_proc_net_tcp(text):
    """Ports in LISTEN state in a /proc/net/tcp or /proc/net/tcp6 table, as {port: [local addresses]}."""
    listening = {}
    for line in (text or "").splitlines()[1:]:
        parts = line.split()
        if len(parts) < 4 or parts[3] != TCP_LISTEN:
            continue
        addr, dummy, port_hex = parts[1].rpartition(":")
        try:
            port = int(port_hex, 16)
        except ValueError:
            continue
        listening.setdefault(port, []).append(_decode_addr(addr))
    return listening


def _decode_addr(hexaddr):
    try:
        if len(hexaddr) == 8:
            raw = bytes.fromhex(hexaddr)[::-1]
            return ".".join(str(b) for b in raw)
        if len(hexaddr) == 32:
            words = [bytes.fromhex(hexaddr[i:i + 8])[::-1] for i in range(0, 32, 8)]
            raw = b"".join(words)
            if raw == bytes(16):
                return "::"
            groups = ["%x" % int.from_bytes(raw[i:i + 2], "big") for i in range(0, 16, 2)]
            return ":".join(groups)
    except ValueError:
        pass
    return hexaddr


def published_ports(containers):
    """{host port: [container names]} from docker container summaries (``docker ps`` data)."""
    owners = {}
    for c in containers or []:
        names = [n.lstrip("/") for n in c.get("Names") or []] or [c.get("Id", "?")[:12]]
        for port in c.get("Ports") or []:
            public = port.get("PublicPort")
            if public and (port.get("Type") or "tcp") == "tcp":
                for name in names:
                    owners.setdefault(int(public), [])
                    if name not in owners[int(public)]:
                        owners[int(public)].append(name)
    return owners


def owner_allowed(owners, patterns):
    """True when every owner matches one of the glob patterns (and there is at least one owner)."""
    if not owners or not patterns:
        return False
    return all(any(fnmatch.fnmatchcase(o, pat) for pat in patterns) for o in owners)
