"""Settings read from the environment, with ktrdr's names and deprecated aliases.

A ``KTRDR_*`` name wins over its alias; an alias still works but logs a deprecation warning
once. Values are read when asked for (not frozen at import), so one process sees one
environment and tests can start services with different ones.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from urllib.parse import quote

from ktrdr.errors import ConfigurationError

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
ALLOWED_API_ENVIRONMENTS = ("development", "staging", "production")
INSECURE_DB_PASSWORD = "localdev"
INSECURE_JWT_SECRET = "insecure-dev-secret"
# ktrdr's baked-in strategies directory, searched after STRATEGIES_DIR (contract §5).
APP_STRATEGIES_DIR = Path("/app/strategies")
# Where ktrdr's backtest worker maps foreign model paths to (contract §6).
APP_MODELS_DIR = Path("/app/models")

_warned: set[str] = set()


def env(name: str, alias: str | None = None, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value not in (None, ""):
        return value
    if alias:
        value = os.environ.get(alias)
        if value not in (None, ""):
            if alias not in _warned:
                _warned.add(alias)
                logger.warning("%s is deprecated; set %s instead", alias, name)
            return value
    return default


def env_float(name: str, default: float, alias: str | None = None) -> float:
    raw = env(name, alias)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(
            f"{name}={raw!r} is not a number", error_code="CONFIG-InvalidNumber",
            suggestion=f"Set {name} to a number of seconds, e.g. {default:g}",
        ) from None


# --- database -------------------------------------------------------------------------

def db_params() -> dict[str, str]:
    return {
        "host": env("KTRDR_DB_HOST", "DB_HOST", "localhost"),
        "port": env("KTRDR_DB_PORT", "DB_PORT", "5432"),
        "name": env("KTRDR_DB_NAME", "DB_NAME", "ktrdr"),
        "user": env("KTRDR_DB_USER", "DB_USER", "ktrdr"),
        "password": env("KTRDR_DB_PASSWORD", "DB_PASSWORD", INSECURE_DB_PASSWORD),
    }


def database_url() -> str:
    p = db_params()
    # Encoded, so passwords with @ : / work (ktrdr's alembic env.py forgets this; we do not).
    return (f"postgresql+asyncpg://{quote(p['user'], safe='')}:{quote(p['password'], safe='')}"
            f"@{p['host']}:{p['port']}/{quote(p['name'], safe='')}")


def database_display() -> str:
    p = db_params()
    return f"{p['user']}@{p['host']}:{p['port']}/{p['name']}"


def db_echo() -> bool:
    return (env("KTRDR_DB_ECHO", "DB_ECHO", "false") or "").lower() in ("1", "true", "yes")


# --- paths ----------------------------------------------------------------------------

def data_dir() -> Path:
    return Path(env("KTRDR_DATA_DIR", "DATA_DIR", "data"))


def models_dir() -> Path:
    return Path(env("KTRDR_DATA_MODELS_DIR", "MODELS_DIR", "models"))


def strategy_search_dirs(app_dir: Path = APP_STRATEGIES_DIR) -> list[Path]:
    """Training/backtest strategy lookup order: STRATEGIES_DIR, /app/strategies, ./strategies."""
    dirs = []
    if os.environ.get("STRATEGIES_DIR"):
        dirs.append(Path(os.environ["STRATEGIES_DIR"]))
    dirs += [app_dir, Path.cwd() / "strategies"]
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def cwd_strategies_dir() -> Path:
    """What list/get/validate read, like ktrdr: <CWD>/strategies, ignoring STRATEGIES_DIR."""
    return Path.cwd() / "strategies"


# --- backend / registry ---------------------------------------------------------------

def worker_health_check_interval() -> float:
    return env_float("KTRDR_WORKER_HEALTH_CHECK_INTERVAL", 10.0)


def worker_health_check_timeout() -> float:
    return env_float("KTRDR_WORKER_HEALTH_CHECK_TIMEOUT", 5.0)


def worker_max_health_failures() -> int:
    return int(env_float("KTRDR_WORKER_HEALTH_CHECK_FAILURES", 3))


def worker_removal_threshold() -> float:
    return env_float("KTRDR_WORKER_REMOVAL_THRESHOLD", 300.0)


def orphan_timeout() -> float:
    return env_float("KTRDR_ORPHAN_TIMEOUT_SECONDS", 60.0, alias="ORPHAN_TIMEOUT_SECONDS")


def operations_cache_ttl() -> float:
    return env_float("OPERATIONS_CACHE_TTL", 1.0)


# --- workers --------------------------------------------------------------------------

def backend_base_url() -> str:
    """Backend root URL without /api/v1 (both forms are accepted, like ktrdr)."""
    url = env("KTRDR_API_CLIENT_BASE_URL", "KTRDR_API_URL", "http://localhost:8000/api/v1")
    url = url.rstrip("/")
    if url.endswith(API_PREFIX):
        url = url[: -len(API_PREFIX)]
    return url


def worker_port() -> int:
    return int(env_float("KTRDR_WORKER_PORT", 5003, alias="WORKER_PORT"))


def worker_public_base_url() -> str:
    url = env("KTRDR_WORKER_PUBLIC_BASE_URL", "WORKER_PUBLIC_BASE_URL")
    if url:
        return url.rstrip("/")
    # ktrdr's fallback; only right when the backend resolves this hostname and the port matches.
    return f"http://{socket.gethostname()}:{worker_port()}"


def worker_id() -> str | None:
    return env("KTRDR_WORKER_ID", "WORKER_ID")


def worker_reregistration_interval() -> float:
    return env_float("KTRDR_WORKER_REREGISTRATION_INTERVAL", 10.0)


def worker_reregistration_timeout() -> float:
    """Seconds without a GET /health before a worker asks whether it is still registered (ktrdr: 30)."""
    return env_float("KTRDR_WORKER_REREGISTRATION_TIMEOUT", 30.0)


def image_revision() -> str | None:
    return env("KTRDR_IMAGE_REVISION")


# --- validation at import (ktrdr's validate_all) ---------------------------------------

def validate_all(service: str) -> None:
    """Refuse to start on settings ktrdr refuses; the message says what to change."""
    if service == "backend":
        api_env = env("KTRDR_API_ENVIRONMENT", default="development")
        if api_env not in ALLOWED_API_ENVIRONMENTS:
            raise ConfigurationError(
                f"KTRDR_API_ENVIRONMENT={api_env!r} is not allowed",
                error_code="CONFIG-InvalidEnvironment",
                suggestion=f"Use one of {', '.join(ALLOWED_API_ENVIRONMENTS)} "
                           "(deployment names such as 'canary' belong in ENVIRONMENT)",
            )
    for name in ("KTRDR_WORKER_HEALTH_CHECK_INTERVAL", "KTRDR_WORKER_REREGISTRATION_INTERVAL",
                 "KTRDR_WORKER_REREGISTRATION_TIMEOUT"):
        env_float(name, 0.0)
    if (env("KTRDR_ENV", default="development") or "").lower() == "production":
        insecure = []
        if db_params()["password"] == INSECURE_DB_PASSWORD:
            insecure.append("KTRDR_DB_PASSWORD")
        if env("KTRDR_AUTH_JWT_SECRET", default=INSECURE_JWT_SECRET) == INSECURE_JWT_SECRET:
            insecure.append("KTRDR_AUTH_JWT_SECRET")
        if insecure:
            raise ConfigurationError(
                f"KTRDR_ENV=production but {', '.join(insecure)} still hold the insecure defaults",
                error_code="CONFIG-InsecureDefaults",
                suggestion="Set real secrets for " + ", ".join(insecure),
            )
