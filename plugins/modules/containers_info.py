#!/usr/bin/python
# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: containers_info
short_description: State of every container of a ktrdr environment on a host, in one call
version_added: 0.1.0
description:
  - Lists the containers that carry every label of O(labels) (running or not) and inspects each one, in one module run,
    where C(community.docker.docker_container_info) needs one run per container.
  - Returns only what a deployment check needs (state, health, start time, restarts, image, labels, and on request the
    last lines of each log), never the containers' environment. Values listed in O(redact) are masked in the logs.
author:
  - ktrdr.ops maintainers (@ktrdr-ops)
extends_documentation_fragment:
  - ktrdr.ops._attributes
  - ktrdr.ops._attributes.INFO_MODULE
  - ktrdr.ops._attributes.ACTIONGROUP_DOCKER
  - ktrdr.ops._docker
options:
  labels:
    description:
      - Labels every listed container carries, as C(key=value) (or C(key) for any value), for example
        C(io.ktrdr.project=ktrdr-local).
    type: list
    elements: str
    required: true
  log_lines:
    description:
      - Also return the last this many lines of each container's log (stdout and stderr) as RV(containers[].log_tail), so
        that a failed health wait can quote why a container crash-loops. V(0) reads no log.
    type: int
    default: 0
  redact:
    description:
      - Strings (secrets such as the database password) replaced by C(********) wherever they appear in the returned logs.
    type: list
    elements: str
    default: []
requirements:
  - Docker SDK for Python on the managed host (Debian C(python3-docker); the C(ktrdr.ops.docker_host) role installs it), or
    else the C(docker) CLI.
notes:
  - With the C(docker) CLI fallback, the engine options reach the CLI as E(DOCKER_HOST), E(DOCKER_TLS_VERIFY), C(--tls),
    C(--tlscacert), C(--tlscert) and C(--tlskey); O(tls_hostname) needs the SDK.
seealso:
  - module: community.docker.docker_container_info
  - module: community.docker.docker_host_info
"""

EXAMPLES = r"""
- name: Read the state of the environment's containers on this host
  ktrdr.ops.containers_info:
    labels:
      - io.ktrdr.project=ktrdr-local
  register: containers

- name: Every container runs and is healthy (or has no health check)
  ansible.builtin.assert:
    that:
      - containers.containers | rejectattr('state', 'equalto', 'running') | list | length == 0
      - containers.containers | rejectattr('health', 'in', ['healthy', 'none']) | list | length == 0
