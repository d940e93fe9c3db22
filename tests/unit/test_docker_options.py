"""The shared Docker engine options: argument spec, env fallbacks, TLS settings, a real TLS engine, docs in step with the spec.

No mocks of the Docker SDK: the TLS tests run a small HTTPS server on 127.0.0.1 that answers the two
requests the SDK sends (GET /version, GET /_ping), with certificates made here by the cryptography package.
"""

import datetime
import importlib
import json
import os
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.ktrdr.ops.plugins.doc_fragments._docker import ModuleDocFragment
from ansible_collections.ktrdr.ops.plugins.module_utils import _docker
from ansible_collections.ktrdr.ops.plugins.module_utils._docker import (
    DockerConfigError,
    check_params,
    cli_invocation,
    client_from_params,
    docker_argument_spec,
    tls_settings,
)

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

MODULES = ("migration", "containers_info", "host_facts")
ENV_VARS = ("DOCKER_HOST", "DOCKER_TIMEOUT", "DOCKER_TLS", "DOCKER_TLS_VERIFY", "DOCKER_TLS_HOSTNAME", "DOCKER_CERT_PATH")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """The tests set the Docker variables they need; none leak in from the machine (nor a proxy for 127.0.0.1)."""
    for name in ENV_VARS + ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def validate(params, spec=None, **kwargs):
    result = ArgumentSpecValidator(spec or docker_argument_spec(), **kwargs).validate(params)
    assert not result.error_messages, result.error_messages
    return result


def defaults(**overrides):
    params = validate({}).validated_parameters
    params.update(overrides)
    return params


# -- certificates ---------------------------------------------------------------------------------


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, issuer_name, issuer_key, key, ca=False, dns=None, usage=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                                          encipher_only=False, decipher_only=False), critical=True)
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    if usage:
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(path, cert=None, key=None):
    with open(path, "wb") as fh:
        if cert is not None:
            fh.write(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA; an engine certificate for docker.test and localhost (no IP address); a client certificate; an unrelated CA."""
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("ktrdr-ops test CA", _name("ktrdr-ops test CA"), ca_key, ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = _cert("docker.test", ca.subject, ca_key, srv_key, dns=["docker.test", "localhost"], usage=ExtendedKeyUsageOID.SERVER_AUTH)
    cli_key = ec.generate_private_key(ec.SECP256R1())
    cli = _cert("ktrdr-ops client", ca.subject, ca_key, cli_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _cert("another CA", _name("another CA"), other_key, other_key, ca=True)
    # A DOCKER_CERT_PATH directory laid out as the docker CLI expects.
    cert_dir = d / "certs"
    cert_dir.mkdir()
    return dict(
        dir=str(d),
        ca=_write(d / "ca-file.pem", ca),
        server_cert=_write(d / "server-cert.pem", srv),
        server_key=_write(d / "server-key.pem", key=srv_key),
        client_cert=_write(d / "client-cert.pem", cli),
        client_key=_write(d / "client-key.pem", key=cli_key),
        other_ca=_write(d / "other-ca.pem", other),
        cert_dir=str(cert_dir),
        cert_dir_ca=_write(cert_dir / "ca.pem", ca),
        cert_dir_cert=_write(cert_dir / "cert.pem", cli),
        cert_dir_key=_write(cert_dir / "key.pem", key=cli_key),
    )


# -- a TLS engine -----------------------------------------------------------------------------------


class FakeEngine(BaseHTTPRequestHandler):
    """Answers what the SDK (and the docker CLI) ask first: the API version and a ping. Records the client's certificate."""

    def do_GET(self):  # noqa: N802 (the stdlib's name)
        self.server.peers.append(self.connection.getpeercert())
        path = self.path.split("?")[0]
        if path.endswith("/_ping"):
            self._send(b"OK", "text/plain")
        elif path.endswith("/version"):
            self._send(json.dumps({"Version": "99.0.0-fake", "ApiVersion": "1.44", "MinAPIVersion": "1.24", "Os": "linux",
                                   "Arch": "amd64", "KernelVersion": "6.0", "GoVersion": "go1", "GitCommit": "fake",
                                   "BuildTime": "2026-01-01T00:00:00Z", "Components": []}).encode(), "application/json")
        else:
            self.send_error(404)

    do_HEAD = do_GET

    def _send(self, body, ctype):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Api-Version", "1.44")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def engine(pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["server_cert"], pki["server_key"])
    ctx.load_verify_locations(pki["ca"])
    ctx.verify_mode = ssl.CERT_OPTIONAL  # a client certificate, when presented, must be the CA's
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEngine)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.peers = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield dict(url="tcp://127.0.0.1:%d" % server.server_address[1], server=server)
    server.shutdown()
    server.server_close()


