# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
#
# This doc fragment is PRIVATE to the ktrdr.ops collection; do not use it from other collections.

from __future__ import annotations


class ModuleDocFragment:
    # The engine options of every module that talks to a Docker engine
    # (plugins/module_utils/_docker.py, docker_argument_spec()). Names and environment variables
    # follow community.docker's docker fragment, except the request timeout (docker_timeout).
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker engine to talk to, as a URL or a Unix socket, for example V(unix:///var/run/docker.sock),
        V(tcp://192.0.2.23:2376) or V(ssh://user@host).
      - With TLS (O(tls) or O(validate_certs)) a C(tcp://) URL is used as C(https://).
      - If not set, the environment variable E(DOCKER_HOST) is used, then the default.
    type: str
    default: unix:///var/run/docker.sock
  docker_timeout:
    description:
      - Seconds to wait for the engine to answer one API request.
      - If not set, the environment variable E(DOCKER_TIMEOUT) is used, then the default.
      - Named C(docker_timeout), not C(timeout) as in community.docker's modules, because in M(ktrdr.ops.migration)
        C(timeout) is the deadline of the whole run.
      - Only the Docker SDK for Python uses it; the C(docker) CLI fallback has no request timeout.
    type: int
    default: 60
  tls:
    description:
      - Encrypt the connection to the engine with TLS, without checking the engine's certificate.
      - O(validate_certs=true) implies TLS (and checks the certificate), whatever this option says.
      - If not set, the environment variable E(DOCKER_TLS) is used, then the default.
    type: bool
    default: false
  validate_certs:
    description:
      - Use TLS and check the engine's certificate against O(ca_path) (or the system's CA certificates) and the host name
        (that of O(docker_host), or O(tls_hostname)).
      - If not set, the environment variable E(DOCKER_TLS_VERIFY) is used, then the default.
    type: bool
    default: false
    aliases: [tls_verify]
  ca_path:
    description:
      - A PEM file with the CA certificate that signs the engine's certificate. Used when O(validate_certs=true).
      - If not set and the environment variable E(DOCKER_CERT_PATH) names a directory with a C(ca.pem), that file is used.
      - When set, the file must exist; so must O(client_cert) and O(client_key).
      - Setting O(ca_path), O(client_cert) or O(client_key) without O(tls) or O(validate_certs) is an error, not a plain connection.
    type: path
    aliases: [ca_cert, tls_ca_cert]
  client_cert:
    description:
      - A PEM file with the client certificate to present to the engine (an engine started with C(--tlsverify) asks for one).
      - If not set and E(DOCKER_CERT_PATH) names a directory with a C(cert.pem), that file is used.
      - Needs O(client_key).
    type: path
    aliases: [tls_client_cert]
  client_key:
    description:
      - A PEM file with the private key of O(client_cert).
      - If not set and E(DOCKER_CERT_PATH) names a directory with a C(key.pem), that file is used.
    type: path
    aliases: [tls_client_key]
  tls_hostname:
    description:
      - The name the engine's certificate must carry, when it is not the host name in O(docker_host) (for example an
        engine reached by IP address). Only used with O(validate_certs=true).
      - If not set, the environment variable E(DOCKER_TLS_HOSTNAME) is used.
      - Needs the Docker SDK for Python; with the C(docker) CLI fallback, setting it with O(validate_certs=true) is an error.
    type: str
notes:
  - The engine options are a subset of those of community.docker's modules, with the same names (except O(docker_timeout))
    and the same environment variables, so that a play can point both at an engine the same way.
  - An empty environment variable counts as unset.
"""
