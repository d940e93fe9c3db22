"""Local validation of v3 strategy files: the reference service's real files and our fixtures (the forms of
ktrdr's own strategies) pass, and each broken variant fails with ktrdr's reason, naming the file.
tests/ktrdr/test_strategies.py checks the same rules against ktrdr's own code."""

import glob
import os

import pytest

from ansible_collections.ktrdr.ops.plugins.module_utils._strategy import check_name, ktrdr_check, validate

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REFERENCE = sorted(glob.glob(os.path.join(ROOT, "deploy", "reference", "strategies", "*.yaml")))
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "strategies")

MINIMAL = """\
name: v3_minimal
training_data:
  symbols: {mode: single, symbol: EURUSD}
  timeframes: {mode: single, timeframe: "1h"}
indicators:
  rsi_14: {type: rsi, period: 14}
fuzzy_sets:
  rsi_momentum: {indicator: rsi_14, oversold: [0, 25, 40], overbought: [60, 75, 100]}
nn_inputs:
  - {fuzzy_set: rsi_momentum, timeframes: ["1h"]}
model: {type: mlp, architecture: {hidden_layers: [32, 16]}}
decisions: {output_format: classification}
training: {epochs: 10}
"""


def check(text, stem="v3_minimal", name_check="error"):
    return validate(text, "strategies/%s.yaml" % stem, stem=stem, name_check=name_check)


@pytest.mark.skipif(not REFERENCE, reason="deploy/reference/strategies is not there yet")
@pytest.mark.parametrize("path", REFERENCE, ids=os.path.basename)
def test_reference_strategies_pass(path):
    with open(path) as fh:
        data, errors, warnings = validate(fh.read(), path, stem=os.path.splitext(os.path.basename(path))[0], name_check="warn")
    assert errors == []
    assert isinstance(data, dict)


def test_minimal_passes():
    data, errors, warnings = check(MINIMAL)
    assert errors == [] and warnings == []
    assert data["name"] == "v3_minimal"


def test_yaml_syntax_error_names_file_line_and_fix():
    data, errors, dummy = check(MINIMAL.replace("model: {type: mlp", "model: {type: [mlp"))
    assert data is None
    assert len(errors) == 1
    assert errors[0].startswith("strategies/v3_minimal.yaml: not valid YAML at line 11"), errors
    assert "fix the syntax" in errors[0]


def test_missing_key_is_named_with_the_full_list():
    text = MINIMAL.replace("decisions: {output_format: classification}\n", "")
    dummy, errors, dummy2 = check(text)
    assert errors == ["strategies/v3_minimal.yaml: missing required key 'decisions' (ktrdr: \"Missing required field: "
                      "decisions\"); a v3 strategy needs all of name, training_data, indicators, fuzzy_sets, nn_inputs, "
                      "model, decisions, training (see strategies/v3_minimal.yaml in ktrdr for a complete v3 file)"]


def test_v2_format_is_recognised():
    text = "name: old\nindicators:\n  - {name: rsi, period: 14}\nfuzzy_sets: {}\n"
    dummy, errors, dummy2 = check(text, stem="old")
    [v2] = [e for e in errors if "indicators" in e and "missing" not in e]
    assert v2.startswith("strategies/old.yaml: Validation error in 'indicators': Input should be a valid dictionary; ")
    assert "v2 format" in v2 and "nn_inputs" in v2
    assert "strategies/old.yaml: missing required key 'nn_inputs'" in " | ".join(errors)


def test_name_mismatch_error_warn_ignore():
    dummy, errors, warnings = check(MINIMAL, stem="other", name_check="error")
    assert len(errors) == 1 and "key 'name' is 'v3_minimal' but the file is other.yaml" in errors[0]
    assert "rename the file or change 'name'" in errors[0]
    dummy, errors, warnings = check(MINIMAL, stem="other", name_check="warn")
    assert errors == [] and len(warnings) == 1
    dummy, errors, warnings = check(MINIMAL, stem="other", name_check="ignore")
    assert errors == [] and warnings == []


def test_dangling_references_quote_ktrdr():
    text = MINIMAL.replace("indicator: rsi_14", "indicator: rsi_15").replace("fuzzy_set: rsi_momentum", "fuzzy_set: rsi_mom")
    dummy, errors, dummy2 = check(text)
    assert errors == [
        "strategies/v3_minimal.yaml: fuzzy_sets.rsi_momentum.indicator: 'rsi_15' not found in indicators. "
        "Available indicators: rsi_14",
        "strategies/v3_minimal.yaml: nn_inputs[0].fuzzy_set: 'rsi_mom' not found in fuzzy_sets. "
        "Available fuzzy_sets: rsi_momentum",
    ]


