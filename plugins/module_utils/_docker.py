# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
#
# This module util is PRIVATE to the ktrdr.ops collection. It may change or go away
# without notice; do not use it from other collections.
"""The little Docker this collection's modules need: a one-shot container, an exec, an exec into a file.

Built on the Docker SDK for Python. Kept apart from community.docker on purpose: its module
utils are private to it.
"""

from __future__ import annotations

import os
import uuid

try:
    import docker
    from docker.errors import APIError, DockerException, ImageNotFound, NotFound  # noqa: F401  pylint: disable=unused-import

    HAS_DOCKER_SDK = True
    DOCKER_SDK_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the managed host
    HAS_DOCKER_SDK = False
    DOCKER_SDK_ERROR = str(exc)
    APIError = DockerException = ImageNotFound = NotFound = Exception
    docker = None

LABEL = "io.ktrdr.ops"


class DockerRunError(Exception):
    """A container could not be run, or did not finish in time. ``output`` holds what it printed."""

    def __init__(self, message, output=None):
        super().__init__(message)
        self.output = output


def client(docker_host, timeout):
    return docker.DockerClient(base_url=docker_host, timeout=int(timeout))


def network_of(cli, container_name):
    """First user-defined network of a container (the DB's network), or None."""
    try:
        c = cli.containers.get(container_name)
    except (NotFound, APIError):
        return None
    nets = list(((c.attrs.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    user_nets = [n for n in nets if n not in ("bridge", "host", "none")]
    return (user_nets or [None])[0]


def run_oneshot(cli, image, command, environment, network=None, workdir=None, timeout=600, purpose="oneshot", user=None):
    """Run ``command`` in a fresh container of ``image``; return (exit code, combined output).

    The container is always removed. On timeout it is killed and DockerRunError carries its output so far.
    """
    name = "ktrdr-ops-%s-%s" % (purpose, uuid.uuid4().hex[:8])
    kwargs = dict(
        command=command,
        environment=environment,
        working_dir=workdir,
        detach=True,
        name=name,
        labels={LABEL: purpose},
    )
    if network:
        kwargs["network"] = network
    if user:
        kwargs["user"] = user
    container = cli.containers.run(image, **kwargs)
    try:
        try:
            status = container.wait(timeout=timeout)
        except Exception as exc:  # requests' ReadTimeout/ConnectionError, depending on the SDK version
            output = _logs(container)
            try:
                container.kill()
            except (APIError, NotFound):
                pass
            raise DockerRunError("container %s did not finish within %ss (%s); it was killed" % (name, timeout, type(exc).__name__), output)
        return status.get("StatusCode"), _logs(container)
    finally:
        try:
            container.remove(force=True)
        except (APIError, NotFound):
            pass


def _logs(container):
    try:
        return container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
    except (APIError, NotFound):
        return ""


def exec_in(cli, container_name, command, environment=None, workdir=None, user=None):
    """Run ``command`` in a running container; return (exit code, combined output)."""
    c = running_container(cli, container_name)
    res = c.exec_run(command, environment=environment, workdir=workdir, user=user or "", demux=False)
    return res.exit_code, (res.output or b"").decode("utf-8", "replace")


def running_container(cli, container_name):
    try:
        c = cli.containers.get(container_name)
    except NotFound:
        raise DockerRunError("container %s does not exist" % container_name)
    if c.status != "running":
        raise DockerRunError("container %s is %s, not running" % (container_name, c.status))
    return c


def exec_to_file(cli, container_name, command, dest_path, environment=None, mode=0o600):
    """Stream the stdout of ``command`` run in a container into ``dest_path``; return (exit code, stderr, bytes).

    The file is created with ``mode`` (a database dump holds the data); it is removed again when the command fails.
    """
    c = running_container(cli, container_name)
    api = cli.api
    exec_id = api.exec_create(c.id, command, environment=environment, stdout=True, stderr=True)["Id"]
    stream = api.exec_start(exec_id, stream=True, demux=True)
    err_chunks = []
    written = 0
    fd = os.open(dest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            for out, err in stream:
                if out:
                    fh.write(out)
                    written += len(out)
                if err:
                    err_chunks.append(err)
        rc = api.exec_inspect(exec_id).get("ExitCode")
    except BaseException:
        _unlink(dest_path)
        raise
    stderr = b"".join(err_chunks).decode("utf-8", "replace")
    if rc != 0:
        _unlink(dest_path)
    return rc, stderr, written


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass
