"""The bad-input matrix (docs/reliability.md): one bad input per case, against the deployed badinput stack.

Every case runs the real thing (ansible-playbook with the collection's playbooks, roles and modules, the
Docker engine, PostgreSQL, the backend and workers) and asserts two things: the run fails (or warns, where
that is right) with a message that names the fix, and the deployment is as it was before.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

from conftest import (API_URL, DB_CONTAINER, HERE, PROJECT, ROOT, STRATEGIES_DIR, TEST_LABEL, VARS,
                      assert_unchanged, docker, inventory_variant, playbook, psql, role, snapshot, tree,
                      wait_workers_available)

sys.path.insert(0, os.path.join(HERE, "..", "modules"))
from ansible_run import module_task, run_tasks  # noqa: E402
from broken_revision import BROKEN_REVISION  # noqa: E402

pytestmark = pytest.mark.usefixtures("stack")

REFERENCE_STRATEGIES = os.path.join(ROOT, "deploy", "reference", "strategies")
HEAD = "a1b2c3d4e5f6"  # the reference service's newest alembic revision
MINIMAL = open(os.path.join(REFERENCE_STRATEGIES, "v3_minimal.yaml")).read()


def strategy_text(name, text=MINIMAL):
    return text.replace("name: v3_minimal", "name: %s" % name)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# -- strategies ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_strategies(tmp_path_factory):
    """The strategies role with a set of three: one good, one broken YAML, one without nn_inputs."""
    src = tmp_path_factory.mktemp("bad-strategies")
    (src / "v3_rel_good.yaml").write_text(strategy_text("v3_rel_good"))
    (src / "v3_rel_broken.yaml").write_text("name: v3_rel_broken\nindicators: [1, 2\n")
    (src / "v3_rel_nokey.yaml").write_text(strategy_text("v3_rel_nokey").replace("nn_inputs:", "nn_inputz:"))
    before = snapshot()
    run = role("strategies", hosts="ktrdr_backend:ktrdr_workers", extra={"strategies_src": str(src)})
    return run, before


def test_malformed_strategy_yaml(bad_strategies):
    run, before = bad_strategies
    assert run.rc != 0, run.explain()
    assert "v3_rel_broken.yaml: not valid YAML at line 3, column 1" in run.msg, run.msg
    assert "fix the syntax" in run.msg
    # One bad file stops the whole set: the good one was not installed either.
    assert not os.path.exists(os.path.join(STRATEGIES_DIR, "v3_rel_good.yaml"))
    assert_unchanged(before)


def test_missing_required_strategy_key(bad_strategies):
    run, before = bad_strategies
    assert run.rc != 0
    assert "v3_rel_nokey.yaml: missing required key 'nn_inputs'" in run.msg, run.msg
    assert_unchanged(before)


def test_strategy_name_differs_from_file_stem(tmp_path):
    """ktrdr finds a strategy by file name but names models after `name:`: installed, with a warning."""
    (tmp_path / "v3_rel_stem.yaml").write_text(strategy_text("v3_rel_other_name"))
    before = snapshot()
    try:
        run = role("strategies", hosts="ktrdr_backend:ktrdr_workers", extra={"strategies_src": str(tmp_path)})
        assert run.rc == 0, run.explain()
        assert any("key 'name' is 'v3_rel_other_name' but the file is v3_rel_stem.yaml" in w for w in run.warnings), run.warnings
        assert os.path.isfile(os.path.join(STRATEGIES_DIR, "v3_rel_stem.yaml"))
        assert_unchanged(before, ignore=("strategies",))
    finally:
        os.remove(os.path.join(STRATEGIES_DIR, "v3_rel_stem.yaml"))
    assert_unchanged(before)


# -- the backend API: operations and URLs ----------------------------------------------------------------


def op(**args):
    return dict({"api_url": API_URL, "poll_interval": 0.5, "max_poll_interval": 1}, **args)


@pytest.fixture(scope="module")
def api_calls():
    """Calls that must not create anything: unknown strategy, unknown id, unreachable URL, URL spellings."""
    before = snapshot()
    closed = free_port()
    run = run_tasks([
        module_task("operation", op(operation_type="training", strategy="no_such_strategy")),
        module_task("operation", op(operation_id="op_training_20990101_000000_deadbeef")),
        module_task("operation", op(api_url="http://127.0.0.1:%d" % closed, operation_id="op_x", retries=1)),
        module_task("workers_info", {"api_url": API_URL + "/"}),
        module_task("workers_info", {"api_url": API_URL + "/api/v1/"}),
    ])
    return run.results, before, closed


def test_unknown_strategy_in_an_operation(api_calls):
    (res, *dummy), before, dummy2 = api_calls
    assert res.failed and not res.changed
    assert res.msg.startswith("Could not start the training of no_such_strategy: POST %s/api/v1/trainings/start returned HTTP "
                              % API_URL), res.msg
    assert "no_such_strategy" in res.msg.split("returned HTTP", 1)[1]
    assert_unchanged(before)  # no operation row, nothing restarted


def test_unknown_operation_id(api_calls):
    res, before = api_calls[0][1], api_calls[1]
    assert res.failed and res["http_status"] == 404
    assert res.msg.startswith("Operation op_training_20990101_000000_deadbeef not found at %s/api/v1/operations/" % API_URL), res.msg
    assert_unchanged(before)


def test_unreachable_backend_url(api_calls):
    res, before, closed = api_calls[0][2], api_calls[1], api_calls[2]
    assert res.failed
    assert res.msg.startswith("Could not read operation op_x: GET http://127.0.0.1:%d/api/v1/operations/op_x could not connect "
                              "(2 attempts)" % closed), res.msg
    assert_unchanged(before)


def test_backend_url_with_trailing_slash_works(api_calls):
    slash, full_slash = api_calls[0][3], api_calls[0][4]
    for res in (slash, full_slash):
        assert not res.failed, res.msg
        assert res["counts"] == {"backtesting": 1, "training": 1}, res


@pytest.fixture(scope="module")
def failing_operations():
    """A backtest whose model does not exist (fails on the worker), a training with a 1 s deadline."""
    before = snapshot()
    run = run_tasks([
        module_task("operation", op(operation_type="backtesting", strategy="v3_e2e_test", model_path="/app/models/nope/1h_v9",
                                    start_date="2024-07-01", end_date="2024-09-30", timeout=300)),
        dict(module_task("operation", op(operation_type="training", strategy="v3_e2e_test", timeout=1)), register="_slow"),
        module_task("operation", op(operation_id="{{ _slow.operation_id }}", state="cancelled", cancel_reason="bad-input matrix")),
    ])
    workers = wait_workers_available()
    return run.results, before, workers


def test_operation_that_fails_on_the_worker(failing_operations):
    (res, *dummy), before, workers = failing_operations
    assert res.failed and res["status"] == "failed"
    assert res.msg.startswith("Operation %s (backtesting) failed after " % res["operation_id"]), res.msg
    assert "Model directory not found" in res.msg
    assert psql("SELECT status FROM operations WHERE operation_id = '%s'" % res["operation_id"]) == "failed"
    assert len(workers) == 2  # both back to available
    assert_unchanged(before, ignore=("operations",))


def test_timeout_shorter_than_the_operation(failing_operations):
    res, cancel = failing_operations[0][1], failing_operations[0][2]
    before = failing_operations[1]
    op_id = res["operation_id"]
    assert res.failed and res.changed
    assert res.msg.startswith("Timed out after "), res.msg
    assert "it is still running: wait again with operation_id=%s, or set cancel_on_timeout=true" % op_id in res.msg
    assert not cancel.failed and cancel["cancel"]["status"] == "cancelled", cancel
    assert_unchanged(before, ignore=("operations",))


# -- migrations and the database -------------------------------------------------------------------------


def migration(stack, **extra):
    args = dict(image=stack.images["backend"], network=stack.network, db_host=DB_CONTAINER, db_name="ktrdr", db_user="ktrdr",
                db_password=stack.secrets["ktrdr_db_password"], timeout=60)
    args.update(extra)
    return module_task("migration", args)


def test_wrong_db_password_migration(stack):
    before = snapshot()
    res = run_tasks([migration(stack, db_password="wrong-password-Hk3")])[0]
    assert res.failed
    assert "password authentication failed for user \"ktrdr\"" in res.msg, res.msg
    assert "wrong-password-Hk3" not in str(res) and stack.secrets["ktrdr_db_password"] not in str(res)
    assert_unchanged(before)


def test_wrong_db_password_deploy(wrong_password_deploy):
    run, before = wrong_password_deploy
    assert run.rc != 0
    assert ("Deploying PostgreSQL failed: ktrdr_db_password does not open the running database %s on localhost" % DB_CONTAINER
            in run.msg), run.msg
    assert "Set ktrdr_db_password back to the current one, or change it in the database first" in run.msg
    assert "Nothing was changed" in run.msg and "another-password-Wq8Lm2" not in run.stdout
    assert_unchanged(before)  # the database container was not recreated with the new password


def test_db_down_during_migrate(stack):
    before = snapshot()
    docker("stop", DB_CONTAINER)
    try:
        run = playbook("migrate.yml", {"backend_migration_timeout": 20})
    finally:
        docker("start", DB_CONTAINER)
        deadline = time.monotonic() + 120
        while docker("inspect", "-f", "{{.State.Health.Status}}", DB_CONTAINER).stdout.strip() != "healthy":
            assert time.monotonic() < deadline, "the database did not come back"
            time.sleep(1)
    assert run.rc != 0
    assert "Migration to head failed on localhost" in run.msg, run.msg
    assert "cannot connect to PostgreSQL ktrdr@%s:5432/ktrdr" % DB_CONTAINER in run.msg
    assert "nothing was migrated: start the database" in run.msg
    after = snapshot()
    assert after["containers"][DB_CONTAINER][0] == before["containers"][DB_CONTAINER][0]  # same container, same volume
    del before["containers"][DB_CONTAINER], after["containers"][DB_CONTAINER]  # restarted by this test on purpose
    assert_unchanged(before, after)


def test_migration_that_fails_halfway(stack, tmp_path):
    """A revision that creates a table, then fails: alembic's error, and the schema as it was."""
    (tmp_path / "b0rken000003_broken.py").write_text(BROKEN_REVISION)
    (tmp_path / "Dockerfile").write_text("FROM %s\nCOPY b0rken000003_broken.py /app/alembic/versions/\n" % stack.images["backend"])
    tag = "ktrdr-ops-test-backend:%s-broken" % PROJECT
    subprocess.run(["docker", "build", "-q", "--label", TEST_LABEL, "-t", tag, str(tmp_path)], check=True, capture_output=True)
    try:
        before = snapshot()
        res = run_tasks([migration(stack, image=tag)])[0]
        assert res.failed and not res.changed
        assert res.msg.startswith("alembic upgrade b0rken000003 failed (exit 1); the database is still at revision %s. "
                                  "alembic said: " % HEAD), res.msg
        assert "division by zero" in res.msg
        assert psql("SELECT to_regclass('ops_broken_probe') IS NULL") == "t"
        assert_unchanged(before)
    finally:
        docker("rmi", tag, check=False)


