"""Strategy lookups for the API: dispatch-time resolution and the StrategyInfo listing."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from fastapi import HTTPException

from ktrdr.config import settings
from ktrdr.config.strategy_loader import StrategyFile, find_strategy, load_v3, training_symbols, training_timeframes
from ktrdr.errors import ConfigurationError

logger = logging.getLogger(__name__)
VERSION_DIR = re.compile(r"^(?P<tf>.+)_v(?P<n>\d+)$")


def resolve_for_dispatch(name: str) -> tuple[StrategyFile, dict[str, Any]]:
    """STRATEGIES_DIR → /app/strategies → ./strategies; 400 with ktrdr's messages otherwise."""
    try:
        strategy = find_strategy(name)
        return strategy, load_v3(strategy.text, str(strategy.path), file_stem=name)
    except FileNotFoundError as exc:
        raise HTTPException(400, detail=str(exc)) from None
    except ConfigurationError as exc:
        raise HTTPException(400, detail=exc.to_detail()) from None


def model_versions(strategy_name: str) -> list[tuple[int, Path]]:
    """Saved models of a strategy: ``<MODELS_DIR>/<name>/<tf>_v<N>`` (symlinks skipped)."""
    root = settings.models_dir() / strategy_name
    versions = []
    if root.is_dir():
        for d in root.iterdir():
            m = VERSION_DIR.match(d.name)
            if m and d.is_dir() and not d.is_symlink():
                versions.append((int(m.group("n")), d))
    return sorted(versions)


def strategy_info(stem: str, config: dict[str, Any], version: int | None = None) -> dict[str, Any]:
    name = str(config.get("name") or stem)
    versions = model_versions(name)
    chosen = next((d for n, d in versions if n == version), None) if version else (versions[-1][1] if versions else None)
    metrics, trained_at = None, None
    if chosen is not None:
        try:
            test = json.loads((chosen / "metrics.json").read_text()).get("test_metrics", {})
            metrics = {k: test.get(k) for k in ("accuracy", "precision", "recall", "f1_score")}
            trained_at = json.loads((chosen / "metadata_v3.json").read_text()).get("created_at")
        except (OSError, ValueError):
            logger.warning("Unreadable model metadata in %s", chosen)
    timeframes = training_timeframes(config)
    return {
        "name": name,
        "file_name": stem,
        "description": config.get("description"),
        "symbol": (training_symbols(config) or [None])[0],
        "timeframe": timeframes[0] if timeframes else None,
        # v3 keeps indicators as a mapping; StrategyInfo wants a list of dicts.
        "indicators": [{"name": k, **(v or {})} for k, v in (config.get("indicators") or {}).items()],
        "fuzzy_config": config.get("fuzzy_sets") or {},
        "training_status": "trained" if versions else "untrained",
        "available_versions": [number for number, _path in versions],
        "latest_version": versions[-1][0] if versions else None,
        "latest_training_date": trained_at,
        "latest_metrics": metrics,
    }


def list_strategies() -> list[dict[str, Any]]:
    """Every valid v3 file in <CWD>/strategies (ktrdr drops v3 files here; we list them)."""
    infos = []
    for path in sorted(settings.cwd_strategies_dir().glob("*.yaml")):
        try:
            config = load_v3(path.read_text(encoding="utf-8"), str(path), file_stem=path.stem)
        except (OSError, ConfigurationError) as exc:
            logger.warning("Skipping strategy %s: %s", path, exc)
            continue
        infos.append(strategy_info(path.stem, config))
    return infos


def read_cwd_strategy(name: str) -> tuple[Path, str]:
    """<CWD>/strategies/<name>.yaml for validate/features, guarded against path traversal."""
    base = settings.cwd_strategies_dir().resolve()
    path = (base / f"{name}.yaml").resolve()
    if path.parent != base:
        raise HTTPException(400, detail=f"Invalid strategy name: {name!r}")
    if not path.is_file():
        raise HTTPException(404, detail=f"Strategy not found: {name}.yaml in {base}")
    return path, path.read_text(encoding="utf-8")
