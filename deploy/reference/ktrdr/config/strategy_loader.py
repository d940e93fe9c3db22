"""v3 strategy files: finding, parsing, validating and resolving their features.

Pure Python (no numpy, no torch): the backend validates and lists strategies with it, the
workers build features from the same resolved feature list, so both agree on feature order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ktrdr.config import settings
from ktrdr.errors import ConfigurationError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
REQUIRED_V3_KEYS = ("name", "training_data", "indicators", "fuzzy_sets", "nn_inputs", "model",
                    "decisions", "training")
SIGNALS = ("BUY", "HOLD", "SELL")  # class index = position in this tuple (ktrdr's order)

# Indicator types the workers can compute (ktrdr/indicators implements exactly these).
# "scale" tells fuzzy sets what the raw output looks like.
AVAILABLE_INDICATORS: dict[str, dict[str, Any]] = {
    "rsi": {"params": {"period": 14, "source": "close"}, "scale": "0..100"},
    "stochastic": {"params": {"k_period": 14}, "scale": "0..100 (%K)"},
    "roc": {"params": {"period": 10, "source": "close"}, "scale": "percent change"},
    "sma": {"params": {"period": 20, "source": "close"}, "scale": "price (use input_transform price_ratio)"},
    "ema": {"params": {"period": 20, "source": "close"}, "scale": "price (use input_transform price_ratio)"},
}
PRICE_SCALED = {"sma", "ema"}
# nn_inputs.normalization of a raw_indicator input (ktrdr's NNInputSpec); unset means "none".
NORMALIZATIONS = ("minmax", "zscore", "none")
MEMBERSHIP_SHAPES = {"triangular": 3, "trapezoidal": 4, "gaussian": 2}
FUZZY_RESERVED_KEYS = {"indicator", "input_transform", "description", "type"}
DEFAULT_LABELS = {"source": "zigzag", "zigzag_threshold": 0.007, "label_lookahead": 20}
DEFAULT_SPLIT = {"train": 0.7, "validation": 0.15, "test": 0.15}


@dataclass(frozen=True)
class StrategyFile:
    name: str  # the requested name = file stem
    path: Path
    text: str


# --- finding --------------------------------------------------------------------------

def check_name(name: str) -> None:
    if not NAME_RE.match(name or ""):
        raise ConfigurationError(
            f"Invalid strategy name {name!r}", error_code="STRATEGY-InvalidName",
            suggestion="Use letters, digits, '_' and '-' only, starting with a letter or digit "
                       "(the file stem, without .yaml)")


def find_strategy(name: str, search_dirs: list[Path] | None = None) -> StrategyFile:
    """First ``<dir>/<name>.yaml`` in the search order wins (only .yaml, like ktrdr)."""
    check_name(name)
    dirs = settings.strategy_search_dirs() if search_dirs is None else search_dirs
    for d in dirs:
        candidate = d / f"{name}.yaml"
        if candidate.is_file():
            return StrategyFile(name, candidate.resolve(), candidate.read_text(encoding="utf-8"))
    searched = ", ".join(str(d) for d in dirs)
    raise FileNotFoundError(f"Strategy file not found: {name}.yaml (searched: {searched})")


# --- parsing and validation -----------------------------------------------------------

def parse_yaml(text: str, source: str = "<strategy>") -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigurationError(
            f"Malformed strategy YAML in {source}{where}: {getattr(exc, 'problem', None) or exc}",
            error_code="STRATEGY-MalformedYAML", details={"source": source},
            suggestion="Fix the YAML syntax (check indentation and quoting), then retry") from None
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"Strategy {source} is not a YAML mapping (got {type(data).__name__})",
            error_code="STRATEGY-NotAMapping", details={"source": source},
            suggestion="A v3 strategy is a mapping with keys " + ", ".join(REQUIRED_V3_KEYS))
    return data


def is_v3(config: dict[str, Any]) -> bool:
    return isinstance(config.get("indicators"), dict) and "nn_inputs" in config


def _issue(severity: str, category: str, message: str, **details: Any) -> dict[str, Any]:
    return {"severity": severity, "category": category, "message": message, "details": details}


def training_symbols(config: dict[str, Any]) -> list[str]:
    spec = (config.get("training_data") or {}).get("symbols") or {}
    if isinstance(spec, list):
        return [str(s) for s in spec]
    if spec.get("symbol"):
        return [str(spec["symbol"])]
    return [str(s) for s in (spec.get("list") or spec.get("symbols") or [])]


def training_timeframes(config: dict[str, Any]) -> list[str]:
    """Strategy timeframes; the base (first) one names the model directory."""
    spec = (config.get("training_data") or {}).get("timeframes") or {}
    if isinstance(spec, list):
        tfs = [str(t) for t in spec]
    elif spec.get("timeframe"):
        tfs = [str(spec["timeframe"])]
    else:
        tfs = [str(t) for t in (spec.get("list") or spec.get("timeframes") or [])]
    base = spec.get("base_timeframe") if isinstance(spec, dict) else None
    if base and base in tfs:
        tfs.remove(base)
        tfs.insert(0, base)
    return tfs


def training_params(config: dict[str, Any]) -> dict[str, Any]:
    """epochs/batch_size/learning_rate from model.training, else top-level training (both occur)."""
    model_training = (config.get("model") or {}).get("training") or {}
    top = config.get("training") or {}

    def pick(key: str, default: Any) -> Any:
        return model_training.get(key, top.get(key, default))

    labels = {**DEFAULT_LABELS, **(top.get("labels") or {})}
    split = {**DEFAULT_SPLIT, **(top.get("data_split") or {})}
    return {"epochs": int(pick("epochs", 10)), "batch_size": int(pick("batch_size", 32)),
            "learning_rate": float(pick("learning_rate", 0.001)), "labels": labels,
            "data_split": split}


def membership_shape(spec: Any) -> tuple[str, list[float]]:
    """(shape, parameters) of one fuzzy membership: [a,b,c] shorthand or {type, parameters}."""
    if isinstance(spec, dict):
        shape = str(spec.get("type", "triangular")).lower()
        params = spec.get("parameters")
    else:
        params = spec
        shape = {3: "triangular", 4: "trapezoidal"}.get(len(spec) if isinstance(spec, list) else 0, "?")
    if shape not in MEMBERSHIP_SHAPES or not isinstance(params, list) \
            or len(params) != MEMBERSHIP_SHAPES[shape] \
            or not all(isinstance(v, (int, float)) for v in params):
        raise ValueError("expected [a, b, c] (triangular), [a, b, c, d] (trapezoidal) or "
                         "{type: triangular|trapezoidal|gaussian, parameters: [...]}")
    values = [float(v) for v in params]
    if shape != "gaussian" and values != sorted(values):
        raise ValueError(f"{shape} parameters must be non-decreasing, got {values}")
    if shape == "gaussian" and values[1] <= 0:
        raise ValueError("gaussian sigma must be > 0")
    return shape, values


def fuzzy_memberships(fuzzy_spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fuzzy_spec.items() if k not in FUZZY_RESERVED_KEYS}


def validate_config(config: dict[str, Any], file_stem: str | None = None) -> list[dict[str, Any]]:
    """ktrdr-style issue list; any issue with severity 'error' makes the strategy unusable."""
    issues: list[dict[str, Any]] = []
    missing = [k for k in REQUIRED_V3_KEYS if k not in config]
    if not isinstance(config.get("indicators"), dict) or "nn_inputs" not in config:
        issues.append(_issue("error", "format",
                             "V2 strategy format is no longer supported: v3 needs 'indicators' as a "
                             "mapping and an 'nn_inputs' list"))
    if missing:
        issues.append(_issue("error", "structure", "Missing required keys: " + ", ".join(missing),
                             missing=missing))
    if issues:
        return issues

    name = str(config["name"])
    if not NAME_RE.match(name):
        issues.append(_issue("error", "naming", f"name {name!r} is not a valid model directory name",
                             pattern=NAME_RE.pattern))
    if file_stem and name != file_stem:
        issues.append(_issue("warning", "naming",
                             f"name {name!r} differs from the file name {file_stem!r}.yaml; models "
                             f"are saved under the name field ({name}/)"))

    symbols, timeframes = training_symbols(config), training_timeframes(config)
    if not symbols:
        issues.append(_issue("error", "training_data", "training_data.symbols names no symbol"))
    if not timeframes:
        issues.append(_issue("error", "training_data", "training_data.timeframes names no timeframe"))

    indicators = config["indicators"]
    for ind_id, spec in indicators.items():
        kind = str((spec or {}).get("type", "")).lower() if isinstance(spec, dict) else ""
        if kind not in AVAILABLE_INDICATORS:
            issues.append(_issue("error", "indicators",
                                 f"indicator {ind_id!r}: unknown type {kind or None!r}",
                                 available=sorted(AVAILABLE_INDICATORS)))

    fuzzy_sets = config["fuzzy_sets"] if isinstance(config["fuzzy_sets"], dict) else {}
    if not isinstance(config["fuzzy_sets"], dict):
        issues.append(_issue("error", "fuzzy_sets", "fuzzy_sets must be a mapping (it may be empty when every "
                                                    "nn_input is a raw_indicator)"))
    for fs_id, spec in fuzzy_sets.items():
        if not isinstance(spec, dict) or spec.get("indicator") not in indicators:
            issues.append(_issue("error", "fuzzy_sets",
                                 f"fuzzy set {fs_id!r} references unknown indicator "
                                 f"{(spec or {}).get('indicator') if isinstance(spec, dict) else None!r}",
                                 indicators=sorted(indicators)))
            continue
        members = fuzzy_memberships(spec)
        if not members:
            issues.append(_issue("error", "fuzzy_sets", f"fuzzy set {fs_id!r} defines no membership"))
        for member, mspec in members.items():
            try:
                membership_shape(mspec)
            except ValueError as exc:
                issues.append(_issue("error", "fuzzy_sets", f"fuzzy set {fs_id!r}, {member!r}: {exc}"))
        kind = str(indicators[spec["indicator"]].get("type", "")).lower()
        transform = (spec.get("input_transform") or {}).get("type")
        if kind in PRICE_SCALED and transform != "price_ratio":
            issues.append(_issue("warning", "fuzzy_sets",
                                 f"fuzzy set {fs_id!r} reads the price-level indicator {kind!r} without "
                                 "input_transform {type: price_ratio}; memberships will rarely fire"))

    nn_inputs = config["nn_inputs"]
    if not isinstance(nn_inputs, list) or not nn_inputs:
        issues.append(_issue("error", "nn_inputs", "nn_inputs must be a non-empty list"))
    else:
        for idx, entry in enumerate(nn_inputs):
            issues += _nn_input_issues(idx, entry, indicators, fuzzy_sets, timeframes)

    model = config["model"] if isinstance(config["model"], dict) else {}
    if str(model.get("type", "")).lower() != "mlp":
        issues.append(_issue("error", "model", f"model.type {model.get('type')!r} is not supported (use mlp)"))
    output_format = (config["decisions"] or {}).get("output_format", "classification")
    if output_format != "classification":
        issues.append(_issue("error", "decisions",
                             f"decisions.output_format {output_format!r} is not supported (use classification)"))
    try:
        params = training_params(config)
        if params["epochs"] < 1 or params["batch_size"] < 1 or params["learning_rate"] <= 0:
            raise ValueError("epochs and batch_size must be >= 1, learning_rate > 0")
        split = params["data_split"]
        if abs(sum(float(split[k]) for k in ("train", "validation", "test")) - 1.0) > 1e-6:
            raise ValueError(f"data_split must sum to 1, got {split}")
    except (TypeError, ValueError, KeyError) as exc:
        issues.append(_issue("error", "training", f"training settings: {exc}"))
    return issues


def _nn_input_issues(idx: int, entry: Any, indicators: dict[str, Any], fuzzy_sets: dict[str, Any],
                     timeframes: list[str]) -> list[dict[str, Any]]:
    """One nn_inputs entry, by ktrdr's NNInputSpec rules (and words): exactly one of fuzzy_set or
    raw_indicator, normalization only with raw_indicator, timeframes required."""
    where = f"nn_inputs[{idx}]"
    if not isinstance(entry, dict):
        return [_issue("error", "nn_inputs", f"{where} must be a mapping: {{fuzzy_set: <id>, timeframes: all}} or "
                                             "{raw_indicator: <indicator id>, timeframes: all, normalization: zscore}")]
    fs, raw, norm = entry.get("fuzzy_set"), entry.get("raw_indicator"), entry.get("normalization")
    if norm is not None and norm not in NORMALIZATIONS:
        return [_issue("error", "nn_inputs", f"{where}.normalization: Input should be 'minmax', 'zscore' or 'none'")]
    if fs and raw:
        return [_issue("error", "nn_inputs", f"{where}: Specify either fuzzy_set or raw_indicator, not both")]
    if not fs and not raw:
        return [_issue("error", "nn_inputs", f"{where}: Must specify either fuzzy_set or raw_indicator")]
    if norm and fs:
        return [_issue("error", "nn_inputs", f"{where}: normalization is only valid with raw_indicator, not fuzzy_set")]
    if "timeframes" not in entry:
        return [_issue("error", "nn_inputs", f"{where}.timeframes is required: 'all' or a list of training_data "
                                             f"timeframes ({timeframes})")]
    if fs:
        if fs not in fuzzy_sets:
            return [_issue("error", "nn_inputs", f"nn_inputs references unknown fuzzy set {fs!r}",
                           fuzzy_sets=sorted(fuzzy_sets))]
        label = repr(fs)
    else:
        base, dot, output = str(raw).partition(".")
        if base not in indicators:
            return [_issue("error", "nn_inputs", f"{where}.raw_indicator: '{base}' not found in indicators. "
                                                 f"Available indicators: {', '.join(sorted(indicators))}")]
        if dot:  # every indicator here has one output (ktrdr's wording for single-output ones)
            return [_issue("error", "nn_inputs", f"{where}.raw_indicator: '{base}' is single-output but dot "
                                                 f"notation '.{output}' was used")]
        label = f"raw_indicator {raw!r}"
    tfs = entry["timeframes"]
    if tfs != "all":
        unknown = [t for t in (tfs if isinstance(tfs, list) else [tfs]) if t not in timeframes]
        if unknown:
            return [_issue("error", "nn_inputs", f"nn_inputs for {label} uses timeframes {unknown} that "
                                                 f"training_data does not load ({timeframes})")]
    return []


def load_v3(text: str, source: str = "<strategy>", file_stem: str | None = None) -> dict[str, Any]:
    """Parse and validate; raise one ConfigurationError that lists every error."""
    config = parse_yaml(text, source)
    errors = [i for i in validate_config(config, file_stem) if i["severity"] == "error"]
    if errors:
        raise ConfigurationError(
            f"Strategy {source} is invalid: " + "; ".join(i["message"] for i in errors),
            error_code="STRATEGY-InvalidConfiguration", details={"issues": errors},
            suggestion="Fix the listed problems; POST /api/v1/strategies/validate/<name> rechecks the file")
    return config


# --- features ---------------------------------------------------------------------------

def resolve_features(config: dict[str, Any]) -> list[dict[str, str]]:
    """The model's input columns, in order (ktrdr's FeatureResolver): per nn_input and timeframe,
    one per membership of a fuzzy_set (``<tf>_<fuzzy set>_<membership>``), or one raw value of a
    raw_indicator (``<tf>_<indicator>_raw``, fuzzy_set ``__raw__``, membership ``raw``)."""
    timeframes = training_timeframes(config)
    features = []
    for entry in config["nn_inputs"]:
        tfs = entry.get("timeframes", "all")
        tfs = timeframes if tfs == "all" else (tfs if isinstance(tfs, list) else [tfs])
        raw = entry.get("raw_indicator")
        if raw:
            base, _dot, output = str(raw).partition(".")
            for tf in tfs:
                features.append({"feature_id": f"{tf}_{raw}_raw", "timeframe": tf, "fuzzy_set": "__raw__",
                                 "membership": "raw", "indicator_id": base, "indicator_output": output or None})
            continue
        fs_id = entry["fuzzy_set"]
        fs = config["fuzzy_sets"][fs_id]
        for tf in tfs:
            for member in fuzzy_memberships(fs):
                features.append({"feature_id": f"{tf}_{fs_id}_{member}", "timeframe": tf,
                                 "fuzzy_set": fs_id, "membership": member,
                                 "indicator_id": fs["indicator"], "indicator_output": fs["indicator"]})
    return features


def raw_normalizations(config: dict[str, Any]) -> dict[str, str]:
    """feature_id → normalization method of every raw_indicator feature ("none" when unset)."""
    methods = {}
    for entry in config["nn_inputs"]:
        if entry.get("raw_indicator"):
            method = entry.get("normalization") or "none"
            for feature in resolve_features({**config, "nn_inputs": [entry]}):
                methods[feature["feature_id"]] = method
    return methods
