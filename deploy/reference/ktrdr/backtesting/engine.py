"""Bar-by-bar backtest of a saved model: BUY/HOLD/SELL → long-only positions from FLAT."""

from __future__ import annotations

import math
import time
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ktrdr.config import settings
from ktrdr.config.strategy_loader import SIGNALS
from ktrdr.data import loader
from ktrdr.neural.features import BUY, SELL, build_features, normalize, timeframe_seconds
from ktrdr.neural.model import load_model
from ktrdr.workers.base import Job, torch

SHARED_MODELS_MARKER = "/.ktrdr/shared/models/"


def rewrite_model_path(requested: str, app_models: Path = settings.APP_MODELS_DIR) -> str:
    """ktrdr's backtest-worker rewrite: host paths of the shared model store map to /app/models."""
    if SHARED_MODELS_MARKER in requested:
        return str(app_models / requested.split(SHARED_MODELS_MARKER, 1)[1])
    p = PurePosixPath(requested)
    if p.is_absolute() and "/models/" in requested and not requested.startswith("/app/"):
        return str(app_models / requested.split("/models/", 1)[1])
    return requested


def resolve_model_path(requested: str | None, model_name: str, timeframe: str) -> tuple[Path, list[str]]:
    warnings: list[str] = []
    if not requested:
        latest = settings.models_dir() / model_name / f"{timeframe}_latest"
        if not latest.exists():
            raise FileNotFoundError(
                f"model_path is required for backtesting: none was given and there is no trained model at "
                f"{latest}. Train {model_name} first, or pass model_path (the training result's model_path)")
        warnings.append(f"model_path not given: used {latest} (-> {latest.resolve().name}); pass the training "
                        "result's model_path to pin a version")
        return latest, warnings
    rewritten = rewrite_model_path(requested)
    path = Path(rewritten)
    if rewritten != requested and not path.exists() and Path(requested).exists():
        path = Path(requested)  # reference-only leniency: the unrewritten path is really there
    if not path.exists():
        hint = f" (rewritten from {requested}: mount the model store at /app/models)" if rewritten != requested else ""
        raise FileNotFoundError(f"Model directory not found: {path}{hint}")
    return path, warnings


def _metrics(equity: np.ndarray, trades: list[dict[str, Any]], initial: float, bars_per_year: float) -> dict[str, Any]:
    final = float(equity[-1])
    total_return = final - initial
    rets = np.diff(equity) / equity[:-1] if len(equity) > 1 else np.array([0.0])
    years = max(len(equity) / bars_per_year, 1e-9)
    annualized = float((final / initial) ** (1 / years) - 1) if final > 0 else -1.0
    vol = float(rets.std() * math.sqrt(bars_per_year))
    downside = rets[rets < 0]
    sortino_den = float(downside.std() * math.sqrt(bars_per_year)) if len(downside) > 1 else 0.0
    peak = np.maximum.accumulate(equity)
    dd = peak - equity
    max_dd = float(dd.max())
    max_dd_pct = float((dd / peak).max() * 100)
    wins = [t for t in trades if t["pnl"] > 0]
    losses = [t for t in trades if t["pnl"] <= 0]
    gross_win, gross_loss = sum(t["pnl"] for t in wins), -sum(t["pnl"] for t in losses)

    def mean(xs: list[float]) -> float:
        return float(np.mean(xs)) if xs else 0.0

    return {
        "total_return": total_return, "total_return_pct": total_return / initial * 100,
        "annualized_return": annualized * 100, "volatility": vol,
        "sharpe_ratio": float(rets.mean() * bars_per_year / vol) if vol > 0 else 0.0,
        "max_drawdown": max_dd, "max_drawdown_pct": max_dd_pct,
        "total_trades": len(trades), "winning_trades": len(wins), "losing_trades": len(losses),
        "win_rate": len(wins) / len(trades) if trades else 0.0,
        "profit_factor": float(gross_win / gross_loss) if gross_loss > 0 else None,  # None: no losses
        "avg_holding_period": mean([t["bars_held"] for t in trades]),
        "avg_win_holding_period": mean([t["bars_held"] for t in wins]),
        "avg_loss_holding_period": mean([t["bars_held"] for t in losses]),
        "avg_win": mean([t["pnl"] for t in wins]), "avg_loss": mean([t["pnl"] for t in losses]),
        "largest_win": float(max([t["pnl"] for t in wins], default=0.0)),
        "largest_loss": float(min([t["pnl"] for t in losses], default=0.0)),
        "calmar_ratio": annualized * 100 / max_dd_pct if max_dd_pct > 0 else 0.0,
        "sortino_ratio": float(rets.mean() * bars_per_year / sortino_den) if sortino_den > 0 else 0.0,
        "recovery_factor": total_return / max_dd if max_dd > 0 else 0.0,
    }