def _client_cn(peer):
    return dict(x[0] for x in (peer or {}).get("subject", ())).get("commonName")


# -- the argument spec --------------------------------------------------------------------------------


def test_defaults_like_community_docker():
    p = validate({}).validated_parameters
    assert p == dict(docker_host="unix:///var/run/docker.sock", docker_timeout=60, tls=False, validate_certs=False,
                     ca_path=None, client_cert=None, client_key=None, tls_hostname=None)
    assert tls_settings(p) is None


def test_env_fallbacks_apply(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://engine.example:2376")
    monkeypatch.setenv("DOCKER_TIMEOUT", "7")
    monkeypatch.setenv("DOCKER_TLS", "1")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "yes")
    monkeypatch.setenv("DOCKER_TLS_HOSTNAME", "docker.test")
    p = validate({}).validated_parameters
    assert p["docker_host"] == "tcp://engine.example:2376"
    assert p["docker_timeout"] == 7
    assert p["tls"] is True and p["validate_certs"] is True
    assert p["tls_hostname"] == "docker.test"


def test_task_values_win_over_env_and_empty_env_counts_as_unset(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://from-env:2375")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "")  # the docker CLI reads an empty value as unset too
    monkeypatch.setenv("DOCKER_TIMEOUT", "")
    p = validate({"docker_host": "unix:///run/user/1000/docker.sock"}).validated_parameters
    assert p["docker_host"] == "unix:///run/user/1000/docker.sock"
    assert p["validate_certs"] is False and p["docker_timeout"] == 60


def test_aliases_and_bad_values():
    p = validate({"tls_verify": True, "tls_ca_cert": "/x/ca.pem", "tls_client_cert": "/x/c.pem", "tls_client_key": "/x/k.pem"})
    assert p.validated_parameters["validate_certs"] is True
    assert p.validated_parameters["ca_path"] == "/x/ca.pem" and p.validated_parameters["client_key"] == "/x/k.pem"
    assert validate({"ca_cert": "/y/ca.pem"}).validated_parameters["ca_path"] == "/y/ca.pem"
    bad = ArgumentSpecValidator(docker_argument_spec()).validate({"docker_timeout": "soon"})
    assert any("docker_timeout" in m for m in bad.error_messages)
    with pytest.raises(DockerConfigError, match="docker_timeout must be a positive"):
        check_params(defaults(docker_timeout=0))
    with pytest.raises(DockerConfigError, match="docker_host is empty"):
        check_params(defaults(docker_host=" "))


class _Spec(Exception):
    pass


def module_spec(monkeypatch, name):
    """The argument spec (and its constraints) a module's main() hands to AnsibleModule."""
    mod = importlib.import_module("ansible_collections.ktrdr.ops.plugins.modules.%s" % name)

    def capture(**kwargs):
        raise _Spec(kwargs)

    monkeypatch.setattr(mod, "AnsibleModule", capture)
    with pytest.raises(_Spec) as caught:
        mod.main()
    return mod, caught.value.args[0]


@pytest.mark.parametrize("name", MODULES)
def test_every_docker_module_merges_the_shared_spec(monkeypatch, name):
    mod, kwargs = module_spec(monkeypatch, name)
    spec = kwargs["argument_spec"]
    for opt, definition in docker_argument_spec().items():
        assert spec[opt] == definition, "%s: %s differs from the shared spec" % (name, opt)
    doc = yaml.safe_load(mod.DOCUMENTATION)
    assert "ktrdr.ops._docker" in doc["extends_documentation_fragment"]
    assert not set(doc["options"]) & set(docker_argument_spec()), "%s documents a shared option itself" % name
    assert set(doc["options"]) | set(docker_argument_spec()) == set(spec)
    # The merged spec validates a task the way AnsibleModule would.
    constraints = {k: v for k, v in kwargs.items() if k in ("mutually_exclusive", "required_one_of", "required_together")}
    task = {"migration": {"image": "ktrdr-backend:x", "db_host": "db"}, "containers_info": {"labels": ["a=b"]}}.get(name, {})
    p = validate(dict(task, tls_verify=True, docker_host="tcp://h:2376"), spec, **constraints).validated_parameters
    assert p["validate_certs"] is True and p["docker_host"] == "tcp://h:2376" and p["docker_timeout"] == 60


def test_migration_keeps_its_deadline_and_hides_env(monkeypatch):
    mod, kwargs = module_spec(monkeypatch, "migration")
    spec = kwargs["argument_spec"]
    assert spec["timeout"]["default"] == 600.0 and spec["docker_timeout"]["default"] == 60
    assert spec["env"]["no_log"] is True
    res = validate({"image": "i", "db_host": "db", "env": {"KTRDR_API_TOKEN": "s3cr3t-value"}, "timeout": 30}, spec,
                   mutually_exclusive=kwargs["mutually_exclusive"], required_one_of=kwargs["required_one_of"])
    assert "s3cr3t-value" in res._no_log_values
    assert res.validated_parameters["timeout"] == 30.0 and res.validated_parameters["docker_timeout"] == 60
    attrs = yaml.safe_load(mod.DOCUMENTATION)["attributes"]
    assert attrs["check_mode"]["support"] == "partial"
    assert any("one-shot container" in d for d in attrs["check_mode"]["details"])


# -- the doc fragment cannot drift from the spec --------------------------------------------------------


def test_doc_fragment_matches_the_argument_spec():
    doc = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    spec = docker_argument_spec()
    assert sorted(doc) == sorted(spec)
    for name, definition in spec.items():
        d = doc[name]
        assert d["type"] == definition["type"], name
        assert d.get("default") == definition.get("default"), name
        assert sorted(d.get("aliases", [])) == sorted(definition.get("aliases", [])), name
        text = " ".join(d["description"])
        for var in (definition.get("fallback") or (None, []))[1]:
            assert "E(%s)" % var in text, "%s: the doc does not name its variable %s" % (name, var)
    for opt, fname in _docker.CERT_FILES:
        assert "E(DOCKER_CERT_PATH)" in " ".join(doc[opt]["description"]) and fname in " ".join(doc[opt]["description"])


# -- TLS settings from real files -------------------------------------------------------------------------


def test_tls_settings_from_files(pki):
    s = tls_settings(defaults(validate_certs=True, ca_path=pki["ca"], client_cert=pki["client_cert"], client_key=pki["client_key"],
                              tls_hostname="docker.test"))
    assert s == dict(verify=True, ca_cert=pki["ca"], client_cert=(pki["client_cert"], pki["client_key"]), hostname="docker.test")
    # TLS without verification: the name is not checked, so it is dropped.
    s = tls_settings(defaults(tls=True, tls_hostname="docker.test"))
    assert s == dict(verify=False, ca_cert=None, client_cert=None, hostname=None)
    cfg = _docker._tls_config(tls_settings(defaults(validate_certs=True, ca_path=pki["ca"], client_cert=pki["client_cert"],
                                                    client_key=pki["client_key"])))
    assert cfg.verify is True and cfg.ca_cert == pki["ca"] and cfg.cert == (pki["client_cert"], pki["client_key"])


def test_docker_cert_path_fills_in_what_is_not_given(pki, tmp_path):
    env = {"DOCKER_CERT_PATH": pki["cert_dir"]}
    s = tls_settings(defaults(validate_certs=True), environ=env)
    assert s["ca_cert"] == pki["cert_dir_ca"] and s["client_cert"] == (pki["cert_dir_cert"], pki["cert_dir_key"])
    s = tls_settings(defaults(validate_certs=True, ca_path=pki["ca"]), environ=env)
    assert s["ca_cert"] == pki["ca"]
    # A directory with only ca.pem: no client certificate, as the docker CLI does.
    only_ca = tmp_path / "only-ca"
    only_ca.mkdir()
    shutil.copy(pki["ca"], str(only_ca / "ca.pem"))
    s = tls_settings(defaults(validate_certs=True), environ={"DOCKER_CERT_PATH": str(only_ca)})
    assert s["ca_cert"] == str(only_ca / "ca.pem") and s["client_cert"] is None
    # Without TLS the directory is not looked at.
    assert tls_settings(defaults(), environ=env) is None


@pytest.mark.parametrize("opt", ["ca_path", "client_cert", "client_key"])
def test_missing_file_names_the_option_and_the_path(pki, tmp_path, opt):
    params = defaults(validate_certs=True, ca_path=pki["ca"], client_cert=pki["client_cert"], client_key=pki["client_key"])
    missing = str(tmp_path / "nope" / ("%s.pem" % opt))
    params[opt] = missing
    with pytest.raises(DockerConfigError) as err:
        tls_settings(params)
    assert str(err.value) == "%s %s does not exist or is not a file" % (opt, missing)
    with pytest.raises(DockerConfigError, match=opt):
        client_from_params(dict(params, docker_host="tcp://127.0.0.1:1"))  # fails before any connection


def test_a_directory_is_not_a_certificate(pki):
    with pytest.raises(DockerConfigError, match="ca_path %s does not exist or is not a file" % pki["dir"]):
        tls_settings(defaults(validate_certs=True, ca_path=pki["dir"]))


def test_certificate_and_key_go_together(pki):
    with pytest.raises(DockerConfigError, match="client_cert %s is set but client_key is not" % pki["client_cert"]):
        tls_settings(defaults(tls=True, client_cert=pki["client_cert"]))
    with pytest.raises(DockerConfigError, match="client_key %s is set but client_cert is not" % pki["client_key"]):
        tls_settings(defaults(tls=True, client_key=pki["client_key"]))


def test_files_without_tls_are_an_error_not_a_plain_connection(pki):
    with pytest.raises(DockerConfigError, match="ca_path set, but neither tls nor validate_certs is true"):
        tls_settings(defaults(docker_host="tcp://h:2376", ca_path=pki["ca"]))


# -- a real TLS connection ------------------------------------------------------------------------------------


@pytest.mark.parametrize("ca_bundle_env", [False, True], ids=["plain-env", "REQUESTS_CA_BUNDLE"])
def test_verified_mutual_tls_with_tls_hostname(pki, engine, monkeypatch, ca_bundle_env):
    # requests lets REQUESTS_CA_BUNDLE override a Session's verify (which is where the SDK puts ca_path);
    # the module util's adapter must win over it.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    if ca_bundle_env:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki["other_ca"])
    before = len(engine["server"].peers)
    cli = client_from_params(defaults(docker_host=engine["url"], validate_certs=True, ca_path=pki["ca"], client_cert=pki["client_cert"],
                                      client_key=pki["client_key"], tls_hostname="docker.test", docker_timeout=5))
    try:
        assert cli.api.base_url.startswith("https://127.0.0.1:")  # tcp:// is used as https:// with TLS
        assert cli.api.timeout == 5
        assert cli.ping() is True
        assert cli.version()["Version"] == "99.0.0-fake"
    finally:
        cli.close()
    peers = engine["server"].peers[before:]
    assert peers and all(_client_cn(p) == "ktrdr-ops client" for p in peers)


def test_certificate_for_another_name_is_refused_without_tls_hostname(pki, engine):
    with pytest.raises(_docker.DockerException) as err:
        client_from_params(defaults(docker_host=engine["url"], validate_certs=True, ca_path=pki["ca"], docker_timeout=5))
    assert "127.0.0.1" in str(err.value) or "hostname" in str(err.value).lower() or "certificate" in str(err.value).lower()


def test_certificate_from_another_ca_is_refused(pki, engine):
    with pytest.raises(_docker.DockerException, match="(?i)certificate"):
        client_from_params(defaults(docker_host=engine["url"], validate_certs=True, ca_path=pki["other_ca"], tls_hostname="docker.test",
                                    docker_timeout=5))


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_without_verification_and_cert_path_from_env(pki, engine, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki["other_ca"])  # must not turn verification back on
    cli = client_from_params(defaults(docker_host=engine["url"], tls=True, docker_timeout=5))
    assert cli.ping() is True
    cli.close()
    before = len(engine["server"].peers)
    cli = client_from_params(defaults(docker_host=engine["url"], validate_certs=True, tls_hostname="docker.test", docker_timeout=5),
                             environ={"DOCKER_CERT_PATH": pki["cert_dir"]})
    assert cli.ping() is True
    cli.close()
    assert _client_cn(engine["server"].peers[before]) == "ktrdr-ops client"


def test_no_tls_options_mean_a_plain_connection():
    # A tcp:// URL without tls/validate_certs stays http://: the SDK gets no TLS config.
    assert tls_settings(defaults(docker_host="tcp://127.0.0.1:2375")) is None


# -- the docker CLI fallback ---------------------------------------------------------------------------------------


def test_cli_invocation(pki):
    args, env = cli_invocation(defaults(docker_host="unix:///var/run/docker.sock"))
    assert args == [] and env == {"DOCKER_HOST": "unix:///var/run/docker.sock", "DOCKER_TLS": "", "DOCKER_TLS_VERIFY": ""}
    args, env = cli_invocation(defaults(docker_host="tcp://h:2376", validate_certs=True, ca_path=pki["ca"], client_cert=pki["client_cert"],
                                        client_key=pki["client_key"]))
    assert env["DOCKER_TLS_VERIFY"] == "1" and env["DOCKER_HOST"] == "tcp://h:2376"
    assert args == ["--tlscacert", pki["ca"], "--tlscert", pki["client_cert"], "--tlskey", pki["client_key"]]
    args, env = cli_invocation(defaults(docker_host="tcp://h:2376", tls=True))
    assert args == ["--tls"] and env["DOCKER_TLS_VERIFY"] == ""
    with pytest.raises(DockerConfigError, match="tls_hostname needs the Docker SDK"):
        cli_invocation(defaults(docker_host="tcp://h:2376", validate_certs=True, tls_hostname="docker.test"))


def _docker_cli(args, env, tmp_path):
    full_env = dict(os.environ, HOME=str(tmp_path), DOCKER_CONFIG=str(tmp_path), **env)
    full_env.pop("DOCKER_CONTEXT", None)
    return subprocess.run(["docker"] + args + ["version", "--format", "{{json .Server}}"], env=full_env, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.skipif(not shutil.which("docker"), reason="no docker CLI")
def test_docker_cli_reaches_the_tls_engine_with_those_arguments(pki, engine, tmp_path):
    url = engine["url"].replace("127.0.0.1", "localhost")  # the CLI checks the URL's name; the certificate has localhost
    params = defaults(docker_host=url, validate_certs=True, ca_path=pki["ca"], client_cert=pki["client_cert"], client_key=pki["client_key"])
    before = len(engine["server"].peers)
    proc = _docker_cli(*cli_invocation(params), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Version"] == "99.0.0-fake"
    assert _client_cn(engine["server"].peers[before]) == "ktrdr-ops client"
    # The same with a CA that did not sign the engine's certificate: refused.
    proc = _docker_cli(*cli_invocation(dict(params, ca_path=pki["other_ca"])), tmp_path=tmp_path)
    assert proc.returncode != 0 and "certificate" in (proc.stderr + proc.stdout).lower(), proc.stderr
    # TLS only (--tls): no verification, so the other CA does not matter. (The CLI still opens a CA file, the
    # default one when none is given, and fails without it; that is its message then, not ours.)
    proc = _docker_cli(*cli_invocation(defaults(docker_host=engine["url"], tls=True, ca_path=pki["other_ca"])), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