def test_multi_output_indicator_reference_is_accepted():
    text = MINIMAL.replace("rsi_14: {type: rsi, period: 14}", "rsi_14: {type: rsi, period: 14}\n  bb: {type: bbands}").replace(
        "indicator: rsi_14", "indicator: bb.upper")
    assert check(text)[1] == []


@pytest.mark.parametrize("old,new,expect", [
    ("indicators:\n  rsi_14: {type: rsi, period: 14}", "indicators: 5",
     "Validation error in 'indicators': Input should be a valid dictionary"),
    ("rsi_14: {type: rsi, period: 14}", "rsi_14: {period: 14}", "Missing required field: indicators.rsi_14.type"),
    ("  - {fuzzy_set: rsi_momentum, timeframes: [\"1h\"]}", "  - {fuzzy_set: rsi_momentum}",
     "Missing required field: nn_inputs.0.timeframes"),
    ("  timeframes: {mode: single, timeframe: \"1h\"}\n", "", "Missing required field: training_data.timeframes"),
    ("{mode: single, symbol: EURUSD}", "{mode: one, symbol: EURUSD}",
     "Validation error in 'training_data.symbols.mode': Input should be 'single' or 'multi_symbol'"),
    ("{mode: single, timeframe: \"1h\"}", "{mode: multi_timeframe, list: [\"1h\"]}",
     "Validation error in 'training_data.timeframes.list': Value error, Multi-timeframe mode requires at least 2 timeframes"),
    ("name: v3_minimal\n", "name: v3_minimal\nversion: 3.0\n", "Validation error in 'version': Input should be a valid "
     "string; quote the value in the YAML"),
    ("decisions: {output_format: classification}", "decisions: {output_format: ranking}",
     "decisions.output_format must be 'classification' or 'regression', got 'ranking'"),
    ("oversold: [0, 25, 40], overbought: [60, 75, 100]", "", "fuzzy_sets.rsi_momentum: Fuzzy set has no membership "
     "functions defined"),
])
def test_ktrdr_reasons(old, new, expect):
    text = MINIMAL.replace(old, new)
    assert text != MINIMAL, old
    errors = check(text)[1]
    assert any(expect in e for e in errors), (expect, errors)


def test_history_required_at_least_50():
    text = MINIMAL.replace('timeframes: {mode: single, timeframe: "1h"}', 'timeframes: {mode: single, timeframe: "1h"}\n  '
                           'history_required: 20')
    assert check(text)[1] == ["strategies/v3_minimal.yaml: Validation error in 'training_data.history_required': "
                              "Value error, History required must be at least 50 bars"]


def test_what_ktrdr_accepts_is_accepted():
    """Not stricter than ktrdr: these all pass its validate endpoint."""
    for old, new in [
        ("model: {type: mlp, architecture: {hidden_layers: [32, 16]}}", "model: {architecture: {}}"),  # no model.type
        ("  - {fuzzy_set: rsi_momentum, timeframes: [\"1h\"]}", "  []"),  # no nn_inputs at all
        ("rsi_14: {type: rsi, period: 14}", "rsi_14: {type: not_in_ktrdr}"),  # unknown types are not checked
        ("oversold: [0, 25, 40]", "oversold: [0, 25]"),  # memberships are not checked in v3
        ('timeframes: ["1h"]', "timeframes: all"),
    ]:
        text = MINIMAL.replace(old, new)
        assert text != MINIMAL, old
        assert check(text)[1] == [], new


# -- raw_indicator inputs (ktrdr's NNInputSpec) ----------------------------------------------------

def fixture_text(name):
    with open(os.path.join(FIXTURES, name + ".yaml")) as fh:
        return fh.read()


@pytest.mark.parametrize("name", ["v3_hybrid", "v3_regression", "v3_context"])
def test_fixtures_pass(name):
    data, errors, warnings = check(fixture_text(name), stem=name)
    assert errors == [] and warnings == []
    assert ktrdr_check(data) == ([], [])


HYBRID_RAW = "  - raw_indicator: adx_14.adx\n    timeframes: all\n    normalization: zscore\n"