def test_unknown_alembic_target():
    before = snapshot()
    run = playbook("migrate.yml", {"ktrdr_migration_target": "deadbeef"})
    assert run.rc != 0
    assert "Migration to deadbeef failed on localhost: target 'deadbeef' is not a revision of this image's migrations (known: " in run.msg, \
        run.msg
    assert_unchanged(before)


# -- prechecks -------------------------------------------------------------------------------------------


def prechecks(extra=None, **kw):
    before = snapshot()
    run = playbook("prechecks.yml", extra, **kw)
    assert run.rc != 0, run.explain()
    assert_unchanged(before)
    return run


def test_port_already_in_use():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        run = prechecks({"ktrdr_backend_port": port})
    finally:
        s.close()
    assert "localhost fails: port_%d: port %d is taken (a process listens on 127.0.0.1)" % (port, port) in run.msg, run.msg
    assert "Ports: stop what holds them, or move ktrdr_backend_port" in run.msg


def test_gpu_worker_on_a_host_without_gpu(tmp_path):
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi: the no-GPU path cannot be shown here")

    def gpu(hosts):
        hosts["all"]["children"]["ktrdr_workers"]["children"]["ktrdr_gpu_workers"]["hosts"] = {"localhost": None}

    run = prechecks({"ktrdr_build_gpu_image": False}, inventory=inventory_variant(tmp_path, gpu))
    assert "gpu: no nvidia-smi on this host (no NVIDIA driver); require_gpu is set" in run.msg, run.msg
    assert "nvidia_runtime: Docker has no nvidia runtime" in run.msg
    assert "run nvidia-ctk runtime configure --runtime=docker" in run.msg
    assert "GPU: prepare the host with the ktrdr.ops.gpu_host role" in run.msg and "or move it out of ktrdr_gpu_workers" in run.msg


