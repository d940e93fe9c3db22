"""Local validation of v3 strategy files: the reference service's real files pass, and each broken
variant fails with a message that names the file, the key and the fix."""

import glob
import os

import pytest

from ansible_collections.ktrdr.ops.plugins.module_utils._strategy import check_name, validate

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REFERENCE = sorted(glob.glob(os.path.join(ROOT, "deploy", "reference", "strategies", "*.yaml")))

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
    assert errors == ["strategies/v3_minimal.yaml: missing required key 'decisions'; a v3 strategy needs all of name, "
                      "training_data, indicators, fuzzy_sets, nn_inputs, model, decisions, training "
                      "(see strategies/v3_minimal.yaml in ktrdr for a complete v3 file)"]


def test_v2_format_is_recognised():
    text = "name: old\nindicators:\n  - {name: rsi, period: 14}\nfuzzy_sets: {}\n"
    dummy, errors, dummy2 = check(text, stem="old")
    assert len(errors) == 1 and "v2 format" in errors[0] and "nn_inputs" in errors[0]


def test_name_mismatch_error_warn_ignore():
    dummy, errors, warnings = check(MINIMAL, stem="other", name_check="error")
    assert len(errors) == 1 and "key 'name' is 'v3_minimal' but the file is other.yaml" in errors[0]
    assert "rename the file or change 'name'" in errors[0]
    dummy, errors, warnings = check(MINIMAL, stem="other", name_check="warn")
    assert errors == [] and len(warnings) == 1
    dummy, errors, warnings = check(MINIMAL, stem="other", name_check="ignore")
    assert errors == [] and warnings == []


def test_dangling_references():
    text = MINIMAL.replace("indicator: rsi_14", "indicator: rsi_15").replace("fuzzy_set: rsi_momentum", "fuzzy_set: rsi_mom")
    dummy, errors, dummy2 = check(text)
    assert "strategies/v3_minimal.yaml: fuzzy_sets.rsi_momentum.indicator is 'rsi_15', which is not one of the indicators (rsi_14)" in errors
    assert "strategies/v3_minimal.yaml: nn_inputs[0].fuzzy_set is 'rsi_mom', which is not one of the fuzzy_sets (rsi_momentum)" in errors


def test_multi_output_indicator_reference_is_accepted():
    text = MINIMAL.replace("rsi_14: {type: rsi, period: 14}", "rsi_14: {type: rsi, period: 14}\n  bb: {type: bbands}").replace(
        "indicator: rsi_14", "indicator: bb.upper")
    assert check(text)[1] == []


def test_type_errors():
    for old, new, expect in [
        ("indicators:\n  rsi_14: {type: rsi, period: 14}", "indicators: 5", "key 'indicators' must be a mapping, got int"),
        ("rsi_14: {type: rsi, period: 14}", "rsi_14: {period: 14}", "indicators.rsi_14 needs a 'type'"),
        ("model: {type: mlp, architecture: {hidden_layers: [32, 16]}}", "model: {architecture: {}}", "model.type is missing"),
        ("  - {fuzzy_set: rsi_momentum, timeframes: [\"1h\"]}", "  []", "'nn_inputs' must be a non-empty list"),
        ("  timeframes: {mode: single, timeframe: \"1h\"}\n", "", "training_data.timeframes is missing"),
    ]:
        text = MINIMAL.replace(old, new)
        assert text != MINIMAL, old
        errors = check(text)[1]
        assert any(expect in e for e in errors), (expect, errors)


def test_not_a_mapping():
    assert "top level must be a mapping" in check("- a\n- b\n")[1][0]
    assert "an empty file" in check("")[1][0]


@pytest.mark.parametrize("name,ok", [("v3_e2e_test", True), ("A-1", True), ("_x", False), ("a.b", False), ("../x", False), ("", False)])
def test_check_name(name, ok):
    assert (check_name(name) is None) is ok