@pytest.mark.parametrize("new,expect", [
    ("  - raw_indicator: adx_14.adx\n    fuzzy_set: rsi_momentum\n    timeframes: all\n",
     "Validation error in 'nn_inputs.2': Value error, Specify either fuzzy_set or raw_indicator, not both"),
    ("  - timeframes: all\n    normalization: zscore\n",
     "Validation error in 'nn_inputs.2': Value error, Must specify either fuzzy_set or raw_indicator"),
    ("  - fuzzy_set: rsi_momentum\n    timeframes: all\n    normalization: zscore\n",
     "Validation error in 'nn_inputs.2': Value error, normalization is only valid with raw_indicator, not fuzzy_set"),
    ("  - raw_indicator: adx_14.adx\n    timeframes: all\n    normalization: robust\n",
     "Validation error in 'nn_inputs.2.normalization': Input should be 'minmax', 'zscore' or 'none'"),
    ("  - raw_indicator: atr_14\n    timeframes: all\n",
     "nn_inputs[2].raw_indicator: 'atr_14' not found in indicators. Available indicators: adx_14, macd_12_26_9, rsi_14"),
    ("  - raw_indicator: adx_14.adxr\n    timeframes: all\n",
     "nn_inputs[2].raw_indicator: 'adxr' is not a valid output of 'adx'. Valid outputs: adx, plus_di, minus_di"),
    ("  - raw_indicator: rsi_14.value\n    timeframes: all\n",
     "nn_inputs[2].raw_indicator: 'rsi_14' is single-output but dot notation '.value' was used"),
    ("  - raw_indicator: adx_14.adx\n    timeframes: [\"1d\"]\n",
     "nn_inputs[2].timeframes: Invalid timeframe '1d'. Available timeframes: 1h, 4h"),
])
def test_raw_indicator_rules_quote_ktrdr(new, expect):
    text = fixture_text("v3_hybrid")
    assert HYBRID_RAW in text
    errors = check(text.replace(HYBRID_RAW, new), stem="v3_hybrid")[1]
    assert errors and errors[0].startswith("strategies/v3_hybrid.yaml: " + expect), (expect, errors)


def test_fuzzy_dot_notation_quotes_ktrdr():
    text = fixture_text("v3_hybrid").replace("indicator: macd_12_26_9.line", "indicator: macd_12_26_9.hist")
    assert check(text, stem="v3_hybrid")[1] == [
        "strategies/v3_hybrid.yaml: fuzzy_sets.macd_trend.indicator: Invalid output 'hist' for macd indicator "
        "'macd_12_26_9'. Valid outputs: line, signal, histogram"]
    text = fixture_text("v3_hybrid").replace("    indicator: rsi_14\n", "    indicator: rsi_14.x\n")
    assert check(text, stem="v3_hybrid")[1] == [
        "strategies/v3_hybrid.yaml: fuzzy_sets.rsi_momentum.indicator: Indicator 'rsi_14' (type: rsi) is single-output "
        "and does not support dot notation. Remove '.x' from reference."]


def test_regression_rules_quote_ktrdr():
    text = fixture_text("v3_regression")
    broken = text.replace("round_trip_cost: 0.0002", "round_trip_cost: -1").replace("loss: huber", "loss: mae")
    assert check(broken, stem="v3_regression")[1] == [
        "strategies/v3_regression.yaml: decisions.cost_model.round_trip_cost must be a positive number",
        "strategies/v3_regression.yaml: training.loss must be 'huber' or 'mse', got 'mae'"]
    data = check(text.replace("output_format: regression", "output_format: regression\n  confidence_threshold: 0.6"),
                 stem="v3_regression")[0]
    assert ktrdr_check(data) == ([], ["decisions.confidence_threshold is ignored in regression mode (cost threshold is "
                                      "used instead) at decisions"])


def test_context_data_sources_quote_ktrdr():
    text = fixture_text("v3_context").replace("data_source: GBPUSD", "data_source: USDJPY")
    assert check(text, stem="v3_context")[1] == [
        "strategies/v3_context.yaml: indicators.gbp_rsi_14.data_source: 'USDJPY' does not match any context_data source "
        "ID. Available source IDs: ['GBPUSD', 'fred_DGS2', 'fred_IRLTLT01DEM156N', 'yield_spread_DGS2_IRLTLT01DEM156N']"]


def test_a_fuzzy_set_that_is_not_a_mapping_aborts_like_ktrdr():
    text = MINIMAL.replace("rsi_momentum: {indicator: rsi_14, oversold: [0, 25, 40], overbought: [60, 75, 100]}",
                           "rsi_momentum: [0, 25, 40]")
    assert check(text)[1] == ["strategies/v3_minimal.yaml: Validation failed: 'list' object has no attribute 'items'"]


def test_unused_indicator_is_only_ktrdrs_warning():
    text = MINIMAL.replace("rsi_14: {type: rsi, period: 14}", "rsi_14: {type: rsi, period: 14}\n  ema_20: {type: ema}")
    data, errors, warnings = check(text)
    assert errors == [] and warnings == []
    assert ktrdr_check(data)[1] == ["Indicator 'ema_20' is defined but not referenced by any fuzzy_set at indicators.ema_20"]


def test_not_a_mapping():
    assert "top level must be a mapping" in check("- a\n- b\n")[1][0]
    assert "an empty file" in check("")[1][0]


@pytest.mark.parametrize("name,ok", [("v3_e2e_test", True), ("A-1", True), ("_x", False), ("a.b", False), ("../x", False), ("", False)])
def test_check_name(name, ok):
    assert (check_name(name) is None) is ok
