"""Process-level checks without a stack: torch-free backend, torch-required workers, settings
validation, the deterministic data generator, bundled strategies, lookup and path rules."""

import subprocess
from pathlib import Path

import pytest
from stack import PYTHON, REFERENCE_DIR, clean_env, free_port

BUNDLED = sorted(p.stem for p in (REFERENCE_DIR / "strategies").glob("*.yaml"))


def run_py(code: str, extra_env: dict | None = None, pythonpath: list[Path] | None = None, cwd=REFERENCE_DIR):
    env = clean_env(extra_env or {})
    if pythonpath:
        env["PYTHONPATH"] = ":".join([*map(str, pythonpath), env["PYTHONPATH"]])
    return subprocess.run([PYTHON, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def import_blocker(root: Path, *names: str) -> Path:
    """A sys.path entry whose packages fail to import, as if they were not installed."""
    for name in names:
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(f"raise ImportError('No module named {name} (test shim)')\n")
    return root


@pytest.fixture(scope="module")
def no_ml(tmp_path_factory) -> Path:
    return import_blocker(tmp_path_factory.mktemp("no_ml"), "torch", "numpy")  # like the backend image


@pytest.fixture(scope="module")
def no_torch(tmp_path_factory) -> Path:
    return import_blocker(tmp_path_factory.mktemp("no_torch"), "torch")


def test_backend_import_loads_no_torch():
    out = run_py("import sys, ktrdr.api.main; "
                 "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy')))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_backend_imports_where_torch_and_numpy_are_absent(no_ml):
    out = run_py("import ktrdr.api.main, ktrdr.data.generate; print('ok')", pythonpath=[no_ml])
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("module", ["ktrdr.training.training_worker", "ktrdr.backtesting.backtest_worker"])
def test_worker_without_torch_fails_fast_with_a_clear_message(no_torch, module):
    env = clean_env({"PYTHONPATH": f"{no_torch}:{REFERENCE_DIR}"})
    out = subprocess.run([PYTHON, "-m", "uvicorn", f"{module}:app", "--port", str(free_port())],
                         cwd=REFERENCE_DIR, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 3
    assert "FATAL: this ktrdr worker needs PyTorch" in out.stderr


@pytest.mark.parametrize("value, ok", [("development", True), ("production", True), ("homelab", False)])
def test_api_environment_is_validated_at_import(value, ok):
    out = run_py("import ktrdr.api.main", {"KTRDR_API_ENVIRONMENT": value, "KTRDR_DB_PASSWORD": "x",
                                           "KTRDR_AUTH_JWT_SECRET": "y"})
    assert (out.returncode == 0) is ok, out.stderr
    if not ok:
        assert "KTRDR_API_ENVIRONMENT='homelab' is not allowed" in out.stderr


def test_production_refuses_insecure_defaults():
    out = run_py("import ktrdr.api.main", {"KTRDR_ENV": "production"})
    assert out.returncode != 0
    assert "KTRDR_DB_PASSWORD, KTRDR_AUTH_JWT_SECRET still hold the insecure defaults" in out.stderr


def test_settings_aliases_and_url_forms(monkeypatch):
    from ktrdr.config import settings

    for key in ("KTRDR_API_CLIENT_BASE_URL", "KTRDR_WORKER_PUBLIC_BASE_URL", "KTRDR_DATA_MODELS_DIR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("KTRDR_API_URL", "http://backend:8000/api/v1/")
    monkeypatch.setenv("WORKER_PUBLIC_BASE_URL", "http://w:5004/")
    monkeypatch.setenv("MODELS_DIR", "/m")
    assert settings.backend_base_url() == "http://backend:8000"
    assert settings.worker_public_base_url() == "http://w:5004"
    assert settings.models_dir() == Path("/m")
    monkeypatch.setenv("KTRDR_DATA_MODELS_DIR", "/app/models")  # the KTRDR_ name wins
    assert settings.models_dir() == Path("/app/models")
    monkeypatch.setenv("KTRDR_DB_PASSWORD", "p@ss:w/rd")
    assert ":p%40ss%3Aw%2Frd@" in settings.database_url()


def test_generator_is_deterministic_and_idempotent(tmp_path):
    cmd = [PYTHON, "-m", "ktrdr.data.generate", "--data-dir", str(tmp_path), "--symbols", "EURUSD",
           "--timeframes", "1d"]
    first = subprocess.run(cmd, cwd=REFERENCE_DIR, env=clean_env({}), capture_output=True, text=True, check=True)
    content = (tmp_path / "EURUSD_1d.csv").read_bytes()
    second = subprocess.run(cmd, cwd=REFERENCE_DIR, env=clean_env({}), capture_output=True, text=True, check=True)
    assert first.stdout.startswith("wrote ") and second.stdout.startswith("unchanged ")
    assert (tmp_path / "EURUSD_1d.csv").read_bytes() == content
    lines = content.decode().splitlines()
    assert lines[0] == "timestamp,open,high,low,close,volume"
    assert lines[1].startswith("2015-01-01T00:00:00Z,")


def test_session_data_covers_both_symbols_and_timeframes(data_dir):
    assert sorted(p.name for p in data_dir.glob("*.csv")) == [
        "EURUSD_1d.csv", "EURUSD_1h.csv", "GBPUSD_1d.csv", "GBPUSD_1h.csv"]


@pytest.mark.parametrize("stem", BUNDLED)
def test_bundled_strategies_are_valid_v3(stem):
    from ktrdr.config.strategy_loader import load_v3, validate_config, parse_yaml

    text = (REFERENCE_DIR / "strategies" / f"{stem}.yaml").read_text()
    config = load_v3(text, stem, file_stem=stem)
    assert [i for i in validate_config(parse_yaml(text), stem) if i["severity"] == "error"] == []
    assert config["name"] == stem or stem == "v3_multi_timeframe"


def test_required_strategies_are_bundled():
    assert {"v3_minimal", "v3_single_indicator", "v3_e2e_test", "v3_sell_bias"} <= set(BUNDLED)


def test_strategy_search_order(tmp_path, monkeypatch):
    from ktrdr.config.strategy_loader import find_strategy
    from ktrdr.config import settings

    mounted, app, cwd = tmp_path / "mounted", tmp_path / "app", tmp_path / "cwd"
    for d in (mounted, app, cwd / "strategies"):
        d.mkdir(parents=True)
    (app / "a.yaml").write_text("from app")
    (cwd / "strategies" / "a.yaml").write_text("from cwd")
    (cwd / "strategies" / "b.yaml").write_text("only cwd")
    (mounted / "a.yml").write_text(".yml does not count")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("STRATEGIES_DIR", str(mounted))
    dirs = settings.strategy_search_dirs(app_dir=app)
    assert dirs == [mounted, app, cwd / "strategies"]
    assert find_strategy("a", dirs).text == "from app"
    (mounted / "a.yaml").write_text("from mounted")
    assert find_strategy("a", dirs).text == "from mounted"
    assert find_strategy("b", dirs).path == cwd / "strategies" / "b.yaml"
    monkeypatch.delenv("STRATEGIES_DIR")
    assert settings.strategy_search_dirs(app_dir=app) == [app, cwd / "strategies"]


@pytest.mark.parametrize("given, expected", [
    ("/home/u/.ktrdr/shared/models/s/1h_v1", "/app/models/s/1h_v1"),
    ("/mnt/ktrdr_data/models/s/1h_v1", "/app/models/s/1h_v1"),
    ("/app/models/s/1h_v1", "/app/models/s/1h_v1"),
    ("/app/other/models/s/1h_v1", "/app/other/models/s/1h_v1"),
    ("models/s/1h_v1", "models/s/1h_v1"),
    ("/srv/store/s/1h_v1", "/srv/store/s/1h_v1"),
])
def test_backtest_model_path_rewrite(given, expected):
    from ktrdr.backtesting.engine import rewrite_model_path

    assert rewrite_model_path(given) == expected
