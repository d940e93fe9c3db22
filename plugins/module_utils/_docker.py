# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
#
# This module util is PRIVATE to the ktrdr.ops collection. It may change or go away
# without notice; do not use it from other collections.
"""The little Docker this collection's modules need: the shared engine options, a client built from them,
a one-shot container, an exec, an exec into a file.

Built on the Docker SDK for Python. Kept apart from community.docker on purpose: its module
utils are private to it. The engine options are a lean subset of community.docker's (same names,
same environment variables) so that a play can set both collections' modules the same way.
"""

from __future__ import annotations

import os
import uuid

from ansible.module_utils.errors import AnsibleFallbackNotFound

try:
    import docker
    import docker.tls
    import requests.adapters  # a dependency of the SDK
    from docker.errors import APIError, DockerException, ImageNotFound, NotFound  # noqa: F401  pylint: disable=unused-import

    HAS_DOCKER_SDK = True
    DOCKER_SDK_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the managed host
    HAS_DOCKER_SDK = False
    DOCKER_SDK_ERROR = str(exc)
    APIError = DockerException = ImageNotFound = NotFound = Exception
    docker = None
    requests = None

LABEL = "io.ktrdr.ops"

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DEFAULT_DOCKER_TIMEOUT = 60

# The TLS files and the name each one has in a DOCKER_CERT_PATH directory (the docker CLI's layout).
CERT_FILES = (("ca_path", "ca.pem"), ("client_cert", "cert.pem"), ("client_key", "key.pem"))


def _env_fallback(*names):
    """Like env_fallback, but a variable set to the empty string counts as unset (as for the docker CLI)."""
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    raise AnsibleFallbackNotFound


def docker_argument_spec():
    """The engine options every module that talks to Docker shares (the ``ktrdr.ops._docker`` doc fragment).

    The engine's request timeout is ``docker_timeout``, not community.docker's ``timeout``: in
    ktrdr.ops.migration ``timeout`` is the deadline of the whole run.
    """
    return dict(
        docker_host=dict(type="str", default=DEFAULT_DOCKER_HOST, fallback=(_env_fallback, ["DOCKER_HOST"])),
        docker_timeout=dict(type="int", default=DEFAULT_DOCKER_TIMEOUT, fallback=(_env_fallback, ["DOCKER_TIMEOUT"])),
        tls=dict(type="bool", default=False, fallback=(_env_fallback, ["DOCKER_TLS"])),
        validate_certs=dict(type="bool", default=False, aliases=["tls_verify"], fallback=(_env_fallback, ["DOCKER_TLS_VERIFY"])),
        ca_path=dict(type="path", aliases=["ca_cert", "tls_ca_cert"]),
        client_cert=dict(type="path", aliases=["tls_client_cert"]),
        client_key=dict(type="path", aliases=["tls_client_key"], no_log=False),
        tls_hostname=dict(type="str", fallback=(_env_fallback, ["DOCKER_TLS_HOSTNAME"])),
    )


class DockerConfigError(ValueError):
    """The engine options do not make sense (a missing certificate, a bad timeout). ``str()`` says which and why."""


def tls_settings(params, environ=None):
    """What the engine options ask for: None for a plain connection, else a dict.

    ``verify`` (check the engine's certificate), ``ca_cert``, ``client_cert`` (a (cert, key) tuple or None)
    and ``hostname`` (the name the certificate must carry, only when verifying). A file not given is
    taken from E(DOCKER_CERT_PATH) (ca.pem, cert.pem, key.pem) when that directory has it, as the docker
    CLI does. A file that is given must exist. Raises DockerConfigError.
    """
    environ = os.environ if environ is None else environ
    verify = bool(params.get("validate_certs"))
    use_tls = verify or bool(params.get("tls"))
    given = [opt for opt, dummy in CERT_FILES if params.get(opt)]
    if not use_tls:
        if given:
            raise DockerConfigError(
                "%s set, but neither tls nor validate_certs is true, so the connection to %s would not use TLS: set "
                "validate_certs=true (TLS, and check the engine's certificate) or tls=true (TLS only)"
                % (" and ".join(given), params.get("docker_host")))
        return None
    cert_dir = environ.get("DOCKER_CERT_PATH") or None
    files = {}
    for opt, name in CERT_FILES:
        path = params.get(opt)
        if path:
            if not os.path.isfile(path):
                raise DockerConfigError("%s %s does not exist or is not a file%s" % (
                    opt, path, " (DOCKER_CERT_PATH is %s)" % cert_dir if cert_dir else ""))
            if not os.access(path, os.R_OK):
                raise DockerConfigError("%s %s cannot be read by this user" % (opt, path))
        elif cert_dir and os.path.isfile(os.path.join(cert_dir, name)):
            path = os.path.join(cert_dir, name)
        files[opt] = path
    if bool(files["client_cert"]) != bool(files["client_key"]):
        have, lack = ("client_cert", "client_key") if files["client_cert"] else ("client_key", "client_cert")
        raise DockerConfigError("%s %s is set but %s is not: a client certificate needs its key (and the key its "
                                "certificate); set both%s" % (have, files[have], lack,
                                                              " (DOCKER_CERT_PATH %s has no %s)" % (cert_dir, dict(CERT_FILES)[lack])
                                                              if cert_dir else ""))
    return dict(
        verify=verify,
        ca_cert=files["ca_path"],
        client_cert=(files["client_cert"], files["client_key"]) if files["client_cert"] else None,
        hostname=(params.get("tls_hostname") or None) if verify else None,
    )


