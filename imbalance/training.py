"""The training loop: one epoch, one evaluation, and ``fit`` with early stopping.

Batches are cut from in-memory tensors by index (``x.index_select(0, idx)``), never through a per-row
``Dataset.__getitem__`` and collate: on tabular data that per-row path costs more than the model.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .distributed import DistContext
from .early_stopping import EARLY_STOP_METRICS, EarlyStopping
from .errors import UserError
from .losses import ElementwiseLoss
from .metrics import label_reports
from .optim_step import OptimizerStep
from .registry import Registry
from .sampling import iterate_batches
from .thresholds import optimize_thresholds

__all__ = [
    "OPTIMIZERS",
    "LR_SCHEDULERS",
    "DEFAULT_THRESHOLD",
    "build_optimizer",
    "train_one_epoch",
    "predict_proba",
    "evaluate",
    "fit",
    "FitResult",
]

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5  # the decision threshold unless --optimize_thresholds tunes one

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")
LR_SCHEDULERS: Registry[Callable[..., Optional[Callable[[float], None]]]] = Registry("lr scheduler")


def _fused(cls: type, params: Any, **kwargs: Any) -> torch.optim.Optimizer:
    """The fused (single-kernel) implementation where torch has one for these parameters: for a
    small MLP the optimizer step is a large share of each training step."""
    params = list(params)
    try:
        return cls(params, fused=True, **kwargs)
    except (RuntimeError, ValueError):
        return cls(params, **kwargs)


@OPTIMIZERS.register("adam")
def _adam(params: Any, *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return _fused(torch.optim.Adam, params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("adamw")
def _adamw(params: Any, *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return _fused(torch.optim.AdamW, params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("sgd")
def _sgd(params: Any, *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)


def build_optimizer(name: str, model: nn.Module, *, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(name)(model.parameters(), lr=lr, weight_decay=weight_decay)


# An LR scheduler entry returns a per-epoch ``step(score)`` callable, or None for a constant rate.
@LR_SCHEDULERS.register("none")
def _no_schedule(optimizer: torch.optim.Optimizer, *, epochs: int, mode: str, patience: int) -> None:
    return None


@LR_SCHEDULERS.register("cosine")
def _cosine(optimizer: torch.optim.Optimizer, *, epochs: int, mode: str, patience: int) -> Callable[[float], None]:
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    return lambda score: scheduler.step()


@LR_SCHEDULERS.register("plateau")
def _plateau(optimizer: torch.optim.Optimizer, *, epochs: int, mode: str, patience: int) -> Callable[[float], None]:
    # Halve the rate well before early stopping would give up.
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=0.5, patience=max(1, patience // 3))
    return lambda score: scheduler.step(score) if math.isfinite(score) else None


def _progress(iterable: Any, *, total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm  # only when a bar is shown

    return tqdm(iterable, total=total, desc=desc, leave=False, unit="batch", disable=None)


def train_one_epoch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    indices: torch.Tensor,
    *,
    loss_fn: ElementwiseLoss,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    grad_clip: float = 0.0,
    progress: bool = False,
    desc: str = "train",
    dist: Optional[DistContext] = None,
    amp: bool = False,
) -> dict[str, Any]:
    """One pass over ``indices`` (an epoch drawn by a sampler). Returns the mean training loss."""
    model.train()
    indices = indices.to(x.device)
    total = torch.zeros(y.shape[1], dtype=torch.float64, device=x.device)
    rows = 0
    n_batches = math.ceil(indices.numel() / batch_size)
    stepper = OptimizerStep(optimizer)
    params = stepper.params
    for idx in _progress(iterate_batches(indices, batch_size), total=n_batches, enabled=progress, desc=desc):
        xb = x.index_select(0, idx)  # faster than x[idx] (no advanced-indexing machinery)
        if amp:
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                logits = model(xb)
        else:  # no context manager per step: at batch 32 every microsecond of overhead shows
            logits = model(xb)
        per_element = loss_fn.elementwise(logits, y.index_select(0, idx))  # losses compute in float32
        loss = per_element.mean()
        stepper.zero_grad()
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(params, grad_clip)
        stepper.step()
        # Accumulate on device: a .item() per batch would force a sync every step.
        total += per_element.detach().sum(dim=0)
        rows += idx.numel()
    if dist is not None and dist.enabled:  # the epoch's loss over every process's rows
        total = dist.sum(total)
        rows = int(dist.sum(torch.tensor(rows, device=x.device)))
    per_label = (total / max(rows, 1)).tolist()
    return {"loss": float(np.mean(per_label)), "loss_per_label": per_label, "rows": rows}


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, *, batch_size: int = 8192) -> torch.Tensor:
    """Sigmoid probabilities (n, L), float32, on the input's device."""
    model.eval()
    if x.shape[0] == 0:
        return torch.empty((0, _out_features(model)), device=x.device)
    return torch.cat([torch.sigmoid(model(x[i : i + batch_size]).float()) for i in range(0, x.shape[0], batch_size)])


