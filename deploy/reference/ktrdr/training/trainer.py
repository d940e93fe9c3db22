"""Train a v3 strategy's MLP on its fuzzy (and raw indicator) features from local CSV data and save it."""

from __future__ import annotations

import resource
import time
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ktrdr.config import settings
from ktrdr.config.strategy_loader import SIGNALS, load_v3, training_params, training_symbols, training_timeframes
from ktrdr.data import loader
from ktrdr.neural.features import build_features, fit_normalization, make_labels, normalize
from ktrdr.neural.model import build_mlp, save_model
from ktrdr.workers.base import Job, device_name, torch, torch_device

SEED = 1234


def _dataset(config: dict[str, Any], symbols: list[str], start: str, end: str, labels_cfg: dict[str, Any],
             split: dict[str, float]) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[dict[str, str]], dict]:
    """Chronological train/validation/test split per symbol, then concatenated."""
    timeframes = training_timeframes(config)
    parts: dict[str, list] = {"train": [], "validation": [], "test": []}
    features: list[dict[str, str]] = []
    spans = []
    for symbol in symbols:
        data = {tf: loader.load(symbol, tf, start, end) for tf in timeframes}
        x, features = build_features(config, data, timeframes[0])
        y = make_labels(data[timeframes[0]].close, labels_cfg)
        ok = ~np.isnan(x).any(axis=1) & (y >= 0)
        x, y = x[ok], y[ok]
        if len(y) < 50:
            raise ValueError(f"Only {len(y)} usable {symbol} {timeframes[0]} samples between {start} and {end}; "
                             "widen the date range or check the data files")
        n_train, n_val = int(len(y) * split["train"]), int(len(y) * split["validation"])
        parts["train"].append((x[:n_train], y[:n_train]))
        parts["validation"].append((x[n_train:n_train + n_val], y[n_train:n_train + n_val]))
        parts["test"].append((x[n_train + n_val:], y[n_train + n_val:]))
        t = data[timeframes[0]].times[ok]
        spans.append((str(t[0]), str(t[-1])))
    sets = {k: (np.concatenate([p[0] for p in v]), np.concatenate([p[1] for p in v])) for k, v in parts.items()}
    return sets, features, {"first_bar": min(s[0] for s in spans), "last_bar": max(s[1] for s in spans)}


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Accuracy and macro precision/recall/F1 over the classes that occur."""
    classes = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    prec, rec, f1 = [], [], []
    for c in classes:
        tp = int(((y_pred == c) & (y_true == c)).sum())
        p = tp / max(int((y_pred == c).sum()), 1)
        r = tp / max(int((y_true == c).sum()), 1)
        prec.append(p), rec.append(r), f1.append(2 * p * r / (p + r) if p + r else 0.0)
    return {"accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
            "precision": float(np.mean(prec)), "recall": float(np.mean(rec)), "f1_score": float(np.mean(f1)),
            "prediction_distribution": {s: int((y_pred == i).sum()) for i, s in enumerate(SIGNALS)}}


def train_strategy(job: Job, strategy_yaml: str, strategy_path: str | None, symbols: list[str] | None,
                   start_date: str, end_date: str) -> dict[str, Any]:
    started_at = datetime.now(timezone.utc)
    t0 = time.monotonic()
    config = load_v3(strategy_yaml, strategy_path or "<strategy_yaml>")
    name, params = str(config["name"]), training_params(config)
    timeframes = training_timeframes(config)
    symbols = symbols or training_symbols(config)
    epochs, batch_size = params["epochs"], params["batch_size"]
    job.progress(1.0, f"Loading {', '.join(symbols)} {', '.join(timeframes)} data", 0, epochs)

    sets, features, span = _dataset(config, symbols, start_date, end_date, params["labels"], params["data_split"])
    # raw_indicator inputs: statistics from the training split only, applied to every split and
    # saved (metadata_v3.json normalization_params) so the backtest normalizes the same way.
    normalization_params = fit_normalization(config, sets["train"][0], features)
    if normalization_params:
        sets = {k: (normalize(x, features, normalization_params), y) for k, (x, y) in sets.items()}
    x_train, y_train = sets["train"]
    torch.manual_seed(SEED)
    device = torch_device()
    architecture = (config.get("model") or {}).get("architecture") or {}
    model = build_mlp(x_train.shape[1], architecture).to(device)
    # Opt-in (training.class_weights: balanced) inverse-frequency weights for rare BUY/SELL labels;
    # off by default so a model reflects its labels (v3_sell_bias relies on that).
    weight = None
    if (config.get("training") or {}).get("class_weights") == "balanced":
        counts = np.bincount(y_train, minlength=len(SIGNALS)).astype(np.float64)
        weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / (counts > 0).sum(), 0.0)
        weight = torch.tensor(weights, dtype=torch.float32, device=device)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    optimizer = torch.optim.Adam(model.parameters(), lr=params["learning_rate"])
    tensors = {k: (torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)) for k, (x, y) in sets.items()}
    xt, yt = tensors["train"]
    n_batches = max(1, (len(yt) + batch_size - 1) // batch_size)
    generator = torch.Generator().manual_seed(SEED)

    def evaluate(split: str) -> tuple[float, np.ndarray]:
        x, y = tensors[split]
        if len(y) == 0:
            return float("nan"), np.array([], dtype=np.int64)
        model.eval()
        with torch.no_grad():
            logits = model(x)
            loss = float(loss_fn(logits, y))
        model.train()
        return loss, logits.argmax(1).cpu().numpy()

    history = []
    for epoch in range(1, epochs + 1):
        e0, total = time.monotonic(), 0.0
        order = torch.randperm(len(yt), generator=generator).to(device)
        for b in range(n_batches):
            idx = order[b * batch_size:(b + 1) * batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            if b % 50 == 0 or b == n_batches - 1:  # also where a cancel takes effect
                job.progress(5 + 90 * ((epoch - 1) + (b + 1) / n_batches) / epochs,
                             f"Epoch {epoch}/{epochs} · Batch {b + 1}/{n_batches}", epoch - 1, epochs,
                             b + 1, n_batches)
        val_loss, val_pred = evaluate("validation")
        y_val = sets["validation"][1]
        record = {"epoch": epoch, "train_loss": total / len(yt), "val_loss": val_loss,
                  "val_accuracy": float((val_pred == y_val).mean()) if len(y_val) else None,
                  "duration_seconds": round(time.monotonic() - e0, 3)}
        history.append(record)
        job.metrics["epochs"] = list(history)
        job.progress(5 + 90 * epoch / epochs, f"Epoch {epoch}/{epochs}", epoch, epochs)

    test_loss, test_pred = evaluate("test")
    test_metrics = {**classification_metrics(sets["test"][1], test_pred), "loss": test_loss}
    job.progress(96.0, "Saving model", epochs, epochs)
    n_params = sum(p.numel() for p in model.parameters())
    label_counts = {s: int(c) for s, c in zip(SIGNALS, np.bincount(y_train, minlength=len(SIGNALS)))}
    data_summary = {"symbols": symbols, "timeframes": timeframes, "start_date": start_date, "end_date": end_date,
                    "first_bar": span["first_bar"], "last_bar": span["last_bar"],
                    "total_samples": int(sum(len(labels) for _features, labels in sets.values())),
                    "train_samples": int(len(y_train)), "feature_count": len(features),
                    "train_label_distribution": label_counts}
    training_metrics = {"epochs_trained": epochs, "final_train_loss": history[-1]["train_loss"],
                        "final_val_loss": history[-1]["val_loss"],
                        "final_val_accuracy": history[-1]["val_accuracy"], "epochs": history}
    model_info = {"parameters_count": n_params, "trainable_parameters": n_params,
                  "architecture": {"type": "mlp", **architecture, "input_size": len(features),
                                   "output_size": len(SIGNALS)}}
    metadata = {"strategy_name": name, "strategy_version": str(config.get("version", "3.0")),
                "created_at": datetime.now(timezone.utc).isoformat(), "model_type": "mlp",
                "output_type": "classification", "classes": list(SIGNALS), "input_size": len(features),
                "architecture": architecture, "resolved_features": [f["feature_id"] for f in features],
                "normalization_params": normalization_params,
                "training_symbols": symbols, "training_timeframes": timeframes, "context_sources": [],
                "decisions": config.get("decisions") or {}, "strategy_config": config,
                "training_device": device.type, "torch_version": torch.__version__}
    path = save_model(settings.models_dir(), name, timeframes[0], model, {
        "metadata_v3.json": metadata, "config.json": config,
        "features.json": {"feature_count": len(features), "features": features},
        "metrics.json": {"training_metrics": training_metrics, "test_metrics": test_metrics}})
    job.progress(100.0, f"Completed: saved {path}", epochs, epochs)
    return {
        "model_path": str(path),
        "training_metrics": training_metrics,
        "test_metrics": test_metrics,
        "artifacts": {"model_dir": str(path), "files": sorted(p.name for p in path.iterdir()),
                      "latest_symlink": str(path.parent / f"{timeframes[0]}_latest")},
        "model_info": model_info,
        "data_summary": data_summary,
        "session_info": {"strategy_name": name, "strategy_path": strategy_path, "device": device_name(),
                         "torch_version": torch.__version__, "started_at": started_at.isoformat(),
                         "duration_seconds": round(time.monotonic() - t0, 3)},
        "resource_usage": {"device": device.type, "torch_threads": torch.get_num_threads(),
                           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)},
    }
