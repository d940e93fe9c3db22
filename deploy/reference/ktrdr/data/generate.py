"""Deterministic synthetic OHLCV data in ktrdr's CSV layout, no network.

    python -m ktrdr.data.generate --data-dir DIR [--symbols EURUSD,GBPUSD] [--timeframes 1h,1d] [--seed 42]

Writes ``<DIR>/<SYMBOL>_<TF>.csv`` (``timestamp,open,high,low,close,volume``, ISO-8601 UTC).
The log price is a regime-switching trend plus a noise-driven damped oscillation (swings that
run, then revert) plus noise, so oscillators such as RSI carry real, learnable information.
Pure Python (runs in the torch-free backend image too); the same arguments always give the
same bytes, and unchanged files are not rewritten, so re-running it changes nothing.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

# symbol -> (start price, volatility multiplier)
SYMBOLS = {"EURUSD": (1.1000, 1.0), "GBPUSD": (1.2700, 1.2), "USDJPY": (110.00, 0.9), "AUDUSD": (0.7000, 1.1)}
# timeframe -> (bar length, first bar, last bar, per-bar volatility of the log price)
TIMEFRAMES = {
    "1h": (timedelta(hours=1), datetime(2022, 1, 3, tzinfo=timezone.utc), datetime(2024, 12, 31, 23, tzinfo=timezone.utc), 0.0012),
    "4h": (timedelta(hours=4), datetime(2020, 1, 6, tzinfo=timezone.utc), datetime(2024, 12, 31, 20, tzinfo=timezone.utc), 0.0024),
    "1d": (timedelta(days=1), datetime(2015, 1, 1, tzinfo=timezone.utc), datetime(2024, 12, 31, tzinfo=timezone.utc), 0.0060),
}
DEFAULT_SEED = 42


def bar_times(timeframe: str):
    step, t, end = TIMEFRAMES[timeframe][:3]
    while t <= end:
        if t.weekday() < 5:  # FX trades on weekdays
            yield t
        t += step


def generate_series(symbol: str, timeframe: str, seed: int = DEFAULT_SEED) -> list[tuple]:
    price0, vol_mult = SYMBOLS.get(symbol, (100.0, 1.0))
    sigma = TIMEFRAMES[timeframe][3] * vol_mult
    rng = random.Random(f"{symbol}/{timeframe}/{seed}")  # str seeds hash deterministically (sha512)
    trend, drift, regime_left = 0.0, 0.0, 0
    swing, velocity = 0.0, 0.0
    rows, prev_close = [], price0
    for ts in bar_times(timeframe):
        if regime_left <= 0:  # new trend regime every ~200 bars
            drift = rng.gauss(0.0, sigma * 0.08)
            regime_left = int(rng.expovariate(1 / 200)) + 20
        regime_left -= 1
        trend += drift + rng.gauss(0.0, sigma * 0.3)
        # Noise-driven damped oscillator: swings run for a while (RSI reaches its extremes),
        # then revert (so extremes predict the next move).
        velocity = 0.85 * velocity - 0.02 * swing + rng.gauss(0.0, sigma * 0.4)
        swing += velocity
        close = price0 * math.exp(trend + swing + rng.gauss(0.0, sigma * 0.3))
        open_ = prev_close * math.exp(rng.gauss(0.0, sigma * 0.05))
        high = max(open_, close) * math.exp(abs(rng.gauss(0.0, sigma * 0.4)))
        low = min(open_, close) / math.exp(abs(rng.gauss(0.0, sigma * 0.4)))
        volume = int(1000 + 4000 * abs(close / prev_close - 1) / sigma + rng.randint(0, 500))
        rows.append((ts, open_, high, low, close, volume))
        prev_close = close
    return rows


def to_csv(rows: list[tuple], decimals: int) -> bytes:
    fmt = f"{{}},{{:.{decimals}f}},{{:.{decimals}f}},{{:.{decimals}f}},{{:.{decimals}f}},{{}}\n"
    lines = ["timestamp,open,high,low,close,volume\n"]
    lines += [fmt.format(ts.strftime("%Y-%m-%dT%H:%M:%SZ"), o, h, lo, c, v) for ts, o, h, lo, c, v in rows]
    return "".join(lines).encode()


def write_if_changed(path: Path, content: bytes) -> bool:
    if path.exists() and path.read_bytes() == content:
        return False
    tmp = path.with_suffix(".csv.tmp")
    tmp.write_bytes(content)
    tmp.replace(path)  # readers never see a half-written file
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--symbols", default="EURUSD,GBPUSD")
    parser.add_argument("--timeframes", default="1h,1d")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    timeframes = [t.strip() for t in args.timeframes.split(",") if t.strip()]
    unknown = [t for t in timeframes if t not in TIMEFRAMES]
    if unknown:
        parser.error(f"unknown timeframe(s) {unknown}; choose from {sorted(TIMEFRAMES)}")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    for symbol in symbols:
        decimals = 3 if SYMBOLS.get(symbol, (100.0,))[0] >= 20 else 5
        for tf in timeframes:
            rows = generate_series(symbol, tf, args.seed)
            path = args.data_dir / f"{symbol}_{tf}.csv"
            changed = write_if_changed(path, to_csv(rows, decimals))
            print(f"{'wrote' if changed else 'unchanged'} {path} ({len(rows)} bars, "
                  f"{rows[0][0]:%Y-%m-%d} .. {rows[-1][0]:%Y-%m-%d})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
