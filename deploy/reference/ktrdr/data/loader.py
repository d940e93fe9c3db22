"""Read ``<DATA_DIR>/<SYMBOL>_<TF>.csv`` (workers only; needs numpy). Workers never download data."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ktrdr.config import settings
from ktrdr.errors import DataError, DataNotFoundError

COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass
class OHLCV:
    symbol: str
    timeframe: str
    times: np.ndarray  # datetime64[s], UTC
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.times)

    def between(self, start: str | None, end: str | None) -> "OHLCV":
        """Bars with start <= date <= end (inclusive days, like ktrdr's date filters)."""
        mask = np.ones(len(self), dtype=bool)
        if start:
            mask &= self.times >= np.datetime64(start, "s")
        if end:
            mask &= self.times < np.datetime64(end, "D") + np.timedelta64(1, "D")
        return OHLCV(self.symbol, self.timeframe, self.times[mask], *(getattr(self, c)[mask] for c in COLUMNS))


def _parse_time(value: str) -> np.datetime64:
    ts = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if ts.tzinfo is not None:
        ts = ts.astimezone(timezone.utc).replace(tzinfo=None)
    return np.datetime64(ts, "s")


def data_path(symbol: str, timeframe: str) -> Path:
    return settings.data_dir() / f"{symbol}_{timeframe}.csv"


def load(symbol: str, timeframe: str, start: str | None = None, end: str | None = None) -> OHLCV:
    path = data_path(symbol, timeframe)
    if not path.is_file():
        raise DataNotFoundError(
            f"Data file not found: {path} (KTRDR_DATA_DIR={settings.data_dir()})",
            error_code="DATA-FileNotFound",
            suggestion="Workers read local CSV files only; create it with "
                       f"`python -m ktrdr.data.generate --data-dir {settings.data_dir()} --symbols {symbol} "
                       f"--timeframes {timeframe}` or copy real data there")
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip().lower() for h in next(reader, [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing or not header:
            raise DataError(f"{path}: missing columns {missing}; expected a datetime column then {', '.join(COLUMNS)}",
                            error_code="DATA-BadHeader")
        idx = [header.index(c) for c in COLUMNS]
        times, values = [], []
        for n, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                times.append(_parse_time(row[0]))
                values.append([float(row[i]) for i in idx])
            except (ValueError, IndexError) as exc:
                raise DataError(f"{path}, line {n}: {exc}", error_code="DATA-BadRow") from None
    arr = np.asarray(values, dtype=np.float64).reshape(-1, len(COLUMNS))
    order = np.argsort(np.asarray(times, dtype="datetime64[s]"), kind="stable")
    data = OHLCV(symbol, timeframe, np.asarray(times, dtype="datetime64[s]")[order],
                 *(arr[order, i] for i in range(len(COLUMNS))))
    selected = data.between(start, end)
    if len(selected) == 0:
        span = f"{data.times[0]} .. {data.times[-1]}" if len(data) else "no rows"
        raise DataError(f"No {symbol} {timeframe} bars between {start} and {end} in {path} (file covers {span})",
                        error_code="DATA-EmptyRange", suggestion="Choose dates inside the file's range")
    return selected
