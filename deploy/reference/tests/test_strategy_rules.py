"""The v3 nn_inputs schema as ktrdr has it (NNInputSpec): fuzzy_set or raw_indicator inputs, the
raw ones normalized with training statistics. No stack: the loader and the feature maths directly."""

import copy

import numpy as np
import pytest
import yaml
from stack import REFERENCE_DIR

RAW = yaml.safe_load((REFERENCE_DIR / "strategies" / "v3_raw_indicator.yaml").read_text())


def errors(config):
    from ktrdr.config.strategy_loader import validate_config

    return [i["message"] for i in validate_config(config, config.get("name")) if i["severity"] == "error"]


def with_input(index, entry):
    config = copy.deepcopy(RAW)
    config["nn_inputs"][index] = entry
    return config


def test_raw_indicator_strategy_is_valid_and_resolves_raw_features():
    from ktrdr.config.strategy_loader import raw_normalizations, resolve_features

    assert errors(RAW) == []
    features = resolve_features(RAW)
    assert [f["feature_id"] for f in features] == ["1h_rsi_momentum_oversold", "1h_rsi_momentum_overbought",
                                                   "1h_roc_10_raw", "1h_rsi_14_raw"]
    assert features[2] == {"feature_id": "1h_roc_10_raw", "timeframe": "1h", "fuzzy_set": "__raw__",
                           "membership": "raw", "indicator_id": "roc_10", "indicator_output": None}
    assert raw_normalizations(RAW) == {"1h_roc_10_raw": "zscore", "1h_rsi_14_raw": "minmax"}


@pytest.mark.parametrize("entry, message", [
    ({"fuzzy_set": "rsi_momentum", "raw_indicator": "roc_10", "timeframes": "all"},
     "nn_inputs[1]: Specify either fuzzy_set or raw_indicator, not both"),
    ({"timeframes": "all"}, "nn_inputs[1]: Must specify either fuzzy_set or raw_indicator"),
    ({"fuzzy_set": "rsi_momentum", "timeframes": "all", "normalization": "zscore"},
     "nn_inputs[1]: normalization is only valid with raw_indicator, not fuzzy_set"),
    ({"raw_indicator": "roc_10", "timeframes": "all", "normalization": "robust"},
     "nn_inputs[1].normalization: Input should be 'minmax', 'zscore' or 'none'"),
    ({"raw_indicator": "atr_14", "timeframes": "all"},
     "nn_inputs[1].raw_indicator: 'atr_14' not found in indicators. Available indicators: roc_10, rsi_14"),
    ({"raw_indicator": "roc_10.line", "timeframes": "all"},
     "nn_inputs[1].raw_indicator: 'roc_10' is single-output but dot notation '.line' was used"),
    ({"raw_indicator": "roc_10"}, "nn_inputs[1].timeframes is required"),
    ({"raw_indicator": "roc_10", "timeframes": ["1d"]},
     "nn_inputs for raw_indicator 'roc_10' uses timeframes ['1d'] that training_data does not load (['1h'])"),
    ("roc_10", "nn_inputs[1] must be a mapping"),
])
def test_bad_nn_inputs_are_rejected_in_ktrdrs_words(entry, message):
    found = errors(with_input(1, entry))
    assert len(found) == 1 and found[0].startswith(message), found


def test_raw_only_strategy_needs_no_fuzzy_sets():
    config = copy.deepcopy(RAW)
    config["fuzzy_sets"] = {}
    config["nn_inputs"] = [{"raw_indicator": "rsi_14", "timeframes": "all"}]
    assert errors(config) == []
    config["fuzzy_sets"] = ["not", "a", "mapping"]
    assert errors(config) == ["fuzzy_sets must be a mapping (it may be empty when every nn_input is a raw_indicator)"]


def test_fuzzy_only_strategies_resolve_as_before():
    from ktrdr.config.strategy_loader import resolve_features

    config = yaml.safe_load((REFERENCE_DIR / "strategies" / "v3_multi_timeframe.yaml").read_text())
    assert [f["feature_id"] for f in resolve_features(config)] == [
        "1h_rsi_momentum_oversold", "1h_rsi_momentum_neutral", "1h_rsi_momentum_overbought",
        "1d_trend_below", "1d_trend_above"]


def test_normalization_uses_training_statistics():
    from ktrdr.config.strategy_loader import resolve_features
    from ktrdr.neural.features import fit_normalization, normalize

    features = resolve_features(RAW)
    train = np.array([[0.1, 0.0, -1.0, 20.0], [0.0, 0.5, 1.0, 60.0], [0.0, 0.0, 3.0, 80.0]], dtype=np.float32)
    params = fit_normalization(RAW, train, features)
    assert set(params) == {"1h_roc_10_raw", "1h_rsi_14_raw"}
    assert params["1h_rsi_14_raw"] == {"method": "minmax", "min": 20.0, "max": 80.0}
    assert params["1h_roc_10_raw"]["method"] == "zscore" and params["1h_roc_10_raw"]["mean"] == pytest.approx(1.0)
    assert params["1h_roc_10_raw"]["std"] == pytest.approx(2.0)  # sample std (ddof=1), as pandas and ktrdr
    later = np.array([[0.2, 0.1, 5.0, 50.0], [np.nan, np.nan, np.nan, np.nan]], dtype=np.float32)
    out = normalize(later, features, params)
    assert out[0].tolist() == pytest.approx([0.2, 0.1, 2.0, 0.5])  # fuzzy columns untouched
    assert np.isnan(out[1]).all()  # warm-up rows stay NaN (dropped later)
    constant = fit_normalization(RAW, np.ones((3, 4), dtype=np.float32), features)
    assert normalize(later, features, constant)[0].tolist() == pytest.approx([0.2, 0.1, 0.0, 0.0])