def zero_trade_warning(counts: dict[str, int]) -> str:
    total = sum(counts.values()) or 1
    dominant = max(counts, key=counts.get)
    shares = ", ".join(f"{s} {counts[s] / total:.1%}" for s in SIGNALS)
    why = ("positions start FLAT and a SELL from FLAT does nothing" if dominant == "SELL"
           else "no BUY signal ever opened a position" if counts["BUY"] == 0
           else "BUY signals never came while FLAT")
    return (f"0 trades: the model's dominant signal is {dominant} ({counts[dominant] / total:.1%} of {total} bars; "
            f"{shares}); {why}. The model is biased: check its training labels and class balance")


def run_backtest(job: Job, *, strategy_name: str, model_name: str, symbol: str, timeframe: str, start_date: str,
                 end_date: str, initial_capital: float, commission: float, slippage: float,
                 model_path: str | None) -> dict[str, Any]:
    t0 = time.monotonic()
    path, warnings = resolve_model_path(model_path, model_name, timeframe)
    model, metadata, config = load_model(path)
    timeframes = metadata.get("training_timeframes") or [timeframe]
    if timeframe != timeframes[0]:
        raise ValueError(f"Model {path} was trained on {timeframes[0]} bars; a {timeframe} backtest needs a "
                         f"model trained on {timeframe}")
    job.progress(2.0, f"Loading {symbol} {', '.join(timeframes)} data")
    # Load from the file's start so indicators are warm at start_date; trade only inside the range.
    data = {tf: loader.load(symbol, tf, None, end_date) for tf in timeframes}
    x, features = build_features(config, data, timeframe)
    if [f["feature_id"] for f in features] != metadata["resolved_features"]:
        raise ValueError(f"Features built from {path}/config.json differ from the model's metadata_v3.json")
    x = normalize(x, features, metadata.get("normalization_params") or {})  # raw_indicator inputs, as trained
    base = data[timeframe]
    in_range = (base.times >= np.datetime64(start_date, "s")) & ~np.isnan(x).any(axis=1)
    idx = np.flatnonzero(in_range)
    if len(idx) == 0:
        raise ValueError(f"No {symbol} {timeframe} bars with warm indicators between {start_date} and {end_date}")

    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(x[idx])), dim=1).numpy()
    signals = probs.argmax(1)
    threshold = float((config.get("decisions") or {}).get("confidence_threshold", 0.0) or 0.0)
    signals = np.where(probs.max(1) >= threshold, signals, SIGNALS.index("HOLD"))

    cash, units, entry = float(initial_capital), 0.0, None
    equity = np.empty(len(idx))
    trades: list[dict[str, Any]] = []
    close, times = base.close, base.times

    def close_position(k: int, bar_idx: int, reason: str) -> None:
        nonlocal cash, units, entry
        price = close[bar_idx] * (1 - slippage)
        proceeds = units * price * (1 - commission)
        trades.append({"entry_time": str(times[entry[0]]), "exit_time": str(times[bar_idx]), "entry_price": entry[1],
                       "exit_price": price, "units": units, "pnl": proceeds - entry[2],
                       "bars_held": k - entry[3], "exit_reason": reason})
        cash, units, entry = cash + proceeds, 0.0, None

    for k, bar_idx in enumerate(idx):  # decisions act on the bar's close, one bar at a time
        signal = signals[k]
        if signal == BUY and units == 0.0:
            price = close[bar_idx] * (1 + slippage)
            cost = cash
            units = cash / (price * (1 + commission))
            entry, cash = (bar_idx, price, cost, k), 0.0
        elif signal == SELL and units > 0.0:
            close_position(k, bar_idx, "signal")
        equity[k] = cash + units * close[bar_idx]
        if k % 500 == 0:
            job.progress(5 + 90 * k / len(idx), f"Backtesting {symbol} {timeframe} [{str(times[bar_idx])[:10]}]",
                         items_processed=k, items_total=len(idx))
    if units > 0.0:
        close_position(len(idx) - 1, idx[-1], "end_of_data")
        equity[-1] = cash

    counts = {s: int((signals == i).sum()) for i, s in enumerate(SIGNALS)}
    if not trades:
        warnings.append(zero_trade_warning(counts))
    span_years = (times[idx[-1]] - times[idx[0]]).astype("timedelta64[s]").astype(float) / (365.25 * 86400)
    bars_per_year = len(idx) / span_years if span_years > 0 else 365.25 * 86400 / timeframe_seconds(timeframe)
    job.progress(100.0, f"Backtest complete: {len(trades)} trades", items_processed=len(idx), items_total=len(idx))
    return {
        "strategy_name": strategy_name, "symbol": symbol, "timeframe": timeframe,
        "start_time": str(times[idx[0]]), "end_time": str(times[idx[-1]]),
        "execution_time_seconds": round(time.monotonic() - t0, 3),
        "config": {"initial_capital": initial_capital, "commission": commission, "slippage": slippage,
                   "start_date": start_date, "end_date": end_date},
        "model_path": str(path), "model_version_dir": str(path.resolve()),
        "trade_count": len(trades), "equity_curve_length": len(equity),
        "metrics": _metrics(equity, trades, initial_capital, bars_per_year),
        "signal_distribution": counts,
        "warnings": warnings,
        "trades": trades[:50],
    }
