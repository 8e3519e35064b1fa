"""Self-contained checkpoints: plain data only, so ``torch.load(path, weights_only=True)`` works.

A checkpoint holds the weights of every member (one unless ``--ensemble`` or ``--ensemble_top``)
and, for each, its model's name, settings and input spec (``models.InputSpec``: feature counts,
category cardinalities, numeric-embedding bins) in ``member_models``: a seed ensemble repeats one
model, an ``--ensemble_top`` ensemble holds different ones. The first member's model is also at
the top level (``model_name``, ``model_settings``, ``inputs``). Then the full resolved training config, the
preprocessing state, label names, decision thresholds, metrics, the epoch and a
``format_version`` and ``complete``: False in the checkpoints written while a run trains (they
hold the default 0.5 thresholds), True in the final ``best.pt``. ``last.pt`` adds what
``--resume`` needs. Writes go through :func:`imbalance.files.save_torch` (atomic).

Loading never unpickles code (``weights_only=True``), and a file that asks for it, or whose
fields do not fit together, is refused in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch

from .errors import UserError
from .files import save_torch

__all__ = ["FORMAT_VERSION", "build_checkpoint", "save_checkpoint", "load_checkpoint", "resolve_checkpoint_path",
           "is_torch_archive", "member_models"]

# 2: model settings + input spec, a list of member weights, blocked feature encoding;
# 3: member_models, the model of every member (members may be different models)
FORMAT_VERSION = 3
OLDEST_READABLE = 2  # a format-2 checkpoint is read as a format-3 one whose members share the top-level model
_MODEL_KEYS = ("model_name", "model_settings", "inputs")
# How torch's safe loader begins the message when a file holds objects beyond tensors and plain data.
_UNSAFE_MARK = "Weights only load failed"
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
    complete: bool = True,
    resume: Optional[Mapping[str, Any]] = None,
    member_models: Optional[Sequence[Mapping[str, Any]]] = None,
    calibration: Optional[Mapping[str, Any]] = None,
    reference: Optional[Mapping[str, Any]] = None,
) -> dict[str, Any]:
    """``member_models``: one ``{model_name, model_settings, inputs}`` per member; by default every
    member is the top-level model (a seed ensemble)."""
    top = {"model_name": model_name, "model_settings": dict(model_settings), "inputs": dict(inputs)}
    described = [dict(top) for _ in members] if member_models is None else [
        {"model_name": m["model_name"], "model_settings": dict(m["model_settings"]), "inputs": dict(m["inputs"])} for m in member_models]
    if len(described) != len(members):
        raise ValueError(f"{len(described)} member models for {len(members)} members")
    ckpt = {
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "model_settings": dict(model_settings),
        "inputs": dict(inputs),
        "members": [{k: v.detach().cpu().clone() for k, v in state.items()} for state in members],
        "member_models": described,
        "train_config": dict(train_config),
        "preprocessing": dict(preprocessing),
        "label_names": list(label_names),
        "id_col": id_col,
        "thresholds": [float(t) for t in thresholds],
        "threshold_source": threshold_source,
        "calibration": None if calibration is None else dict(calibration),
        "reference": None if reference is None else dict(reference),
        "epoch": int(epoch),
        "metrics": dict(metrics or {}),
        "torch_version": str(torch.__version__),
        "complete": bool(complete),
    }
    if optimizer_state is not None:
        ckpt["optimizer"] = optimizer_state
    if resume is not None:
        ckpt["resume"] = dict(resume)
    return ckpt


def save_checkpoint(ckpt: Mapping[str, Any], path: str | Path) -> Path:
    return save_torch(path, dict(ckpt))


def resolve_checkpoint_path(path: str | Path) -> Path:
    """A run folder means its ``best.pt``."""
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    if not path.is_file():
        raise UserError(f"--checkpoint: no checkpoint at '{path}'; pass a run folder with best.pt or a .pt file")
    return path


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu", allow_incomplete: bool = False) -> dict[str, Any]:
    """Load and check a checkpoint (a file, or a run folder's best.pt) with ``weights_only=True``.

    The checkpoint of a run that did not complete (written during training, or ``last.pt``) is
    refused unless ``allow_incomplete``: its thresholds are the default 0.5, not the tuned ones.
    """
    path = resolve_checkpoint_path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)  # plain data only, no pickled objects
    except Exception as exc:  # torch raises several types for foreign, corrupt or unsafe files
        if not is_torch_archive(path):  # torch.save writes a zip archive; anything else is not ours
            raise UserError(f"{path}: not a readable checkpoint (not a file written by torch.save); "
                            "use a checkpoint written by train_classifier.py") from None
        if _UNSAFE_MARK in str(exc):  # torch's own advice here would be a loading mode that runs the file's code
            raise UserError(f"{path}: refused: the file holds pickled Python objects, not only tensors and plain data, "
                            "and loading it could run code; use a checkpoint written by train_classifier.py") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable checkpoint ({first[:200]})") from None
    if isinstance(ckpt, dict) and isinstance(ckpt.get("format_version"), int) and ckpt["format_version"] < OLDEST_READABLE:
        raise UserError(f"{path}: checkpoint format {ckpt['format_version']} was written by an older toolkit; "
                        f"this one reads formats {OLDEST_READABLE} to {FORMAT_VERSION}: retrain the model")
    if not isinstance(ckpt, dict) or any(key not in ckpt for key in _REQUIRED):
        raise UserError(f"{path}: not a checkpoint written by this toolkit (keys missing)")
    if ckpt["format_version"] > FORMAT_VERSION:
        raise UserError(
            f"{path}: checkpoint format {ckpt['format_version']} is newer than this toolkit reads ({FORMAT_VERSION}); upgrade the toolkit"
        )
    if ckpt["format_version"] == 2:
        ckpt["member_models"] = [{key: ckpt[key] for key in _MODEL_KEYS} for _ in ckpt["members"]] \
            if isinstance(ckpt["members"], list) else []
    check_fields(ckpt, path)
    if not ckpt.get("complete", True) and not allow_incomplete:
        raise UserError(f"{path}: this checkpoint is from a run that did not complete: it holds epoch {ckpt.get('epoch', '?')} "
                        "and the default 0.5 thresholds, not tuned ones; finish the run (train_classifier.py --resume RUN_DIR) "
                        "or pass --allow_incomplete")
    return ckpt


def is_torch_archive(path: Path) -> bool:
    """Whether the file starts like torch.save's output (a zip archive)."""
    with path.open("rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


def check_fields(ckpt: Mapping[str, Any], path: str | Path) -> None:
    """The fields a predictor relies on, checked for type and for fitting together."""

    def bad(what: str) -> UserError:
        return UserError(f"{path}: damaged checkpoint: {what}; use the run's own best.pt or train again")

    labels, thresholds, members = ckpt["label_names"], ckpt["thresholds"], ckpt["members"]
    if not isinstance(labels, list) or not labels or not all(isinstance(n, str) for n in labels):
        raise bad("label_names is not a list of names")
    if not isinstance(thresholds, list) or len(thresholds) != len(labels):
        raise bad(f"{len(thresholds) if isinstance(thresholds, list) else 'no'} thresholds for {len(labels)} labels")
    if not all(isinstance(t, (int, float)) and 0.0 <= float(t) <= 1.0 for t in thresholds):
        raise bad("a threshold outside [0, 1]")
    if not isinstance(members, list) or not members or not all(isinstance(m, dict) for m in members):
        raise bad("no model weights")
    if not all(isinstance(v, torch.Tensor) for m in members for v in m.values()):
        raise bad("model weights that are not tensors")
    if not isinstance(ckpt["preprocessing"], dict):
        raise bad("preprocessing is not a table")
    described = ckpt.get("member_models")
    if not isinstance(described, list) or len(described) != len(members):
        raise bad(f"{len(described) if isinstance(described, list) else 'no'} member models for {len(members)} members")
    for model in [ckpt, *described]:
        if not isinstance(model, dict) or not all(key in model for key in _MODEL_KEYS):
            raise bad("a member without its model's name, settings and inputs")
        for key in ("model_settings", "inputs"):
            if not isinstance(model[key], dict):
                raise bad(f"{key} is not a table")
        if not isinstance(model["model_name"], str):
            raise bad("model_name is not a name")


def member_models(ckpt: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each member's ``{model_name, model_settings, inputs}`` (a checked checkpoint's)."""
    return [dict(m) for m in ckpt["member_models"]]
