# Copyright (c) ktrdr.ops contributors
# SPDX-License-Identifier: MIT
#
# This module util is PRIVATE to the ktrdr.ops collection. It may change or go away
# without notice; do not use it from other collections.
"""Local validation of ktrdr v3 strategy files, before anything is installed.

The rules are ktrdr's own, as its backend applies them in ``POST /api/v1/strategies/validate/{name}``
(``StrategyValidator.validate_strategy_config``): first the pydantic model ``StrategyConfigurationV3``
(``ktrdr/config/models.py``), then, when that parses, ``validate_v3_strategy``
(``ktrdr/config/strategy_validator.py``). They are reproduced here in pure Python (the module runs
on managed hosts that have PyYAML but not pydantic), with ktrdr's messages, so that a strategy is
accepted or rejected here exactly as ktrdr judges it, and a typo fails the deploy with the file, the
key and ktrdr's reason rather than a training an hour later. Deliberately not stricter than ktrdr:
what ktrdr accepts but cannot train well is a warning at most.

tests/ktrdr/test_strategies.py compares these verdicts with ktrdr's own code and backend.
"""

from __future__ import annotations

import math
import re

from ansible.module_utils.common.yaml import HAS_YAML, yaml_load

try:
    from yaml import YAMLError
except ImportError:  # pragma: no cover - HAS_YAML says so
    YAMLError = Exception

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
REQUIRED_V3 = ("name", "training_data", "indicators", "fuzzy_sets", "nn_inputs", "model", "decisions", "training")
EXAMPLE = "see strategies/v3_minimal.yaml in ktrdr for a complete v3 file"

# ktrdr's INDICATOR_REGISTRY (ktrdr/indicators, every name and alias, lower case) as far as
# validate_v3_strategy uses it: the outputs a dot reference ("macd_12_26_9.line") may name; an empty
# tuple is a single-output indicator, which takes no dot reference. ktrdr skips the dot check for
# types it does not know, and so do we. tests/ktrdr/test_strategies.py checks this table against
# the registry of a ktrdr checkout.
_ADLINE = ("line", "mf_multiplier", "mf_volume", "roc_10", "momentum_21", "relative_strength")
_BANDS = ("upper", "middle", "lower")
_CMF = ("cmf", "mf_multiplier", "mf_volume", "momentum", "signal", "histogram", "above_zero", "below_zero")
INDICATOR_OUTPUTS = {
    "adline": _ADLINE, "adlineindicator": _ADLINE,
    "adx": ("adx", "plus_di", "minus_di"), "adxindicator": ("adx", "plus_di", "minus_di"),
    "aroon": ("up", "down", "oscillator"), "aroonindicator": ("up", "down", "oscillator"),
    "atr": (), "atrindicator": (),
    "bbands": _BANDS, "bollingerbands": _BANDS, "bollingerbandsindicator": _BANDS,
    "bollingerbandwidth": (), "bollingerbandwidthindicator": (),
    "cci": (), "cciindicator": (),
    "cmf": _CMF, "cmfindicator": _CMF,
    "distancefromma": (), "distancefrommaindicator": (),
    "donchianchannels": _BANDS, "donchianchannelsindicator": _BANDS,
    "ema": (), "exponentialmovingaverage": (),
    "fishertransform": ("fisher", "signal"), "fishertransformindicator": ("fisher", "signal"),
    "ichimoku": ("tenkan", "kijun", "senkou_a", "senkou_b", "chikou"),
    "ichimokuindicator": ("tenkan", "kijun", "senkou_a", "senkou_b", "chikou"),
    "keltnerchannels": _BANDS, "keltnerchannelsindicator": _BANDS,
    "macd": ("line", "signal", "histogram"), "macdindicator": ("line", "signal", "histogram"),
    "mfi": (), "mfiindicator": (),
    "momentum": (), "momentumindicator": (),
    "obv": (), "obvindicator": (),
    "parabolicsar": (), "parabolicsarindicator": (),
    "roc": (), "rocindicator": (),
    "rsi": (), "rsiindicator": (),
    "rvi": ("rvi", "signal"), "rviindicator": ("rvi", "signal"),
    "simplemovingaverage": (), "sma": (),
    "squeezeintensity": (), "squeezeintensityindicator": (),
    "stochastic": ("k", "d"), "stochasticindicator": ("k", "d"),
    "supertrend": ("trend", "direction"), "supertrendindicator": ("trend", "direction"),
    "volumeratio": (), "volumeratioindicator": (),
    "vwap": (), "vwapindicator": (),
    "weightedmovingaverage": (), "wma": (),
    "williamsr": (), "williamsrindicator": (),
    "zigzag": (), "zigzagindicator": (),
}

