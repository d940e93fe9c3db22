#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: host_facts
short_description: Preflight facts of a ktrdr host, with a pass/fail verdict per check
version_added: 0.1.0
description:
  - Gathers what a ktrdr deployment needs to know about a host, without changing it, and checks it against the requirements given.
  - Docker engine version, API version, root directory and registered runtimes (through the Docker SDK for Python, or the
    C(docker) CLI when the SDK is missing), the SDK's own version, and whether the C(docker buildx) plugin is present.
  - GPUs seen by C(nvidia-smi), the driver version and the highest CUDA version that driver supports, and whether the
    C(nvidia) runtime is registered with Docker.
  - Free space on the file system that holds Docker's data (or O(disk_path)), and whether the listed TCP ports are free.
  - Every check is returned in RV(checks) with C(passed) and a C(detail) that says what was found and what was needed.
    The module only fails on a failed check when O(fail_on_failed_checks=true); otherwise assert on RV(failed_checks).
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._attributes
  - ktrdr.ops._attributes.INFO_MODULE
  - ktrdr.ops._attributes.FACTS
  - ktrdr.ops._attributes.ACTIONGROUP_DOCKER
  - ktrdr.ops._docker
options:
  min_docker_version:
    description:
      - Least Docker engine version, for example V(20.10). Without it the engine only has to answer.
    type: str
  require_buildx:
    description:
      - Fail the C(buildx) check when the C(docker buildx) plugin is missing (the images role can build without it).
    type: bool
    default: false
  require_gpu:
    description:
      - Fail the C(gpu) and C(nvidia_runtime) checks unless C(nvidia-smi) sees at least one GPU and Docker has the C(nvidia) runtime.
    type: bool
    default: false
  required_cuda:
    description:
      - Least CUDA version the driver must support (the CUDA version of the GPU worker image's torch build), for example V(12.6).
      - Adds the C(cuda) check.
    type: str
  required_disk_gb:
    description:
      - Free space in GiB needed on the file system of O(disk_path), for example the size of the images to load. Adds the C(disk) check.
    type: float
  disk_path:
    description:
      - Path whose file system is measured. Defaults to Docker's root directory (C(docker info)), or C(/) when Docker cannot be asked.
    type: path
  ports:
    description:
      - TCP ports that must be free on the host. Adds one C(port_<n>) check per port.
      - A port counts as taken when a socket listens on it or a container publishes it.
    type: list
    elements: int
    default: []
  allow_port_owners:
    description:
      - Glob patterns of container names that may already hold the O(ports) (for example the ktrdr containers a re-deploy will
        replace, V(ktrdr-*)). A port held only by such containers passes.
    type: list
    elements: str
    default: []
  fail_on_failed_checks:
    description:
      - Fail the task, listing every failed check, instead of returning them in RV(failed_checks).
    type: bool
    default: false
requirements:
  - docker (Docker SDK for Python) for the engine facts; the C(docker) CLI is used as a fallback
notes:
  - The module only reads; it runs C(docker buildx version), C(nvidia-smi) and (without the SDK) C(docker info).
  - With the C(docker) CLI fallback, the engine options reach the CLI as E(DOCKER_HOST), E(DOCKER_TLS_VERIFY), C(--tls),
    C(--tlscacert), C(--tlscert) and C(--tlskey); O(tls_hostname) needs the SDK. C(docker buildx version) only runs the
    local plugin and does not use them.
  - Ports are read from C(/proc/net/tcp) and C(/proc/net/tcp6) of the host's network namespace (Linux only) and from the
    published ports of running containers.
seealso:
  - module: community.docker.docker_host_info
"""

EXAMPLES = r"""
- name: Preflight a CPU host
  ktrdr.ops.host_facts:
    required_disk_gb: 10
    ports: [8000, 5003, 5004, 5432]
    allow_port_owners: ["ktrdr-*"]
  register: preflight

- name: Stop on the first host that cannot run ktrdr
  ansible.builtin.assert:
    that: preflight.failed_checks | length == 0
    fail_msg: "{{ preflight.checks | rejectattr('passed') | map(attribute='detail') | list }}"

- name: Preflight a GPU worker host; fail at once if anything is missing
  ktrdr.ops.host_facts:
    require_gpu: true
    required_cuda: "12.6"
    required_disk_gb: 20
    fail_on_failed_checks: true

- name: Use the facts
  ansible.builtin.debug:
    msg: "{{ ansible_facts.ktrdr_host.gpus | length }} GPUs, driver {{ ansible_facts.ktrdr_host.nvidia.driver_version }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts about the host.
  returned: always
  type: dict
  contains:
    ktrdr_host:
      description: What was found.
      type: dict
      contains:
        docker:
          description:
            - C(reachable), C(server_version), C(api_version), C(root_dir), C(runtimes), C(default_runtime), C(sdk_version),
              C(via) (V(sdk) or V(cli)) and C(error).
          type: dict
        buildx:
          description: C(present) and C(version) of the buildx plugin.
          type: dict
        gpus:
          description: GPUs from C(nvidia-smi), each with C(index), C(name), C(uuid), C(driver_version) and C(memory_mb).
          type: list
          elements: dict
        nvidia:
          description:
            - C(smi) (path of C(nvidia-smi) or null), C(driver_version), C(cuda_version) (highest the driver supports)
              and C(runtime) (registered with Docker).
          type: dict
        disk:
          description: C(path), C(free_gb) and C(total_gb).
          type: dict
        ports:
          description: Per asked port, C(free), C(listening) (addresses) and C(containers) (names publishing it).
          type: dict
        cpu_count:
          description: Number of CPUs.
          type: int
        memory_gb:
          description: Total memory in GiB.
          type: float
  sample:
    ktrdr_host:
      docker: {reachable: true, server_version: 20.10.24+dfsg1, api_version: "1.41", root_dir: /var/lib/docker,
               runtimes: [io.containerd.runc.v2, io.containerd.runtime.v1.linux, runc], default_runtime: runc, sdk_version: 7.1.0, via: sdk}
      buildx: {present: false, version: null}
      gpus: []
      nvidia: {smi: null, driver_version: null, cuda_version: null, runtime: false}
      disk: {path: /var/lib/docker, free_gb: 77.9, total_gb: 251.9}
      ports: {"8000": {free: true, listening: [], containers: []}}
      cpu_count: 2
      memory_gb: 23.5
checks:
  description: One entry per check, in a fixed order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: C(docker_engine), C(docker_sdk), C(buildx), C(gpu), C(nvidia_runtime), C(cuda), C(disk) or C(port_<n>).
      type: str
    passed:
      description: Whether the host meets the requirement.
      type: bool
    detail:
      description: What was found, and what was needed.
      type: str
  sample:
    - {name: docker_engine, passed: true, detail: "Docker 20.10.24+dfsg1 (API 1.41) answers at unix:///var/run/docker.sock"}
    - {name: port_8000, passed: true, detail: "port 8000 is free"}
failed_checks:
  description: Names of the checks that did not pass.
  returned: always
  type: list
  elements: str
  sample: []
"""

import json
import os
import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ktrdr.ops.plugins.module_utils._host import (
    GPU_QUERY,
    owner_allowed,
    parse_buildx_version,
    parse_cuda_version,
    parse_gpu_csv,
    parse_proc_net_tcp,
    published_ports,
    version_at_least,
)

from ansible_collections.ktrdr.ops.plugins.module_utils import _docker
from ansible_collections.ktrdr.ops.plugins.module_utils._docker import DOCKER_SDK_ERROR, HAS_DOCKER_SDK, docker

GIB = 1024.0 ** 3


class HostFacts:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.checks = []
        self.facts = {}
        self.docker_bin = module.get_bin_path("docker")
        self._containers = None

    def check(self, name, passed, detail):
        self.checks.append(dict(name=name, passed=bool(passed), detail=detail))

    def run_cmd(self, args):
        rc, out, err = self.module.run_command(args, environ_update={"LC_ALL": "C"})
        return rc, out, err

    # -- docker ------------------------------------------------------------------------------------
    def docker_facts(self):
        host = self.p["docker_host"]
        facts = dict(reachable=False, server_version=None, api_version=None, root_dir=None, runtimes=[], default_runtime=None,
                     cdi_spec_dirs=[], sdk_version=docker.__version__ if HAS_DOCKER_SDK else None, via=None, error=None)
        if HAS_DOCKER_SDK:
            try:
                client = _docker.client_from_params(self.p)
                version = client.version()
                info = client.info()
                self._containers = client.api.containers()
                facts.update(via="sdk")
            except Exception as exc:  # the SDK raises a zoo of types; each means "not reachable"
                facts["error"] = str(exc)
                version = info = None
        else:
            version = info = None
            if self.docker_bin:
                try:
                    tls_args, env = _docker.cli_invocation(self.p)
                except _docker.DockerConfigError as exc:
                    self.module.fail_json(msg=str(exc))
                docker_cmd = [self.docker_bin] + tls_args
                rc, out, err = self.module.run_command(docker_cmd + ["version", "--format", "{{json .Server}}"], environ_update=env)
                rc2, out2, err2 = self.module.run_command(docker_cmd + ["info", "--format", "{{json .}}"], environ_update=env)
                if rc == 0 and rc2 == 0:
                    try:
                        version = json.loads(out)
                        info = json.loads(out2)
                        facts.update(via="cli")
                    except ValueError as exc:
                        facts["error"] = "cannot parse docker CLI output: %s" % exc
                else:
                    facts["error"] = (err or err2 or out or out2).strip()
            else:
                facts["error"] = "neither the Docker SDK for Python nor the docker CLI is installed"
        if version and info:
            facts.update(
                reachable=True,
                server_version=version.get("Version"),
                api_version=version.get("ApiVersion"),
                root_dir=info.get("DockerRootDir"),
                runtimes=sorted((info.get("Runtimes") or {}).keys()),
                default_runtime=info.get("DefaultRuntime"),
                cdi_spec_dirs=info.get("CDISpecDirs") or [],
            )
        self.facts["docker"] = facts

        if not facts["reachable"]:
            self.check("docker_engine", False, "Docker engine at %s does not answer: %s" % (host, facts["error"]))
        elif self.p["min_docker_version"] and not version_at_least(facts["server_version"], self.p["min_docker_version"]):
            self.check("docker_engine", False, "Docker %s at %s is older than the required %s"
                       % (facts["server_version"], host, self.p["min_docker_version"]))
        else:
            self.check("docker_engine", True, "Docker %s (API %s) answers at %s%s" % (
                facts["server_version"], facts["api_version"], host,
                " (>= %s)" % self.p["min_docker_version"] if self.p["min_docker_version"] else ""))
        if HAS_DOCKER_SDK:
            self.check("docker_sdk", True, "Docker SDK for Python %s" % facts["sdk_version"])
        else:
            self.check("docker_sdk", False, "Docker SDK for Python is missing (%s); ktrdr.ops.migration needs it: pip install docker"
                       % DOCKER_SDK_ERROR)

    def buildx_facts(self):
        present, ver, detail = False, None, None
        if self.docker_bin:
            rc, out, err = self.run_cmd([self.docker_bin, "buildx", "version"])
            if rc == 0:
                present, ver = True, parse_buildx_version(out)
            else:
                detail = (err or out).strip().splitlines()[0] if (err or out).strip() else "rc=%d" % rc
        else:
            detail = "no docker CLI"
        self.facts["buildx"] = dict(present=present, version=ver)
        if present:
            self.check("buildx", True, "docker buildx %s is present" % ver)
        else:
            self.check("buildx", not self.p["require_buildx"], "docker buildx is not available (%s)%s" % (
                detail, "; it is required" if self.p["require_buildx"] else "; images are built with the legacy builder"))

    # -- GPU ---------------------------------------------------------------------------------------
    def gpu_facts(self):
        smi = self.module.get_bin_path("nvidia-smi")
        nvidia = dict(smi=smi, driver_version=None, cuda_version=None, runtime="nvidia" in self.facts["docker"]["runtimes"], error=None)
        gpus = []
        if smi:
            rc, out, err = self.run_cmd([smi, "--query-gpu=%s" % GPU_QUERY, "--format=csv,noheader,nounits"])
            if rc == 0:
                gpus = parse_gpu_csv(out)
            else:
                nvidia["error"] = (err or out).strip()
            rc, out, err = self.run_cmd([smi])
            if rc == 0:
                nvidia["cuda_version"] = parse_cuda_version(out)
            if gpus:
                nvidia["driver_version"] = gpus[0]["driver_version"]
        self.facts["gpus"] = gpus
        self.facts["nvidia"] = nvidia

        need = self.p["require_gpu"]
        if gpus:
            names = ", ".join(g["name"] for g in gpus)
            self.check("gpu", True, "%d GPU%s: %s (driver %s)" % (len(gpus), "" if len(gpus) == 1 else "s", names, nvidia["driver_version"]))
        elif smi:
            self.check("gpu", not need, "nvidia-smi found no usable GPU%s%s" % (
                ": %s" % nvidia["error"] if nvidia["error"] else "", "" if not need else "; require_gpu is set"))
        else:
            self.check("gpu", not need, "no nvidia-smi on this host (no NVIDIA driver)%s" % ("; require_gpu is set" if need else ""))

        if nvidia["runtime"]:
            self.check("nvidia_runtime", True, "Docker has the nvidia runtime registered")
        else:
            self.check("nvidia_runtime", not need, "Docker has no nvidia runtime (runtimes: %s)%s" % (
                ", ".join(self.facts["docker"]["runtimes"]) or "unknown",
                "; install the NVIDIA Container Toolkit and run nvidia-ctk runtime configure --runtime=docker" if need else ""))

        if self.p["required_cuda"]:
            have = nvidia["cuda_version"]
            if have is None:
                self.check("cuda", False, "CUDA %s is required but no NVIDIA driver reports a CUDA version: install a driver that supports "
                           "CUDA %s" % (self.p["required_cuda"], self.p["required_cuda"]))
            elif version_at_least(have, self.p["required_cuda"]):
                self.check("cuda", True, "driver %s supports CUDA up to %s (>= %s)" % (nvidia["driver_version"], have, self.p["required_cuda"]))
            else:
                self.check("cuda", False, "driver %s supports CUDA up to %s, but %s is required: upgrade the driver or use a torch build for CUDA %s"
                           % (nvidia["driver_version"], have, self.p["required_cuda"], have))

    # -- disk, ports, machine --------------------------------------------------------------------------
    def disk_facts(self):
        path = self.p["disk_path"] or self.facts["docker"]["root_dir"] or "/"
        probe = path
        while not os.path.exists(probe) and os.path.dirname(probe) != probe:
            probe = os.path.dirname(probe)
        usage = shutil.disk_usage(probe)
        free_gb = round(usage.free / GIB, 1)
        self.facts["disk"] = dict(path=path, measured_path=probe, free_gb=free_gb, total_gb=round(usage.total / GIB, 1))
        need = self.p["required_disk_gb"]
        if need is not None:
            self.check("disk", usage.free / GIB >= need, "%.1f GiB free on the file system of %s, %s %.1f GiB needed"
                       % (usage.free / GIB, path, ">=" if usage.free / GIB >= need else "but", need))

    def port_facts(self):
        listening = {}
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as fh:
                    for port, addrs in parse_proc_net_tcp(fh.read()).items():
                        listening.setdefault(port, []).extend(addrs)
            except (IOError, OSError):
                continue
        owners = published_ports(self._containers)
        ports = {}
        for port in self.p["ports"]:
            addrs = sorted(set(listening.get(port, [])))
            names = owners.get(port, [])
            taken = bool(addrs or names)
            allowed = taken and owner_allowed(names, self.p["allow_port_owners"])
            ports[str(port)] = dict(free=not taken, listening=addrs, containers=names)
            if not taken:
                self.check("port_%d" % port, True, "port %d is free" % port)
            elif allowed:
                self.check("port_%d" % port, True, "port %d is held by %s, which allow_port_owners allows" % (port, ", ".join(names)))
            else:
                who = "published by container %s" % ", ".join(names) if names else "a process listens on %s" % ", ".join(addrs)
                self.check("port_%d" % port, False, "port %d is taken (%s)" % (port, who))
        self.facts["ports"] = ports

    def machine_facts(self):
        self.facts["cpu_count"] = os.cpu_count()
        mem = None
        try:
            with open("/proc/meminfo") as fh:
                for line in fh:
                    if line.startswith("MemTotal:"):
                        mem = round(int(line.split()[1]) * 1024 / GIB, 1)
                        break
        except (IOError, OSError, ValueError):
            pass
        self.facts["memory_gb"] = mem

    def run(self):
        self.docker_facts()
        self.buildx_facts()
        self.gpu_facts()
        self.disk_facts()
        self.port_facts()
        self.machine_facts()
        failed = [c["name"] for c in self.checks if not c["passed"]]
        result = dict(changed=False, ansible_facts=dict(ktrdr_host=self.facts), checks=self.checks, failed_checks=failed)
        if failed and self.p["fail_on_failed_checks"]:
            self.module.fail_json(msg="Host preflight failed: " + "; ".join(c["detail"] for c in self.checks if not c["passed"]), **result)
        result["msg"] = "all %d checks passed" % len(self.checks) if not failed else "%d of %d checks failed: %s" % (
            len(failed), len(self.checks), ", ".join(failed))
        self.module.exit_json(**result)


def main():
    argument_spec = _docker.docker_argument_spec()
    argument_spec.update(
        min_docker_version=dict(type="str"),
        require_buildx=dict(type="bool", default=False),
        require_gpu=dict(type="bool", default=False),
        required_cuda=dict(type="str"),
        required_disk_gb=dict(type="float"),
        disk_path=dict(type="path"),
        ports=dict(type="list", elements="int", default=[]),
        allow_port_owners=dict(type="list", elements="str", default=[]),
        fail_on_failed_checks=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    _docker.check_module_params(module)
    bad = [p for p in module.params["ports"] if not 0 < p < 65536]
    if bad:
        module.fail_json(msg="ports must be TCP port numbers 1-65535, got %s" % ", ".join(map(str, bad)))
    HostFacts(module).run()


if __name__ == "__main__":
    main()