def test_driver_too_old_for_the_images_cuda():
    """gpu_host's preflight with the CUDA the worker-gpu image needs: no driver here reports it."""
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has an NVIDIA driver: the missing-driver path cannot be shown here")
    before = snapshot()
    run = role("gpu_host", hosts="ktrdr_workers", extra={"gpu_host_required_cuda": "12.6"})
    assert run.rc != 0
    assert "localhost cannot run ktrdr-worker-gpu:" in run.msg, run.msg
    assert "cuda: CUDA 12.6 is required but no NVIDIA driver reports a CUDA version: install a driver that supports CUDA 12.6" in run.msg
    assert "Install the NVIDIA driver (or set gpu_host_install_driver: true)" in run.msg
    assert_unchanged(before)


def test_disk_too_small_for_the_images():
    run = prechecks({"ktrdr_required_disk_gb": 1000000})
    assert "disk: " in run.msg and "but 1000000.0 GiB needed" in run.msg, run.msg
    assert "Disk: free space where Docker keeps its data, or set ktrdr_required_disk_gb" in run.msg


def test_inventory_missing_a_required_group(tmp_path):
    def no_db(hosts):
        del hosts["all"]["children"]["ktrdr_db"]

    run = prechecks(inventory=inventory_variant(tmp_path, no_db))
    assert "The inventory needs the groups ktrdr_build (1 host), ktrdr_db (1 host)" in run.msg, run.msg
    assert "See inventories/homelab-example/hosts.yml" in run.msg