SYMBOL_MODES = ("single", "multi_symbol")
TIMEFRAME_MODES = ("single", "multi_timeframe")
TARGET_SYMBOL_MODES = ("universal", "group_restricted", "training_only")
NORMALIZATIONS = ("minmax", "zscore", "none")


def check_name(name):
    """None if ``name`` can be a strategy file stem, else why not."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        return ("%r is not a valid strategy name: ktrdr looks strategies up as <dir>/<name>.yaml and accepts names "
                "matching ^[A-Za-z0-9][A-Za-z0-9_-]*$ (letters, digits, _ and -; no dots or slashes)" % (name,))
    return None


# -- StrategyConfigurationV3, the pydantic model, in plain Python ---------------------------------

class _Abort(Exception):
    """ktrdr's model raised something other than a ValidationError; its validator reports only that."""


class _Model(object):
    """Collects pydantic-style errors (loc, type, msg) for one validation."""

    def __init__(self):
        self.errors = []

    def add(self, loc, kind, msg):
        self.errors.append((tuple(loc), kind, msg))

    # -- scalar types (pydantic v2, lax mode, from YAML values) --
    def str_(self, value, loc, optional=False):
        if isinstance(value, str) or (optional and value is None):
            return True
        self.add(loc, "string_type", "Input should be a valid string")
        return False

    def int_(self, value, loc):
        """The int pydantic makes of ``value``, or None after recording why it cannot."""
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if math.isfinite(value) and value.is_integer():
                return int(value)
            self.add(loc, "int_from_float", "Input should be a valid integer, got a number with a fractional part")
            return None
        if isinstance(value, str):
            text = value.strip()
            if re.match(r"^[+-]?[0-9]+$", text):
                return int(text)
            self.add(loc, "int_parsing", "Input should be a valid integer, unable to parse string as an integer")
            return None
        self.add(loc, "int_type", "Input should be a valid integer")
        return None

    def float_(self, value, loc):
        if isinstance(value, (bool, int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
            self.add(loc, "float_parsing", "Input should be a valid number, unable to parse string as a number")
            return None
        self.add(loc, "float_type", "Input should be a valid number")
        return None

    def enum(self, value, loc, choices, kind="enum"):
        if isinstance(value, str) and value in choices:
            return True
        quoted = ["'%s'" % c for c in choices]
        self.add(loc, kind, "Input should be %s or %s" % (", ".join(quoted[:-1]), quoted[-1]))
        return False

    def list_(self, value, loc, item=None, optional=False):
        """``list[...]``; ``item(value, loc)`` checks each element. True if it all validates."""
        if optional and value is None:
            return True
        if not isinstance(value, list):
            self.add(loc, "list_type", "Input should be a valid list")
            return False
        ok = True
        for i, element in enumerate(value):
            if item is not None and not item(element, loc + (i,)):
                ok = False
        return ok

    def str_list(self, value, loc, optional=False):
        return self.list_(value, loc, self.str_, optional=optional)

    def float_list(self, value, loc):
        """``Optional[list[float]]``: the floats, or None (absent, None or invalid)."""
        if value is None:
            return None
        if not isinstance(value, list):
            self.add(loc, "list_type", "Input should be a valid list")
            return None
        out = [self.float_(v, loc + (i,)) for i, v in enumerate(value)]
        return None if None in out else out

    def dict_(self, value, loc, item=None, kind="dict_type", model=None):
        """``dict[str, ...]``, or a nested model when ``model`` names its class. True if it validates."""
        if not isinstance(value, dict):
            if model:
                self.add(loc, "model_type", "Input should be a valid dictionary or instance of %s" % model)
            else:
                self.add(loc, kind, "Input should be a valid dictionary")
            return False
        if model:
            return True
        ok = True
        for key, element in value.items():
            if not isinstance(key, str):
                self.add(loc + (key, "[key]"), "string_type", "Input should be a valid string")
                ok = False
            if item is not None and not item(element, loc + (key,)):
                ok = False
        return ok

    def required(self, data, key, loc):
        if key not in data:
            self.add(loc + (key,), "missing", "Field required")
            return False
        return True

    def value_error(self, loc, msg):
        self.add(loc, "value_error", "Value error, " + msg)


def _symbols(m, d, loc):
    """SymbolConfiguration (mode, symbol, symbols alias 'list', selection_criteria)."""
    if not m.dict_(d, loc, model="SymbolConfiguration"):
        return
    mode = None
    if m.required(d, "mode", loc) and m.enum(d["mode"], loc + ("mode",), SYMBOL_MODES):
        mode = d["mode"]
    if "symbol" in d and m.str_(d["symbol"], loc + ("symbol",), optional=True):
        if mode == "single" and not d["symbol"]:
            m.value_error(loc + ("symbol",), "Symbol must be specified for single mode")
    key = "list" if "list" in d else "symbols" if "symbols" in d else None  # the alias wins
    if key and m.str_list(d[key], loc + (key,), optional=True):
        if mode == "multi_symbol" and not d[key]:
            # ktrdr looks for selection_criteria before it is parsed, so only the list counts.
            m.value_error(loc + (key,), "Either symbol list or selection criteria must be specified for multi_symbol mode")
    if d.get("selection_criteria") is not None:
        crit, where = d["selection_criteria"], loc + ("selection_criteria",)
        if m.dict_(crit, where, model="SymbolSelectionCriteria"):
            for field in ("asset_class", "liquidity_tier"):
                if field in crit:
                    m.str_(crit[field], where + (field,), optional=True)
            if "volatility_range" in crit:
                values = m.float_list(crit["volatility_range"], where + ("volatility_range",))
                if values is not None and (len(values) != 2 or values[0] >= values[1]):
                    m.value_error(where + ("volatility_range",), "Volatility range must be [min, max] with min < max")
            if "market_cap_range" in crit:
                m.float_list(crit["market_cap_range"], where + ("market_cap_range",))


def _timeframes(m, d, loc):
    """TimeframeConfiguration (mode, timeframe, timeframes alias 'list', base_timeframe)."""
    if not m.dict_(d, loc, model="TimeframeConfiguration"):
        return
    mode = None
    if m.required(d, "mode", loc) and m.enum(d["mode"], loc + ("mode",), TIMEFRAME_MODES):
        mode = d["mode"]
    if "timeframe" in d and m.str_(d["timeframe"], loc + ("timeframe",), optional=True):
        if mode == "single" and not d["timeframe"]:
            m.value_error(loc + ("timeframe",), "Timeframe must be specified for single mode")
    key = "list" if "list" in d else "timeframes" if "timeframes" in d else None
    if key and m.str_list(d[key], loc + (key,), optional=True) and mode == "multi_timeframe":
        if not d[key]:
            m.value_error(loc + (key,), "Timeframe list must be specified for multi_timeframe mode")
        elif len(d[key]) < 2:
            m.value_error(loc + (key,), "Multi-timeframe mode requires at least 2 timeframes")
    # ktrdr's "Base timeframe must be in the timeframes list" never fires (it looks the list up
    # under its alias), so base_timeframe is only a string here too.
    if "base_timeframe" in d:
        m.str_(d["base_timeframe"], loc + ("base_timeframe",), optional=True)


def _training_data(m, d, loc):
    if not m.dict_(d, loc, model="TrainingDataConfiguration"):
        return
    if m.required(d, "symbols", loc):
        _symbols(m, d["symbols"], loc + ("symbols",))
    if m.required(d, "timeframes", loc):
        _timeframes(m, d["timeframes"], loc + ("timeframes",))
    if "history_required" in d:
        value = m.int_(d["history_required"], loc + ("history_required",))
        if value is not None and value < 50:
            m.value_error(loc + ("history_required",), "History required must be at least 50 bars")
    for field in ("start_date", "end_date"):
        if field in d:  # an unquoted YAML date is a date, not a string: quote it
            m.str_(d[field], loc + (field,), optional=True)


def _union_str_or_list(m, value, loc, list_first):
    """``Union[list[str], str]`` (list_first) or ``Union[str, list[str]]``; pydantic reports both branches."""
    if isinstance(value, str):
        return True
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return True
    branches = [("list[str]", lambda: m.str_list(value, loc + ("list[str]",))),
                ("str", lambda: m.str_(value, loc + ("str",)))]
    for _label, check in (branches if list_first else branches[::-1]):
        check()
    return False


def _context_entry(m, d, loc):
    if not m.dict_(d, loc, model="ContextDataEntry"):
        return False
    if m.required(d, "provider", loc):
        m.str_(d["provider"], loc + ("provider",))
    if "alignment" in d:
        m.str_(d["alignment"], loc + ("alignment",))
    for field in ("symbol", "timeframe", "instrument_type"):
        if field in d:
            m.str_(d[field], loc + (field,), optional=True)
    if d.get("series") is not None:
        _union_str_or_list(m, d["series"], loc + ("series",), list_first=False)
    for field in ("frequency", "report"):
        if field in d:
            m.str_(d[field], loc + (field,), optional=True)
    if "currencies" in d:
        m.str_list(d["currencies"], loc + ("currencies",), optional=True)
    for field in ("min_impact", "broker"):
        if field in d:
            m.str_(d[field], loc + (field,), optional=True)
    return True


def _deployment(m, d, loc):
    if not m.dict_(d, loc, model="DeploymentConfiguration"):
        return
    if m.required(d, "target_symbols", loc):
        ts, where = d["target_symbols"], loc + ("target_symbols",)
        if m.dict_(ts, where, model="TargetSymbolConfiguration"):
            if m.required(ts, "mode", where):
                m.enum(ts["mode"], where + ("mode",), TARGET_SYMBOL_MODES)
            if ts.get("restrictions") is not None:
                r, rwhere = ts["restrictions"], where + ("restrictions",)
                if m.dict_(r, rwhere, model="TargetSymbolRestrictions"):
                    for field in ("asset_classes", "excluded_symbols"):
                        if field in r:
                            m.str_list(r[field], rwhere + (field,), optional=True)
                    if "min_liquidity_tier" in r:
                        m.str_(r["min_liquidity_tier"], rwhere + ("min_liquidity_tier",), optional=True)
    if m.required(d, "target_timeframes", loc):
        tt, where = d["target_timeframes"], loc + ("target_timeframes",)
        if m.dict_(tt, where, model="TargetTimeframeConfiguration"):
            mode = None
            if m.required(tt, "mode", where) and m.enum(tt["mode"], where + ("mode",), TIMEFRAME_MODES):
                mode = tt["mode"]
            if "supported" in tt and m.str_list(tt["supported"], where + ("supported",), optional=True):
                if mode == "multi_timeframe" and not tt["supported"]:
                    m.value_error(where + ("supported",), "Supported timeframes must be specified for multi_timeframe mode")
            if "timeframe" in tt:
                m.str_(tt["timeframe"], where + ("timeframe",), optional=True)


def _indicator(m, d, loc):
    if not m.dict_(d, loc, model="IndicatorDefinition"):
        return False
    return m.required(d, "type", loc) and m.str_(d["type"], loc + ("type",))


def _fuzzy_set(m, d, loc):
    if not isinstance(d, dict):
        # FuzzySetDefinition.expand_shorthand calls data.items() before anything else.
        raise _Abort("Validation failed: '%s' object has no attribute 'items'" % type(d).__name__)
    return m.required(d, "indicator", loc) and m.str_(d["indicator"], loc + ("indicator",))


def _nn_input(m, d, loc):
    if not m.dict_(d, loc, model="NNInputSpec"):
        return False
    before = len(m.errors)
    for field in ("fuzzy_set", "raw_indicator"):
        if field in d:
            m.str_(d[field], loc + (field,), optional=True)
    if m.required(d, "timeframes", loc):
        _union_str_or_list(m, d["timeframes"], loc + ("timeframes",), list_first=True)
    if d.get("normalization") is not None:
        m.enum(d["normalization"], loc + ("normalization",), NORMALIZATIONS, kind="literal_error")
    if len(m.errors) > before:
        return False
    # NNInputSpec.exactly_one_input_type, in ktrdr's order and words.
    fuzzy_set, raw = d.get("fuzzy_set"), d.get("raw_indicator")
    if fuzzy_set and raw:
        m.value_error(loc, "Specify either fuzzy_set or raw_indicator, not both")
    elif not fuzzy_set and not raw:
        m.value_error(loc, "Must specify either fuzzy_set or raw_indicator")
    elif d.get("normalization") and fuzzy_set:
        m.value_error(loc, "normalization is only valid with raw_indicator, not fuzzy_set")
    return True


def _free_dict(m, value, loc):
    return m.dict_(value, loc)


def model_errors(config):
    """ktrdr's messages for what ``StrategyConfigurationV3(**config)`` rejects; [] when it parses.

    Formatted as StrategyValidator._format_pydantic_error does: "Missing required field: <loc>" or
    "Validation error in '<loc>': <pydantic message>".
    """
    if not isinstance(config, dict):
        return ["Validation failed: ktrdr.config.models.StrategyConfigurationV3() argument after ** must be a "
                "mapping, not %s" % type(config).__name__]
    if not all(isinstance(k, str) for k in config):
        return ["Validation failed: keywords must be strings"]
    m = _Model()
    try:
        if m.required(config, "name", ()):
            m.str_(config["name"], ("name",))
        if "description" in config:
            m.str_(config["description"], ("description",), optional=True)
        if "version" in config:  # version: 3.0 is a float: quote it
            m.str_(config["version"], ("version",))
        if m.required(config, "training_data", ()):
            _training_data(m, config["training_data"], ("training_data",))
        if config.get("context_data") is not None:
            m.list_(config["context_data"], ("context_data",), lambda v, loc: _context_entry(m, v, loc))
        if config.get("deployment") is not None:
            _deployment(m, config["deployment"], ("deployment",))
        if m.required(config, "indicators", ()):
            m.dict_(config["indicators"], ("indicators",), lambda v, loc: _indicator(m, v, loc))
        if m.required(config, "fuzzy_sets", ()):
            m.dict_(config["fuzzy_sets"], ("fuzzy_sets",), lambda v, loc: _fuzzy_set(m, v, loc))
        if m.required(config, "nn_inputs", ()):
            m.list_(config["nn_inputs"], ("nn_inputs",), lambda v, loc: _nn_input(m, v, loc))
        for key in ("model", "decisions", "training"):
            if m.required(config, key, ()):
                _free_dict(m, config[key], (key,))
    except _Abort as exc:
        return [str(exc)]
    out = []
    for loc, kind, msg in m.errors:
        where = ".".join(str(part) for part in loc) if loc else "unknown"
        out.append("Missing required field: %s" % where if kind == "missing" else "Validation error in '%s': %s" % (where, msg))
    return out


# -- validate_v3_strategy, the checks across sections ---------------------------------------------

def _source_ids(context_data):
    """What ktrdr's context providers say each context_data entry produces (get_source_ids)."""
    ids = set()
    for entry in context_data or []:
        provider, symbol, series = entry.get("provider"), entry.get("symbol"), entry.get("series")
        if provider == "fred":
            names = [series] if isinstance(series, str) else list(series) if isinstance(series, list) else []
            ids.update("fred_%s" % s for s in names)
            if len(names) >= 2:
                ids.add("yield_spread_%s_%s" % (names[0], names[1]))
        elif provider == "ib":
            ids.add(symbol)
        elif provider == "cftc_cot":
            ids.update(("cot_%s_net_pos" % entry.get("report"), "cot_%s_net_pct" % entry.get("report")))
        else:  # unknown provider: ktrdr's fallback
            if symbol:
                ids.add(symbol)
            if isinstance(series, str):
                ids.add("fred_%s" % series)
            elif isinstance(series, list) and series:
                ids.update("fred_%s" % s for s in series)
                if len(series) >= 2:
                    ids.add("yield_spread_%s_%s" % (series[0], series[1]))
    return ids


def _regression_errors(decisions, training):
    """_validate_regression_config: (errors, warnings)."""
    errors, warnings = [], []
    cost_model = decisions.get("cost_model")
    if not cost_model or not isinstance(cost_model, dict):
        errors.append("decisions.cost_model is required for regression mode "
                      "(must include round_trip_cost and min_edge_multiplier)")
    else:
        for key in ("round_trip_cost", "min_edge_multiplier"):
            value = cost_model.get(key)
            if value is None or not isinstance(value, (int, float)) or value <= 0:
                errors.append("decisions.cost_model.%s must be a positive number" % key)
    if "confidence_threshold" in decisions:
        warnings.append("decisions.confidence_threshold is ignored in regression mode (cost threshold is used instead)")
    labels = training.get("labels", {})
    if not isinstance(labels, dict):  # ktrdr calls labels.get() and fails with an AttributeError
        raise _Abort("Validation failed: '%s' object has no attribute 'get'" % type(labels).__name__)
    if labels.get("source") == "forward_return":
        horizon = labels.get("horizon")
        if horizon is None or not isinstance(horizon, int) or horizon <= 0:
            errors.append("training.labels.horizon must be a positive integer for forward_return labels")
    loss = training.get("loss")
    if loss is not None and loss not in ("huber", "mse"):
        errors.append("training.loss must be 'huber' or 'mse', got '%s'" % (loss,))
    return errors, warnings


def _dot_errors(where, ref_kind, base, output, indicator_type):
    """ktrdr's dot-notation checks for one reference; [] when fine or the type is unknown to ktrdr."""
    if not isinstance(indicator_type, str):
        return []
    outputs = INDICATOR_OUTPUTS.get(indicator_type.lower())
    if outputs is None:
        return []
    if ref_kind == "fuzzy_set":
        if not outputs:
            return ["%s: Indicator '%s' (type: %s) is single-output and does not support dot notation. Remove '.%s' "
                    "from reference." % (where, base, indicator_type, output)]
        if output not in outputs:
            return ["%s: Invalid output '%s' for %s indicator '%s'. Valid outputs: %s"
                    % (where, output, indicator_type, base, ", ".join(outputs))]
        return []
    if not outputs:
        return ["%s: '%s' is single-output but dot notation '.%s' was used" % (where, base, output)]
    if output not in outputs:
        return ["%s: '%s' is not a valid output of '%s'. Valid outputs: %s" % (where, output, indicator_type, ", ".join(outputs))]
    return []


def semantic_check(config):
    """validate_v3_strategy on a config that parses: (errors, warnings), in ktrdr's words.

    ktrdr raises one StrategyValidationError "Strategy validation failed:\\n  - a\\n  - b"; the
    errors here are its lines. Warnings are formatted "<message> at <location>" like ktrdr's.
    """
    errors, warnings = [], []
    indicators, fuzzy_sets = config["indicators"], config["fuzzy_sets"]
    nn_inputs, context_data = config["nn_inputs"], config.get("context_data")
    tf = config["training_data"]["timeframes"]
    tf_list = tf.get("list") if "list" in tf else tf.get("timeframes")
    available = set(tf_list) if tf_list else {tf["timeframe"]} if tf.get("timeframe") else set()
    known = ", ".join(sorted(indicators))
    used = set()

    for fs_id, fs in fuzzy_sets.items():
        base, _dot, output = fs["indicator"].partition(".")
        if base not in indicators:
            errors.append("fuzzy_sets.%s.indicator: '%s' not found in indicators. Available indicators: %s" % (fs_id, base, known))
            continue
        used.add(base)
        if _dot:
            errors += _dot_errors("fuzzy_sets.%s.indicator" % fs_id, "fuzzy_set", base, output, indicators[base]["type"])

    for idx, item in enumerate(nn_inputs):
        if item.get("raw_indicator"):
            base, _dot, output = item["raw_indicator"].partition(".")
            if base not in indicators:
                errors.append("nn_inputs[%d].raw_indicator: '%s' not found in indicators. Available indicators: %s"
                              % (idx, base, known))
            else:
                used.add(base)
                if _dot:
                    errors += _dot_errors("nn_inputs[%d].raw_indicator" % idx, "raw_indicator", base, output,
                                          indicators[base]["type"])
            continue
        ref = item.get("fuzzy_set")
        if ref and ref not in fuzzy_sets:
            errors.append("nn_inputs[%d].fuzzy_set: '%s' not found in fuzzy_sets. Available fuzzy_sets: %s"
                          % (idx, ref, ", ".join(sorted(fuzzy_sets))))

    for idx, item in enumerate(nn_inputs):
        timeframes = item["timeframes"]
        if isinstance(timeframes, list):  # a string ("all" or any other) is not checked by ktrdr
            for name in timeframes:
                if name not in available:
                    errors.append("nn_inputs[%d].timeframes: Invalid timeframe '%s'. Available timeframes: %s"
                                  % (idx, name, ", ".join(sorted(available))))

    for fs_id, fs in fuzzy_sets.items():
        if not [k for k in fs if k != "indicator"]:
            errors.append("fuzzy_sets.%s: Fuzzy set has no membership functions defined. At least one membership "
                          "function is required (e.g., oversold, overbought)." % fs_id)

    refs = {ind_id: spec["data_source"] for ind_id, spec in indicators.items() if spec.get("data_source") is not None}
    if refs or context_data:
        ids = _source_ids(context_data)
        for ind_id, ds in refs.items():
            if ds not in ids:
                shown = str(sorted(ids)) if ids else "none"  # TypeError on a None id, as in ktrdr
                errors.append("indicators.%s.data_source: '%s' does not match any context_data source ID%s. "
                              "Available source IDs: %s" % (ind_id, ds, "" if context_data else " (no context_data declared)", shown))
        if context_data and ids and not refs:
            warnings.append("context_data entries declared but no indicators reference them via data_source at context_data")

    for ind_id in sorted(set(indicators) - used):
        warnings.append("Indicator '%s' is defined but not referenced by any fuzzy_set at indicators.%s" % (ind_id, ind_id))

    decisions = config["decisions"]
    output_format = decisions.get("output_format", "classification")
    if output_format == "regression":
        reg_errors, reg_warnings = _regression_errors(decisions, config["training"])
        errors += reg_errors
        warnings += ["%s at decisions" % w for w in reg_warnings]
    elif output_format != "classification":
        errors.append("decisions.output_format must be 'classification' or 'regression', got '%s'" % (output_format,))
    return errors, warnings


def ktrdr_check(config):
    """(errors, warnings) as ktrdr's StrategyValidator.validate_strategy_config gives them.

    Model errors first; the cross-section checks only run when the model parses (as in ktrdr).
    The ``errors`` of a cross-section failure are the lines of ktrdr's single error message.
    """
    try:
        errors = model_errors(config)
        if errors:
            return errors, []
        return semantic_check(config)
    except _Abort as exc:
        return [str(exc)], []
    except Exception as exc:  # pylint: disable=broad-except
        # ktrdr's validator turns any exception into its reason too
        return ["Validation failed: %s" % exc], []


# -- the module's entry point ------------------------------------------------------------------------

def _hint(message):
    """A fix to add after ktrdr's message, where the message alone does not say it."""
    if message.startswith("Validation error in 'indicators': Input should be a valid dictionary"):
        return ("; a list of indicators is the v2 format, which ktrdr no longer trains: make 'indicators' a mapping of "
                "id to {type: ..., ...} and add 'nn_inputs' (%s)" % EXAMPLE)
    if re.match(r"Validation error in '(version|training_data\.(start|end)_date)': Input should be a valid string", message):
        return "; quote the value in the YAML"
    if message.startswith("Validation error in 'nn_inputs.") and "raw_indicator" in message:
        return ("; each nn_inputs entry is {fuzzy_set: <id>, timeframes: ...} or {raw_indicator: <indicator id>, "
                "timeframes: ..., normalization: minmax|zscore|none}")
    return ""


def validate(text, source, stem=None, name_check="error"):
    """Validate one strategy file.

    ``source`` names the file in messages; ``stem`` is the file name without ``.yaml`` (None for
    inline content whose name comes from the YAML itself). Returns ``(data, errors, warnings)``;
    ``data`` is the parsed mapping or None when it could not be parsed. ``errors`` are ktrdr's
    reasons to reject the file (see ktrdr_check); ``warnings`` are ours (the name check).
    """
    errors = []
    warnings = []
    if not HAS_YAML:  # pragma: no cover
        return None, ["PyYAML is required on the managed host to validate strategies"], warnings
    try:
        data = yaml_load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " at line %d, column %d" % (mark.line + 1, mark.column + 1) if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        ctx, ctx_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if ctx and ctx_mark is not None:
            problem += " (%s that starts at line %d, column %d)" % (ctx, ctx_mark.line + 1, ctx_mark.column + 1)
        return None, ["%s: not valid YAML%s: %s; fix the syntax" % (source, where, problem)], warnings
    if not isinstance(data, dict):
        return None, ["%s: the top level must be a mapping of keys (name, indicators, ...), got %s; %s"
                      % (source, type(data).__name__ if data is not None else "an empty file", EXAMPLE)], warnings

    for message in ktrdr_check(data)[0]:
        missing = re.match(r"Missing required field: (\w+)$", message)
        if missing and missing.group(1) in REQUIRED_V3:
            key = missing.group(1)
            errors.append("%s: missing required key '%s' (ktrdr: \"%s\"); a v3 strategy needs all of %s (%s)"
                          % (source, key, message, ", ".join(REQUIRED_V3), EXAMPLE))
        else:
            errors.append("%s: %s%s" % (source, message, _hint(message)))

    name = data.get("name")
    if isinstance(name, str) and stem is not None and name != stem and name_check != "ignore":
        msg = ("%s: key 'name' is %r but the file is %s.yaml; ktrdr finds the strategy by its file name and names the "
               "model directory after 'name', so keep them equal (rename the file or change 'name')" % (source, name, stem))
        (errors if name_check == "error" else warnings).append(msg)
    return data, errors, warnings