def _out_features(model: nn.Module) -> int:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    return last.out_features


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss_fn: ElementwiseLoss,
    label_names: Sequence[str],
    threshold_metric: str = "f1",
    batch_size: int = 8192,
    dist: Optional[DistContext] = None,
    amp: bool = False,
) -> tuple[dict[str, Any], np.ndarray]:
    """Validation loss and per-label metrics at 0.5 and at thresholds tuned on these rows.

    Under ``torchrun`` each process scores a chunk of the rows and the logits are gathered, so
    every process computes the same metrics from all predictions. Returns the metric dict and
    the probabilities (n, L) as a numpy array.
    """
    model.eval()
    dist = dist or DistContext()
    start, stop = dist.row_range(x.shape[0])
    part = x[start:stop]
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = torch.cat([model(part[i : i + batch_size]).float() for i in range(0, part.shape[0], batch_size)]) \
            if part.shape[0] else torch.empty((0, y.shape[1]), device=x.device)
    logits = dist.gather_rows(logits, x.shape[0])
    per_label = loss_fn.elementwise(logits, y).double().mean(dim=0) if x.shape[0] else torch.zeros(y.shape[1])
    prob = torch.sigmoid(logits).cpu().numpy()
    truth = y.cpu().numpy()
    fixed = np.full(len(label_names), DEFAULT_THRESHOLD)
    tuned, _ = optimize_thresholds(truth, prob, threshold_metric, fallback=DEFAULT_THRESHOLD, warn=False)
    record = {
        "loss": float(per_label.mean()),
        "loss_per_label": per_label.tolist(),
        **label_reports(truth, prob, {"at_default": fixed, "tuned": tuned}, list(label_names)),
    }
    return record, prob


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    best_state: dict[str, torch.Tensor]
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False


EpochCallback = Callable[[dict[str, Any], np.ndarray], None]


def fit(
    model: nn.Module,
    *,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    sampler: Any,
    loss_fn: ElementwiseLoss,
    optimizer: torch.optim.Optimizer,
    label_names: Sequence[str],
    epochs: int,
    batch_size: int,
    early_stop_metric: str,
    early_stop_patience: int,
    min_delta: float = 0.0,
    threshold_metric: str = "f1",
    lr_scheduler: str = "none",
    grad_clip: float = 0.0,
    seed: int = 0,
    progress: bool = False,
    on_epoch_end: Optional[EpochCallback] = None,
    dist: Optional[DistContext] = None,
    amp: bool = False,
) -> FitResult:
    """Train for up to ``epochs``, keeping the weights of the best epoch by ``early_stop_metric``.

    Each epoch's record (a plain dict) is passed to ``on_epoch_end`` with the validation
    probabilities; ``record["improved"]`` tells whether it is the new best. Under ``torchrun``
    (``dist``), ``model`` is the DistributedDataParallel wrapper, each process trains on its
    shard of every epoch, and ``on_epoch_end`` runs on rank 0 only.
    """
    dist = dist or DistContext()
    module = getattr(model, "module", model)  # the bare model inside a DDP wrapper
    watch = EARLY_STOP_METRICS.get(early_stop_metric)
    stopper = EarlyStopping(mode=watch.mode, patience=early_stop_patience, min_delta=min_delta)
    step_schedule = LR_SCHEDULERS.get(lr_scheduler)(optimizer, epochs=epochs, mode=watch.mode, patience=early_stop_patience)
    x_train, y_train = train
    x_val, y_val = val
    best_state = copy.deepcopy(module.state_dict())
    history = []
    stopped_early = False
    for epoch in range(1, epochs + 1):
        # Seeding per epoch makes dropout reproducible epoch by epoch, also across a resume.
        torch.manual_seed(seed * 100_003 + epoch)
        lr = optimizer.param_groups[0]["lr"]
        stats = train_one_epoch(
            model, x_train, y_train, dist.shard(sampler.epoch_indices(epoch)),
            loss_fn=loss_fn, optimizer=optimizer, batch_size=batch_size, grad_clip=grad_clip,
            progress=progress and dist.is_main, desc=f"epoch {epoch}", dist=dist, amp=amp,
        )
        if not math.isfinite(stats["loss"]):
            raise UserError(
                f"training loss became {stats['loss']} in epoch {epoch}; lower --lr or --class_weight_multiplier, or set --grad_clip 1.0"
            )
        val_record, val_prob = evaluate(
            model, x_val, y_val, loss_fn=loss_fn, label_names=label_names, threshold_metric=threshold_metric, dist=dist,
            amp=amp,
        )
        record = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": stats["loss"],
            "val_loss": val_record["loss"],
            "train_loss_per_label": dict(zip(label_names, stats["loss_per_label"])),
            "val_loss_per_label": dict(zip(label_names, val_record["loss_per_label"])),
            "val": val_record["at_default"],
            "val_tuned": val_record["tuned"],
        }
        score = watch.read(record)
        record["score"] = score
        record["improved"] = stopper.step(score, epoch, watch.tiebreak(record) if watch.tiebreak else math.nan)
        record["best_epoch"], record["best_score"] = stopper.best_epoch, stopper.best_score
        if record["improved"]:
            best_state = copy.deepcopy(module.state_dict())
        history.append(record)
        if on_epoch_end is not None and dist.is_main:
            on_epoch_end(record, val_prob)
        if step_schedule is not None:
            step_schedule(score)
        if stopper.should_stop:
            stopped_early = True
            logger.info(
                "early stop after epoch %d: %s has not improved for %d epochs (best %.4f at epoch %d)",
                epoch, early_stop_metric, stopper.patience, stopper.best_score, stopper.best_epoch,
            )
            break
    best_epoch = stopper.best_epoch if stopper.best_epoch > 0 else history[-1]["epoch"]
    if stopper.best_epoch < 0:
        best_state = copy.deepcopy(module.state_dict())
        logger.warning("%s was undefined in every epoch; keeping the last epoch's weights", early_stop_metric)
    return FitResult(
        best_epoch=best_epoch, best_score=stopper.best_score, best_state=best_state,
        history=history, stopped_early=stopped_early,
    )
