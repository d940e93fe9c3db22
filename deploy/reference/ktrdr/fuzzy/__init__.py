"""Fuzzy membership functions (workers only)."""

from __future__ import annotations

import numpy as np


def membership(x: np.ndarray, shape: str, p: list[float]) -> np.ndarray:
    """Degree in [0, 1]; NaN input (indicator warm-up) gives NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if shape == "gaussian":
            out = np.exp(-0.5 * ((x - p[0]) / p[1]) ** 2)
        else:
            a, b, c, d = (p[0], p[1], p[1], p[2]) if shape == "triangular" else p
            rise = np.where(b > a, (x - a) / (b - a if b > a else 1), (x >= b).astype(float))
            fall = np.where(d > c, (d - x) / (d - c if d > c else 1), (x <= c).astype(float))
            out = np.clip(np.minimum(rise, fall), 0.0, 1.0)
            out = np.where((x >= b) & (x <= c), 1.0, out)
    return np.where(np.isnan(x), np.nan, out)