"""

RETURN = r"""
containers:
  description: One entry per container, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Container name (without the leading C(/)).
      type: str
    id:
      description: Container id (64 hex digits).
      type: str
    image:
      description: The image the container was created from, as given (for example C(ktrdr-backend:3f2a9c1d0b7e)).
      type: str
    image_id:
      description: Id of that image.
      type: str
    state:
      description: C(created), C(running), C(paused), C(restarting), C(removing), C(exited) or C(dead).
      type: str
    health:
      description: C(starting), C(healthy), C(unhealthy), or C(none) when the container has no health check.
      type: str
    health_log:
      description: Output of the last health check (trimmed to 500 characters); empty without one.
      type: str
    started_at:
      description: When the container last started (ISO 8601, as Docker reports it).
      type: str
    finished_at:
      description: When it last stopped (Docker's zero time C(0001-01-01T00:00:00Z) if never).
      type: str
    exit_code:
      description: Exit code of the last run.
      type: int
    error:
      description: The engine's error when the container could not start (for example a port already in use); empty if none.
      type: str
    restart_count:
      description: How many times the engine restarted it (restart policy).
      type: int
    labels:
      description: The container's labels.
      type: dict
    log_tail:
      description: The last O(log_lines) lines of its log, O(redact) masked; empty with O(log_lines=0).
      type: str
  sample:
    - {name: ktrdr-local-backend, id: 3f2a..., image: "ktrdr-backend:3f2a9c1d0b7e", image_id: "sha256:9b1c...", state: running,
       health: healthy, health_log: "", started_at: "2026-11-22T21:55:02.123456789Z", finished_at: "0001-01-01T00:00:00Z",
       exit_code: 0, error: "", restart_count: 0, labels: {io.ktrdr.component: backend, io.ktrdr.project: ktrdr-local}}
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ktrdr.ops.plugins.module_utils import _docker
from ansible_collections.ktrdr.ops.plugins.module_utils._docker import DOCKER_SDK_ERROR, HAS_DOCKER_SDK, NotFound


def summary(inspect):
    """The fields a deployment check needs from one `docker inspect` (never Config.Env: it holds secrets)."""
    state = inspect.get("State") or {}
    health = state.get("Health") or {}
    log = health.get("Log") or []
    config = inspect.get("Config") or {}
    return dict(
        name=(inspect.get("Name") or "").lstrip("/"),
        id=inspect.get("Id"),
        image=config.get("Image"),
        image_id=inspect.get("Image"),
        state=state.get("Status"),
        health=health.get("Status") or "none",
        health_log=((log[-1].get("Output") or "").strip()[-500:] if log else ""),
        started_at=state.get("StartedAt"),
        finished_at=state.get("FinishedAt"),
        exit_code=state.get("ExitCode"),
        error=state.get("Error") or "",
        restart_count=inspect.get("RestartCount", 0),
        labels=config.get("Labels") or {},
        log_tail=_text(inspect.get("_log_tail", "")),
    )


def _text(log):
    return log.decode("utf-8", "replace") if isinstance(log, bytes) else log


def redacted(text, secrets):
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    return text


def read_with_sdk(module):
    api = _docker.client_from_params(module.params).api
    found = []
    for c in api.containers(all=True, filters={"label": module.params["labels"]}):
        try:
            inspect = api.inspect_container(c["Id"])
            if module.params["log_lines"]:
                inspect["_log_tail"] = api.logs(c["Id"], stdout=True, stderr=True, tail=module.params["log_lines"])
            found.append(inspect)
        except NotFound:
            continue  # removed between the list and the inspection
    return found


def read_with_cli(module, docker_bin):
    try:
        tls_args, env = _docker.cli_invocation(module.params)
    except _docker.DockerConfigError as exc:
        module.fail_json(msg=str(exc))
    docker_cmd = [docker_bin] + tls_args
    args = docker_cmd + ["ps", "--all", "--quiet", "--no-trunc"]
    for label in module.params["labels"]:
        args += ["--filter", "label=%s" % label]
    rc, out, err = module.run_command(args, environ_update=env)
    if rc != 0:
        raise RuntimeError(err.strip() or out.strip())
    ids = out.split()
    if not ids:
        return []
    # A container removed in between makes `docker inspect` exit 1 but still print the others.
    rc, out, err = module.run_command(docker_cmd + ["inspect"] + ids, environ_update=env)
    try:
        found = json.loads(out or "[]")
    except ValueError:
        raise RuntimeError(err.strip() or "docker inspect printed no JSON")
    for inspect in found if module.params["log_lines"] else []:
        rc, out, err = module.run_command(docker_cmd + ["logs", "--tail", str(module.params["log_lines"]), inspect["Id"]],
                                          environ_update=env)
        inspect["_log_tail"] = out + err
    return found


def main():
    argument_spec = _docker.docker_argument_spec()
    argument_spec.update(
        labels=dict(type="list", elements="str", required=True),
        log_lines=dict(type="int", default=0),
        redact=dict(type="list", elements="str", default=[], no_log=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    _docker.check_module_params(module)
    if not module.params["labels"]:
        module.fail_json(msg="labels must name at least one label (key=value), for example io.ktrdr.project=ktrdr-local")
    docker_bin = module.get_bin_path("docker")
    if not HAS_DOCKER_SDK and not docker_bin:
        module.fail_json(msg="ktrdr.ops.containers_info needs the Docker SDK for Python (%s) or the docker CLI on the managed "
                             "host: install python3-docker (the ktrdr.ops.docker_host role does)" % DOCKER_SDK_ERROR)
    try:
        found = read_with_sdk(module) if HAS_DOCKER_SDK else read_with_cli(module, docker_bin)
    except Exception as exc:  # the SDK raises its own errors and requests' ones; each means "cannot ask the engine"
        module.fail_json(msg="Cannot read the containers from the Docker engine at %s: %s. Is the engine running, and may "
                             "this user use it (group docker)?" % (module.params["docker_host"], exc))
    containers = sorted((summary(c) for c in found), key=lambda c: c["name"])
    for c in containers:
        c["log_tail"] = redacted(c["log_tail"], module.params["redact"]).strip()
    module.exit_json(changed=False, containers=containers)


if __name__ == "__main__":
    main()
