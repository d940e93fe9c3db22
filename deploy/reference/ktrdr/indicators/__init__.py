"""Indicator computations (workers only). The set of types is declared, numpy-free, in
ktrdr.config.strategy_loader.AVAILABLE_INDICATORS; this module implements exactly those."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ktrdr.config.strategy_loader import AVAILABLE_INDICATORS
from ktrdr.data.loader import OHLCV


def _ema(x: np.ndarray, period: int) -> np.ndarray:
    alpha, out = 2.0 / (period + 1), np.empty_like(x)
    out[0] = x[0]
    for i in range(1, len(x)):
        out[i] = alpha * x[i] + (1 - alpha) * out[i - 1]
    return out


def _sma(x: np.ndarray, period: int) -> np.ndarray:
    c = np.cumsum(np.insert(x, 0, 0.0))
    out = np.full_like(x, np.nan)
    out[period - 1:] = (c[period:] - c[:-period]) / period
    return out


def rsi(d: OHLCV, period: int = 14, source: str = "close") -> np.ndarray:
    x = getattr(d, source)
    delta = np.diff(x, prepend=x[0])
    gain, loss = np.clip(delta, 0, None), np.clip(-delta, 0, None)
    # Wilder's smoothing = EMA with alpha 1/period
    avg_gain, avg_loss = _ema(gain, 2 * period - 1), _ema(loss, 2 * period - 1)
    rs = avg_gain / np.where(avg_loss == 0, np.nan, avg_loss)
    out = np.where(avg_loss == 0, 100.0, 100 - 100 / (1 + rs))
    out[:period] = np.nan
    return out


def stochastic(d: OHLCV, k_period: int = 14, **_: Any) -> np.ndarray:
    out = np.full(len(d), np.nan)
    for i in range(k_period - 1, len(d)):
        lo, hi = d.low[i - k_period + 1:i + 1].min(), d.high[i - k_period + 1:i + 1].max()
        out[i] = 50.0 if hi == lo else 100 * (d.close[i] - lo) / (hi - lo)
    return out


def roc(d: OHLCV, period: int = 10, source: str = "close") -> np.ndarray:
    x = getattr(d, source)
    out = np.full_like(x, np.nan)
    out[period:] = 100 * (x[period:] / x[:-period] - 1)
    return out


def sma(d: OHLCV, period: int = 20, source: str = "close") -> np.ndarray:
    return _sma(getattr(d, source), period)


def ema(d: OHLCV, period: int = 20, source: str = "close") -> np.ndarray:
    out = _ema(getattr(d, source), period)
    out[:period - 1] = np.nan
    return out


FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {"rsi": rsi, "stochastic": stochastic, "roc": roc,
                                                   "sma": sma, "ema": ema}
assert set(FUNCTIONS) == set(AVAILABLE_INDICATORS), "declare new indicators in strategy_loader too"


def compute(spec: dict[str, Any], data: OHLCV) -> np.ndarray:
    kind = str(spec["type"]).lower()
    params = {**AVAILABLE_INDICATORS[kind]["params"],
              **{k: v for k, v in spec.items() if k in AVAILABLE_INDICATORS[kind]["params"]}}
    return FUNCTIONS[kind](data, **params)
