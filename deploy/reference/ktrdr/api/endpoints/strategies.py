from fastapi import APIRouter, HTTPException

from ktrdr.api.services.strategy_service import list_strategies, read_cwd_strategy, strategy_info
from ktrdr.config.strategy_loader import (AVAILABLE_INDICATORS, load_v3, parse_yaml, resolve_features,
                                          validate_config)
from ktrdr.errors import ConfigurationError

router = APIRouter(prefix="/strategies", tags=["strategies"])


@router.get("/")
async def get_strategies() -> dict:
    return {"success": True, "strategies": list_strategies()}


@router.get("/{name}")
async def get_strategy(name: str, version: int | None = None) -> dict:
    for info in list_strategies():
        if name in (info["name"], info["file_name"]):
            if version is None:
                return info
            path, text = read_cwd_strategy(info["file_name"])
            versioned = strategy_info(info["file_name"], load_v3(text, str(path)), version)
            if version not in versioned["available_versions"]:
                raise HTTPException(404, detail=f"Strategy {name} has no model version {version} "
                                                f"(available: {versioned['available_versions']})")
            return versioned
    raise HTTPException(404, detail=f"Strategy not found: {name}")


@router.post("/validate/{name}")
async def validate_strategy(name: str) -> dict:
    path, text = read_cwd_strategy(name)
    try:
        issues = validate_config(parse_yaml(text, str(path)), file_stem=name)
    except ConfigurationError as exc:
        issues = [{"severity": "error", "category": "yaml", "message": exc.message, "details": exc.details}]
    errors = sum(i["severity"] == "error" for i in issues)
    warnings = len(issues) - errors
    return {"success": True, "valid": errors == 0, "strategy_name": name, "issues": issues,
            "available_indicators": sorted(AVAILABLE_INDICATORS),
            "message": (f"Strategy {name} is valid" + (f" ({warnings} warnings)" if warnings else "")
                        if errors == 0 else f"Strategy {name} has {errors} error(s)")}


@router.get("/{name}/features")
async def strategy_features(name: str) -> dict:
    path, text = read_cwd_strategy(name)
    try:
        features = resolve_features(load_v3(text, str(path), file_stem=name))
    except ConfigurationError as exc:
        raise HTTPException(400, detail=exc.to_detail()) from None
    return {"success": True, "strategy_name": name, "features": features, "count": len(features)}