def test_placeholder_secrets_outside_local():
    run = prechecks({"ktrdr_throwaway_secrets": False})
    assert "placeholder-like or shorter than 12 characters ktrdr_db_password, ktrdr_jwt_secret" in run.msg, run.msg
    assert "set real values in an ansible-vault file" in run.msg
    assert VARS["ktrdr_db_password"] not in run.stdout and VARS["ktrdr_jwt_secret"] not in run.stdout


def test_empty_secret():
    run = prechecks({"ktrdr_jwt_secret": ""})
    assert "Secrets: empty ktrdr_jwt_secret;" in run.msg, run.msg


def test_throwaway_secrets_refused_in_production():
    run = prechecks({"ktrdr_runtime_env": "production"})
    assert "placeholder-like or shorter than 12 characters ktrdr_db_password, ktrdr_jwt_secret" in run.msg, run.msg
    assert "never honoured with ktrdr_api_environment or ktrdr_runtime_env production" in run.msg


def test_example_inventory_refused_until_its_secrets_are_replaced():
    """homelab-example's vault holds example values (replace-me): prechecks refuse them before any host is contacted."""
    example = os.path.join(ROOT, "inventories", "homelab-example")
    run = prechecks(inventory=example, args=["--vault-password-file", os.path.join(example, "vault-password.dummy.txt")])
    assert "placeholder-like or shorter than 12 characters ktrdr_db_password, ktrdr_jwt_secret" in run.msg, run.msg
    assert "replace-me" not in run.stdout


