"""The MLP and its on-disk layout (ktrdr's ModelStorage):
``<MODELS_DIR>/<yaml name>/<tf>_v<N>/`` + relative symlink ``<tf>_latest`` → newest version."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ktrdr.config.strategy_loader import SIGNALS

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}
REQUIRED_FILES = ("model.pt", "metadata_v3.json")


def build_mlp(input_size: int, architecture: dict[str, Any]) -> nn.Sequential:
    hidden = [int(h) for h in architecture.get("hidden_layers", [32, 16])]
    act = ACTIVATIONS.get(str(architecture.get("activation", "relu")).lower(), nn.ReLU)
    dropout = float(architecture.get("dropout", 0.0))
    layers: list[nn.Module] = []
    width = input_size
    for h in hidden:
        layers += [nn.Linear(width, h), act()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, len(SIGNALS)))  # logits; softmax happens at inference
    return nn.Sequential(*layers)


def _next_version_dir(root: Path, timeframe: str) -> Path:
    """Create ``<tf>_v<N+1>`` atomically; an existing directory is skipped, never an error."""
    root.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"^{re.escape(timeframe)}_v(\d+)$")
    n = max([int(m.group(1)) for p in root.iterdir() if (m := pattern.match(p.name))], default=0) + 1
    while True:
        path = root / f"{timeframe}_v{n}"
        try:
            path.mkdir()
            return path
        except FileExistsError:  # a concurrent training took this number
            n += 1


def _point_latest(root: Path, timeframe: str, target: Path) -> None:
    link = root / f"{timeframe}_latest"
    if link.exists() and not link.is_symlink():
        raise FileExistsError(f"{link} is a real directory, not the _latest symlink; move it away")
    tmp = root / f".{timeframe}_latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target.name)  # relative, so the store can be mounted anywhere
    os.replace(tmp, link)


def save_model(models_root: Path, strategy_name: str, timeframe: str, model: nn.Module,
               files: dict[str, dict[str, Any]]) -> Path:
    root = models_root / strategy_name
    try:
        path = _next_version_dir(root, timeframe)
    except PermissionError:
        raise PermissionError(f"Cannot create a model version under {root}: the models directory "
                              f"(KTRDR_DATA_MODELS_DIR) is not writable by uid {os.getuid()}. Mount it read-write "
                              "on training workers, owned by the container user") from None
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path / "model.pt")
    for name, content in files.items():
        (path / name).write_text(json.dumps(content, indent=2, default=str))
    _point_latest(root, timeframe, path)
    return path


def load_model(path: Path) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{path} is not a model directory: missing {', '.join(missing)}")
    metadata = json.loads((path / "metadata_v3.json").read_text())
    config_file = path / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else metadata["strategy_config"]
    model = build_mlp(metadata["input_size"], metadata["architecture"])
    model.load_state_dict(torch.load(path / "model.pt", map_location="cpu", weights_only=True))
    model.eval()
    return model, metadata, config
