"""Self-contained checkpoints: plain data only, so ``torch.load(path, weights_only=True)`` works.

A checkpoint holds the model's name, its settings and input spec (``models.InputSpec``: feature
counts, category cardinalities, numeric-embedding bins), the weights of every member of a seed
ensemble (one member unless ``--ensemble``), the full resolved training config, the
preprocessing state, label names, decision thresholds, metrics, the epoch and a
``format_version``. ``last.pt`` adds the optimizer and early-stopping state for resuming.
Writes are atomic: a temporary file in the same folder, then a rename.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch

from .errors import UserError

__all__ = ["FORMAT_VERSION", "build_checkpoint", "save_checkpoint", "load_checkpoint", "resolve_checkpoint_path"]

FORMAT_VERSION = 2  # 2: model settings + input spec, a list of member weights, blocked feature encoding
_REQUIRED = ("format_version", "model_name", "model_settings", "inputs", "members", "preprocessing", "label_names", "thresholds")


def build_checkpoint(
    *,
    model_name: str,
    model_settings: Mapping[str, Any],
    inputs: Mapping[str, Any],
    members: Sequence[Mapping[str, torch.Tensor]],
    train_config: Mapping[str, Any],
    preprocessing: Mapping[str, Any],
    label_names: Sequence[str],
    thresholds: Sequence[float],
    threshold_source: str,
    epoch: int,
    metrics: Optional[Mapping[str, Any]] = None,
    id_col: Optional[str] = None,
    optimizer_state: Optional[Mapping[str, Any]] = None,
    early_stopping_state: Optional[Mapping[str, Any]] = None,
) -> dict[str, Any]:
    ckpt = {
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "model_settings": dict(model_settings),
        "inputs": dict(inputs),
        "members": [{k: v.detach().cpu().clone() for k, v in state.items()} for state in members],
        "train_config": dict(train_config),
        "preprocessing": dict(preprocessing),
        "label_names": list(label_names),
        "id_col": id_col,
        "thresholds": [float(t) for t in thresholds],
        "threshold_source": threshold_source,
        "epoch": int(epoch),
        "metrics": dict(metrics or {}),
        "torch_version": str(torch.__version__),
    }
    if optimizer_state is not None:
        ckpt["optimizer"] = optimizer_state
    if early_stopping_state is not None:
        ckpt["early_stopping"] = dict(early_stopping_state)
    return ckpt


def save_checkpoint(ckpt: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(dict(ckpt), tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def resolve_checkpoint_path(path: str | Path) -> Path:
    """A run folder means its ``best.pt``."""
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    if not path.is_file():
        raise UserError(f"--checkpoint: no checkpoint at '{path}'; pass a run folder with best.pt or a .pt file")
    return path


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint (a file, or a run folder's best.pt) with ``weights_only=True``."""
    path = resolve_checkpoint_path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)  # plain data only, no pickled objects
    except Exception as exc:  # torch raises several types for foreign or corrupt files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable checkpoint ({first})") from None
    if isinstance(ckpt, dict) and isinstance(ckpt.get("format_version"), int) and ckpt["format_version"] < FORMAT_VERSION:
        raise UserError(f"{path}: checkpoint format {ckpt['format_version']} was written by an older toolkit; "
                        f"this one reads format {FORMAT_VERSION}: retrain the model")
    if not isinstance(ckpt, dict) or any(key not in ckpt for key in _REQUIRED):
        raise UserError(f"{path}: not a checkpoint written by this toolkit (keys missing)")
    if ckpt["format_version"] > FORMAT_VERSION:
        raise UserError(
            f"{path}: checkpoint format {ckpt['format_version']} is newer than this toolkit reads ({FORMAT_VERSION}); upgrade the toolkit"
        )
    return ckpt