@pytest.mark.parametrize("count", ["two", "-1"])
def test_invalid_worker_count(count):
    run = prechecks({"workers_backtest_count": count})
    assert "workers_backtest_count and workers_training_count must be whole numbers >= 0 per host" in run.msg, run.msg
    assert "localhost backtest=%s" % count in run.msg


def test_invalid_api_environment():
    run = prechecks({"ktrdr_api_environment": "homelab"})
    assert "ktrdr_api_environment must be development, staging or production (got homelab)" in run.msg, run.msg


def test_docker_engine_too_old():
    run = prechecks({"docker_host_min_version": "99.0"})
    assert "is older than docker_host_min_version=99.0; upgrade it" in run.msg, run.msg


def test_remote_workers_with_the_backend_on_loopback(tmp_path):
    def remote(hosts):
        hosts["all"]["children"]["ktrdr_workers"]["children"]["ktrdr_cpu_workers"]["hosts"]["remote-worker"] = {
            "ansible_host": "192.0.2.10"}

    run = prechecks(inventory=inventory_variant(tmp_path, remote))
    assert "Workers on remote-worker" in run.msg, run.msg
    assert "set backend_publish_address and database_publish_address" in run.msg


# -- build -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("files,message", [
    ({"README.md": "not ktrdr\n"}, "{src} has no pyproject.toml"),
    ({"pyproject.toml": "[project]\nname = 'x'\n", "uv.lock": ""}, "{src} does not look like a ktrdr source tree: it "
     "lacks the package directory ktrdr/"),
    ({"pyproject.toml": "[project]\nrequires-python = '>=3.15'\n", "uv.lock": "", "ktrdr/__init__.py": ""},
     "requires-python >=3.15 admits no Python that a base can be made with here"),
], ids=["no-pyproject", "no-package", "no-fitting-python"])
def test_source_dir_not_a_ktrdr_tree(tmp_path, files, message):
    src = tmp_path / "not-ktrdr"
    for name, text in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    before = snapshot(images=True)
    run = playbook("build.yml", {"ktrdr_source_dir": str(src), "ktrdr_build_dir": str(tmp_path / "build")})
    assert run.rc != 0
    assert message.format(src=src) in run.msg, run.msg
    assert "ktrdr_source_dir" in run.msg or "ktrdr_base_image" in run.msg
    assert not (tmp_path / "build").exists()  # failed before anything was written
    assert_unchanged(before)


def test_missing_wheel_for_the_requested_torch(tmp_path):
    cache = os.path.join(ROOT, "build", "cache")
    wheelhouses = sorted(os.listdir(os.path.join(cache, "wheelhouse")))
    before = snapshot(images=True)
    run = playbook("build.yml", {"ktrdr_torch_cpu_spec": "torch==2.13.5", "ktrdr_build_dir": str(tmp_path / "build"),
                                 "images_cache_dir": cache})
    assert run.rc != 0
    assert "pip could not download the wheels of worker_cpu" in run.msg, run.msg
    # pip's own ERROR lines ("No matching distribution found for torch==2.13.5", or with a pip constraints
    # file "Cannot install torch==2.13.5 ..."), after the image and the spec.
    assert "worker_cpu (torch==2.13.5) (Python " in run.msg and "ERROR: " in run.msg and "torch==2.13.5" in run.msg
    assert "Set ktrdr_torch_cpu_spec / ktrdr_torch_cuda_spec to a torch release the index has" in run.msg
    assert sorted(os.listdir(os.path.join(cache, "wheelhouse"))) == wheelhouses  # no .partial left behind
    assert_unchanged(before)


