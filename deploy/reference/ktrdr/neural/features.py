"""Strategy config + OHLCV → fuzzy feature matrix and labels (shared by training and backtest,
so a model always sees its features in the order recorded in metadata_v3.json)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ktrdr import fuzzy, indicators
from ktrdr.config.strategy_loader import SIGNALS, membership_shape, resolve_features
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
    """(matrix n_bars × n_features on the base timeframe's bars, feature list). Warm-up rows are NaN."""
    specs = resolve_features(config)
    base = data[base_tf]
    cache: dict[tuple[str, str], np.ndarray] = {}
    columns = []
    for spec in specs:
        tf, fs_id = spec["timeframe"], spec["fuzzy_set"]
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