def check_params(params, environ=None):
    """Validate the engine options; return tls_settings(). Raises DockerConfigError."""
    if not (params.get("docker_host") or "").strip():
        raise DockerConfigError("docker_host is empty: set it (or DOCKER_HOST) to the engine, e.g. %s or tcp://host:2376"
                                % DEFAULT_DOCKER_HOST)
    timeout = params.get("docker_timeout")
    if timeout is not None and timeout <= 0:
        raise DockerConfigError("docker_timeout must be a positive number of seconds, got %s" % timeout)
    return tls_settings(params, environ)


def check_module_params(module):
    """check_params() for a module: fails it with the message on bad engine options."""
    try:
        return check_params(module.params)
    except DockerConfigError as exc:
        module.fail_json(msg=str(exc))


def _tls_config(settings):
    """A docker.tls.TLSConfig for tls_settings() whose settings hold for every request.

    The SDK puts them on the requests Session (``verify``, ``cert``), and requests lets
    E(REQUESTS_CA_BUNDLE) or E(CURL_CA_BUNDLE) override a Session's ``verify``: on a host with either
    set, ca_path would be ignored and validate_certs=false would still verify. So an adapter for
    ``https://`` passes them to each request itself, and checks ``hostname`` (tls_hostname) when set.
    """
    verify = (settings["ca_cert"] or True) if settings["verify"] else False

    class _EngineTLSAdapter(requests.adapters.HTTPAdapter):
        def __init__(self, **kwargs):
            self.assert_hostname = settings["hostname"]
            super().__init__(**kwargs)

        def init_poolmanager(self, *args, **kwargs):  # pylint: disable=signature-differs
            if self.assert_hostname:
                kwargs["assert_hostname"] = self.assert_hostname
            return super().init_poolmanager(*args, **kwargs)

        def send(self, request, **kwargs):  # pylint: disable=arguments-differ
            kwargs["verify"] = verify
            kwargs["cert"] = settings["client_cert"]
            return super().send(request, **kwargs)

    class _TLSConfig(docker.tls.TLSConfig):
        # configure_client() runs in the client's constructor, before its first request (the API
        # version), so the adapter is in place for every request. (The SDK dropped its own
        # assert_hostname in 7.0.)
        def configure_client(self, client):
            super().configure_client(client)
            client.mount("https://", _EngineTLSAdapter())

    return _TLSConfig(client_cert=settings["client_cert"], ca_cert=settings["ca_cert"], verify=settings["verify"])


def client_from_params(params, timeout=None, version=None, environ=None):
    """A docker.DockerClient for the engine options (``timeout`` overrides docker_timeout).

    Raises DockerConfigError for bad options, DockerException when the engine does not answer
    (the SDK asks it for its API version unless ``version`` is given).
    """
    settings = check_params(params, environ)
    tls = False
    if settings is not None:
        try:
            tls = _tls_config(settings)
        except docker.errors.TLSParameterError as exc:  # pragma: no cover - tls_settings() checks the files first
            raise DockerConfigError("TLS settings for %s: %s" % (params["docker_host"], exc))
    kwargs = dict(base_url=params["docker_host"], timeout=int(timeout or params.get("docker_timeout") or DEFAULT_DOCKER_TIMEOUT), tls=tls)
    if version:
        kwargs["version"] = version
    return docker.DockerClient(**kwargs)


def cli_invocation(params, environ=None):
    """How to point the docker CLI at the same engine: (global arguments, environment update).

    Verification goes through E(DOCKER_TLS_VERIFY), TLS alone through C(--tls) (E(DOCKER_TLS) is newer than
    some CLIs); both variables are set to the empty string when off, so an inherited value does not turn
    them on. The files go as C(--tlscacert), C(--tlscert) and C(--tlskey).
    The CLI cannot check another name than the URL's (tls_hostname): that raises DockerConfigError.
    """
    settings = check_params(params, environ)
    env = {"DOCKER_HOST": params["docker_host"], "DOCKER_TLS": "", "DOCKER_TLS_VERIFY": ""}
    args = []
    if settings is not None:
        if settings["hostname"]:
            raise DockerConfigError("tls_hostname needs the Docker SDK for Python (python3-docker): the docker CLI can only check "
                                    "the engine's certificate against the host name in docker_host")
        if settings["verify"]:
            env["DOCKER_TLS_VERIFY"] = "1"
        else:
            args.append("--tls")
        if settings["ca_cert"]:
            args += ["--tlscacert", settings["ca_cert"]]
        if settings["client_cert"]:
            args += ["--tlscert", settings["client_cert"][0], "--tlskey", settings["client_cert"][1]]
    return args, env


class DockerRunError(Exception):
    """A container could not be run, or did not finish in time. ``output`` holds what it printed."""

    def __init__(self, message, output=None):
        super().__init__(message)
        self.output = output


def network_of(cli, container_name):
    """First user-defined network of a container (the DB's network), or None."""
    try:
        c = cli.containers.get(container_name)
    except (NotFound, APIError):
        return None
    nets = list(((c.attrs.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    user_nets = [n for n in nets if n not in ("bridge", "host", "none")]
    return (user_nets or [None])[0]


def run_oneshot(cli, image, command, environment, network=None, workdir=None, timeout=600, purpose="oneshot", user=None,
                entrypoint=None, volumes=None):
    """Run ``command`` in a fresh container of ``image``; return (exit code, combined output).

    ``volumes`` as the SDK takes them ({name: {"bind": path, "mode": "ro"}}). The container is always
    removed. On timeout it is killed and DockerRunError carries its output so far.
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
    if entrypoint:
        kwargs["entrypoint"] = entrypoint
    if volumes:
        kwargs["volumes"] = volumes
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