def _reference_copy(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "deploy", "reference"), src, ignore=shutil.ignore_patterns("__pycache__"))
    return src


def test_uv_lock_older_than_pyproject(tmp_path):
    src = _reference_copy(tmp_path)
    pyproject = src / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"uvicorn>=0.29",', '"uvicorn>=0.29",\n  "six>=1.16",'))
    before = snapshot(images=True)
    run = playbook("build.yml", {"ktrdr_source_dir": str(src), "ktrdr_build_dir": str(tmp_path / "build")})
    assert run.rc != 0
    assert "%s/uv.lock is older than its pyproject.toml: pyproject.toml asks for six>=1.16" % src in run.msg, run.msg
    assert "Run `uv lock` in %s" % src in run.msg
    assert_unchanged(before)


def test_uv_lock_pinning_a_release_the_index_does_not_serve(tmp_path, monkeypatch):
    # A release the index no longer serves, made here by editing the lock's version (uv would refuse the
    # edited lock for its wheel names, which still say 6.0.4; a real lock has no such mismatch).
    monkeypatch.setenv("UV_SKIP_WHEEL_FILENAME_CHECK", "1")
    src = _reference_copy(tmp_path)
    lock = src / "uv.lock"
    lock.write_text(re.sub(r'(name = "pyyaml"\nversion = )"[^"]*"', r'\1"99.0.0"', lock.read_text(), count=1))
    cache = os.path.join(ROOT, "build", "cache")
    wheelhouses = sorted(os.listdir(os.path.join(cache, "wheelhouse")))
    before = snapshot(images=True)
    run = playbook("build.yml", {"ktrdr_source_dir": str(src), "ktrdr_build_dir": str(tmp_path / "build"),
                                 "images_cache_dir": cache})
    assert run.rc != 0
    assert "pip could not download the wheels of backend" in run.msg, run.msg
    # The requirement pip could not find, and the line of the source's uv.lock that pins it.
    assert re.search(r'no release of pyyaml==99\.0\.0 \(uv\.lock line \d+: version = "99\.0\.0"\)', run.msg), run.msg
    assert sorted(os.listdir(os.path.join(cache, "wheelhouse"))) == wheelhouses
    assert_unchanged(before)


# -- distribution ----------------------------------------------------------------------------------------


def test_image_missing_on_a_host_when_distribution_is_off(stack):
    images = dict(stack.images, backend="ktrdr-backend:000000000000")
    before = snapshot(images=True)
    run = playbook("deploy.yml", {"ktrdr_images": images})
    assert run.rc != 0
    assert "localhost does not have ktrdr-backend:000000000000 on its Docker engine, and the deploy does not pull" in run.msg, run.msg
    assert "playbooks/distribute.yml" in run.msg
    assert_unchanged(before)


def test_registry_unreachable_when_set():
    before = snapshot(images=True)
    run = playbook("distribute.yml", {"ktrdr_registry": "127.0.0.1:1", "distribute_registry_timeout": 2})
    assert run.rc != 0
    assert "ktrdr_registry=127.0.0.1:1 cannot be reached from localhost" in run.msg, run.msg
    assert "Start the registry or fix ktrdr_registry" in run.msg
    assert_unchanged(before)


# -- workers ---------------------------------------------------------------------------------------------


def test_missing_market_data_without_generation(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    before = snapshot()
    run = role("workers", hosts="ktrdr_workers", extra={"ktrdr_data_dir": str(data), "workers_generate_data": False})
    assert run.rc != 0
    assert "Market data missing on localhost in %s: EURUSD_" % data in run.msg, run.msg
    assert "EURUSD_1h.csv" in run.msg and "EURUSD_1d.csv" in run.msg
    assert "set workers_generate_data=true" in run.msg
    assert tree(str(data)) == {}
    assert_unchanged(before)
