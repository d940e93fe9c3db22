"""Strategy config + OHLCV → fuzzy feature matrix and labels (shared by training and backtest,
so a model always sees its features in the order recorded in metadata_v3.json)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ktrdr import fuzzy, indicators
from ktrdr.config.strategy_loader import SIGNALS, membership_shape, raw_normalizations, resolve_features
from ktrdr.data.loader import OHLCV
from ktrdr.errors import ConfigurationError

BUY, HOLD, SELL = (SIGNALS.index(s) for s in SIGNALS)
UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def timeframe_seconds(tf: str) -> int:
    m = re.fullmatch(r"(\d+)([mhdw])", tf)
    if not m:
        raise ConfigurationError(f"Unsupported timeframe {tf!r}", error_code="DATA-BadTimeframe",
                                 suggestion="Use e.g. 5m, 1h, 4h, 1d, 1w")
    return int(m.group(1)) * UNITS[m.group(2)]


def _align(base: OHLCV, other: OHLCV, values: np.ndarray) -> np.ndarray:
    """Values of a higher timeframe at each base bar, using only bars already closed then."""
    if other.timeframe == base.timeframe:
        return values
    closes_at = other.times + np.timedelta64(timeframe_seconds(other.timeframe), "s")
    base_close = base.times + np.timedelta64(timeframe_seconds(base.timeframe), "s")
    idx = np.searchsorted(closes_at, base_close, side="right") - 1
    out = np.full(len(base), np.nan)
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def build_features(config: dict[str, Any], data: dict[str, OHLCV], base_tf: str
                   ) -> tuple[np.ndarray, list[dict[str, str]]]:
    """(matrix n_bars × n_features on the base timeframe's bars, feature list). Warm-up rows are NaN.

    Fuzzy features are membership degrees; raw_indicator features are the indicator's own values,
    not yet normalized (see fit_normalization / normalize: the statistics come from the training split)."""
    specs = resolve_features(config)
    base = data[base_tf]
    cache: dict[tuple[str, str], np.ndarray] = {}
    columns = []
    for spec in specs:
        tf = spec["timeframe"]
        if spec["fuzzy_set"] == "__raw__":
            key = (tf, "raw:" + spec["indicator_id"])
            if key not in cache:
                cache[key] = _align(base, data[tf], indicators.compute(config["indicators"][spec["indicator_id"]], data[tf]))
            columns.append(cache[key])
            continue
        fs_id = spec["fuzzy_set"]
        fs = config["fuzzy_sets"][fs_id]
        key = (tf, fs_id)
        if key not in cache:
            series = data[tf]
            raw = indicators.compute(config["indicators"][fs["indicator"]], series)
            if (fs.get("input_transform") or {}).get("type") == "price_ratio":
                raw = series.close / raw
            cache[key] = _align(base, series, raw)
        shape, params = membership_shape(fs[spec["membership"]])
        columns.append(fuzzy.membership(cache[key], shape, params))
    return np.column_stack(columns).astype(np.float32), specs


def fit_normalization(config: dict[str, Any], x_train: np.ndarray, features: list[dict[str, str]]
                      ) -> dict[str, dict[str, Any]]:
    """ktrdr's normalization_params (metadata_v3.json) for the raw_indicator columns, from the training
    rows: {feature_id: {method: minmax, min, max} | {method: zscore, mean, std} | {method: none}}."""
    methods = raw_normalizations(config)
    params: dict[str, dict[str, Any]] = {}
    for i, feature in enumerate(features):
        method = methods.get(feature["feature_id"])
        if method is None:
            continue
        col = x_train[:, i].astype(np.float64)
        if method == "minmax":
            params[feature["feature_id"]] = {"method": "minmax", "min": float(col.min()), "max": float(col.max())}
        elif method == "zscore":  # pandas' std (ddof=1), as ktrdr computes it
            std = float(col.std(ddof=1)) if len(col) > 1 else 0.0
            params[feature["feature_id"]] = {"method": "zscore", "mean": float(col.mean()), "std": std}
        else:
            params[feature["feature_id"]] = {"method": "none"}
    return params


def normalize(x: np.ndarray, features: list[dict[str, str]], params: dict[str, dict[str, Any]]) -> np.ndarray:
    """Apply normalization_params to the raw columns (a constant column becomes 0, like ktrdr's)."""
    out = x.copy()
    for i, feature in enumerate(features):
        p = params.get(feature["feature_id"])
        if not p or p["method"] == "none":
            continue
        if p["method"] == "minmax":
            span = p["max"] - p["min"]
            out[:, i] = np.where(np.isnan(x[:, i]), np.nan, 0.0) if span == 0 else (x[:, i] - p["min"]) / span
        elif p["method"] == "zscore":
            out[:, i] = np.where(np.isnan(x[:, i]), np.nan, 0.0) if p["std"] == 0 else (x[:, i] - p["mean"]) / p["std"]
    return out


def make_labels(close: np.ndarray, labels_cfg: dict[str, Any]) -> np.ndarray:
    """Triple-barrier labels: BUY if the price first rises by buy_threshold within
    label_lookahead bars, SELL if it first falls by sell_threshold, else HOLD. The last
    lookahead bars get -1 (unknown future). buy_/sell_threshold default to zigzag_threshold."""
    thr = float(labels_cfg["zigzag_threshold"])
    up, down = float(labels_cfg.get("buy_threshold", thr)), float(labels_cfg.get("sell_threshold", thr))
    look = int(labels_cfg["label_lookahead"])
    n = len(close)
    labels = np.full(n, -1, dtype=np.int64)
    if n <= look:
        return labels
    windows = np.lib.stride_tricks.sliding_window_view(close[1:], look)[: n - look]
    ret = windows / close[: n - look, None] - 1
    hit_up, hit_down = ret >= up, ret <= -down
    first_up = np.where(hit_up.any(1), hit_up.argmax(1), look)
    first_down = np.where(hit_down.any(1), hit_down.argmax(1), look)
    lab = np.full(n - look, HOLD)
    lab[first_up < first_down] = BUY
    lab[first_down < first_up] = SELL
    labels[: n - look] = lab
    return labels
