"""The training loop: one epoch, one evaluation, and ``fit`` with early stopping.

Batches are cut from in-memory tensors by index (``x.index_select(0, idx)``), never through a per-row
``Dataset.__getitem__`` and collate: on tabular data that per-row path costs more than the model.
"""

from __future__ import annotations

import copy
import dataclasses
import json
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
from .files import json_default
from .losses import ElementwiseLoss
from .metrics import label_reports
from .optim_step import OptimizerStep
from .registry import Registry
from .sampling import LabelBalance, iterate_batches
from .thresholds import optimize_thresholds

__all__ = [
    "TensorRows",
    "EpochRecord",
    "OPTIMIZERS",
    "LR_SCHEDULERS",
    "DEFAULT_THRESHOLD",
    "build_optimizer",
    "train_one_epoch",
    "predict_proba",
    "evaluate",
    "fit",
    "FitResult",
    "FitState",
    "Schedule",
]

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5  # the decision threshold unless --optimize_thresholds tunes one


@dataclass
class TensorRows:
    """A split's features as tensors: ``num`` (n, n_numeric + n_flags) float32 and ``cat``
    (n, n_categorical) int64 codes; every model is called as ``model(rows.num, rows.cat)``."""

    num: torch.Tensor
    cat: torch.Tensor

    @classmethod
    def from_numpy(cls, rows: Any, device: "torch.device | str" = "cpu") -> "TensorRows":
        """From :class:`~imbalance.preprocessing.EncodedRows` (no copy on the CPU)."""
        return cls(num=torch.from_numpy(rows.num).to(device), cat=torch.from_numpy(rows.cat).to(device))

    def __len__(self) -> int:
        return self.num.shape[0]

    @property
    def device(self) -> torch.device:
        return self.num.device

    def index_select(self, idx: torch.Tensor) -> "TensorRows":
        # index_select is faster than x[idx] (no advanced-indexing machinery)
        return TensorRows(num=self.num.index_select(0, idx), cat=self.cat.index_select(0, idx))

    def slice(self, start: int, stop: int) -> "TensorRows":
        return TensorRows(num=self.num[start:stop], cat=self.cat[start:stop])


def member_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Sigmoid probabilities (B, L); a model that outputs k members' logits (B, k, L) gets the
    mean of its members' probabilities, as TabM's paper averages them."""
    prob = torch.sigmoid(logits.float())
    return prob.mean(dim=1) if prob.ndim == 3 else prob


def per_member_targets(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Targets shaped like ``logits``: every member of a (B, k, L) output is trained on the batch."""
    return targets.unsqueeze(1).expand_as(logits) if logits.ndim == 3 else targets


@dataclass
class EpochRecord:
    """What one epoch produced; passed to the logger, the collapse guard, early stopping and the
    checkpoint writer, and kept (as :meth:`summary`) in the run's history."""

    epoch: int
    lr: float
    train_loss: float
    val_loss: float
    train_loss_per_label: dict[str, float]
    val_loss_per_label: dict[str, float]
    val: dict[str, Any]  # label_metrics at the fixed threshold 0.5 ("labels", "macro")
    val_tuned: dict[str, Any]  # the same at thresholds tuned on these validation rows
    score: float = math.nan  # the early-stopping metric's value
    improved: bool = False  # the new best epoch
    best_epoch: int = -1
    best_score: float = math.nan
    member: int = 0  # which member of a seed ensemble (--ensemble) this epoch trained
    metric: str = ""  # the early-stopping metric as the epoch line names it, e.g. "macro_f1 (tuned thresholds)"
    tie: str = ""  # how an exact tie with the best epoch was broken, when there was one
    compared: str = ""  # the value compared with the best epoch's, when measured at its operating point

    def summary(self, label_names: Sequence[str]) -> dict[str, Any]:
        """The plain-data line kept in metrics.json's history."""
        return {"member": self.member, "epoch": self.epoch, "train_loss": self.train_loss, "val_loss": self.val_loss,
                "score": self.score, "lr": self.lr,
                "val_pos_pred": {n: self.val["labels"][n]["n_pos_pred"] for n in label_names}}

    def to_json(self) -> str:
        """The whole record as JSON (kept in last.pt for --resume: plain text loads with weights_only)."""
        return json.dumps(dataclasses.asdict(self), allow_nan=True, default=json_default)

    @classmethod
    def from_json(cls, text: str) -> "EpochRecord":
        return cls(**json.loads(text))


OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")
LR_SCHEDULERS: Registry[Callable[..., Optional["Schedule"]]] = Registry("lr scheduler")


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


@dataclass
class Schedule:
    """A learning-rate scheduler stepped once per epoch, with its state for ``--resume``."""

    scheduler: Any  # a torch.optim.lr_scheduler object
    uses_score: bool  # stepped with the epoch's early-stopping score (plateau) or without (cosine)

    def step(self, score: float) -> None:
        if not self.uses_score:
            self.scheduler.step()
        elif math.isfinite(score):
            self.scheduler.step(score)

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


# An LR scheduler entry returns a Schedule, or None for a constant rate.
@LR_SCHEDULERS.register("none")
def _no_schedule(optimizer: torch.optim.Optimizer, *, epochs: int, mode: str, patience: int) -> None:
    return None


@LR_SCHEDULERS.register("cosine")
def _cosine(optimizer: torch.optim.Optimizer, *, epochs: int, mode: str, patience: int) -> Schedule:
    return Schedule(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs)), uses_score=False)


@LR_SCHEDULERS.register("plateau")
def _plateau(optimizer: torch.optim.Optimizer, *, epochs: int, mode: str, patience: int) -> Schedule:
    # Halve the rate well before early stopping would give up.
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=0.5, patience=max(1, patience // 3))
    return Schedule(scheduler, uses_score=True)


def _progress(iterable: Any, *, total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm  # only when a bar is shown

    return tqdm(iterable, total=total, desc=desc, leave=False, unit="batch", disable=None)


def train_one_epoch(
    model: nn.Module,
    x: TensorRows,
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
    label_balance: Optional[LabelBalance] = None,
) -> dict[str, Any]:
    """One pass over ``indices`` (an epoch drawn by a sampler). Returns the mean training loss.

    A model with k member outputs (B, k, L) is trained with the loss of every member.
    ``label_balance`` (weighted sampling on several labels) corrects each label's loss per row.
    """
    model.train()
    indices = indices.to(x.device)
    total = torch.zeros(y.shape[1], dtype=torch.float64, device=x.device)
    rows = 0
    n_batches = math.ceil(indices.numel() / batch_size)
    stepper = OptimizerStep(optimizer)
    params = stepper.params
    for idx in _progress(iterate_batches(indices, batch_size), total=n_batches, enabled=progress, desc=desc):
        xb = x.index_select(idx)
        if amp:
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                logits = model(xb.num, xb.cat)
        else:  # no context manager per step: at batch 32 every microsecond of overhead shows
            logits = model(xb.num, xb.cat)
        yb = y.index_select(0, idx)
        per_element = loss_fn.elementwise(logits, per_member_targets(logits, yb))  # float32
        if per_element.ndim == 3:  # every member's loss counts; the mean over members per row
            per_element = per_element.mean(dim=1)
        if label_balance is not None:
            per_element = per_element * label_balance.factors(yb)
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
def predict_logits(model: nn.Module, x: TensorRows, *, batch_size: int = 8192, amp: bool = False) -> torch.Tensor:
    """The model's logits for every row, in chunks: (n, L) or (n, k, L), float32."""
    model.eval()
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        parts = [model(*_pair(x.slice(i, i + batch_size))).float() for i in range(0, len(x), batch_size)]
    if not parts:  # no rows: one tiny forward pass tells the output shape
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            probe = model(torch.zeros((1, x.num.shape[1]), device=x.device), torch.zeros((1, x.cat.shape[1]), dtype=torch.int64, device=x.device))
        return torch.empty((0, *probe.shape[1:]), device=x.device)
    return torch.cat(parts)


def _pair(rows: TensorRows) -> tuple[torch.Tensor, torch.Tensor]:
    return rows.num, rows.cat


@torch.no_grad()
def predict_proba(models: "nn.Module | Sequence[nn.Module]", x: TensorRows, *, batch_size: int = 8192, amp: bool = False,
                  offsets: Optional[Any] = None) -> torch.Tensor:
    """Probabilities (n, L), float32, on the input's device: the sigmoid of the logits, averaged
    over a model's own members (TabM) and over the models of an ensemble. ``offsets`` (models, L),
    optional: subtracted from each model's logits first (the ``prior`` calibration)."""
    models = [models] if isinstance(models, nn.Module) else list(models)
    total = None
    for i, model in enumerate(models):
        logits = predict_logits(model, x, batch_size=batch_size, amp=amp)
        if offsets is not None:
            logits = logits - torch.as_tensor(np.asarray(offsets)[i], dtype=logits.dtype, device=logits.device)
        prob = member_probabilities(logits)
        total = prob if total is None else total + prob
    return total / len(models)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: TensorRows,
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
    dist = dist or DistContext()
    start, stop = dist.row_range(len(x))
    logits = dist.gather_rows(predict_logits(model, x.slice(start, stop), batch_size=batch_size, amp=amp), len(x))
    if len(x):
        per_element = loss_fn.elementwise(logits, per_member_targets(logits, y)).double()
        per_label = (per_element.mean(dim=1) if per_element.ndim == 3 else per_element).mean(dim=0)
    else:
        per_label = torch.zeros(y.shape[1])
    prob = member_probabilities(logits).cpu().numpy()
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
    history: list[EpochRecord] = field(default_factory=list)
    stopped_early: bool = False


@dataclass
class FitState:
    """Where :func:`fit` stands after an epoch: with the model's and optimiser's own state, what
    ``--resume`` needs to go on from the next epoch exactly as if never stopped (dropout and
    batch order are seeded per epoch, so they need no saved random state)."""

    epoch: int  # the last completed epoch
    stopper: dict[str, Any]  # EarlyStopping.state_dict()
    scheduler: Optional[dict[str, Any]]  # Schedule.state_dict(), None for a constant rate
    best_state: dict[str, torch.Tensor]  # the weights of the best epoch so far
    history: list[EpochRecord]


EpochCallback = Callable[[EpochRecord, np.ndarray, FitState], None]


def fit(
    model: nn.Module,
    *,
    train: tuple[TensorRows, torch.Tensor],
    val: tuple[TensorRows, torch.Tensor],
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
    member: int = 0,
    resume: Optional[FitState] = None,
    tuned_thresholds: bool = False,
    stop_check: Optional[Callable[[EpochRecord], Optional[str]]] = None,
    label_balance: Optional[LabelBalance] = None,
) -> FitResult:
    """Train for up to ``epochs``, keeping the weights of the best epoch by ``early_stop_metric``.

    Each epoch's :class:`EpochRecord` is passed to ``on_epoch_end`` with the validation
    probabilities and the :class:`FitState` after it; ``record.improved`` tells whether it is
    the new best. Under ``torchrun`` (``dist``), ``model`` is the DistributedDataParallel
    wrapper, each process trains on its shard of every epoch, and ``on_epoch_end`` runs on rank
    0 only. ``resume`` (with the model and optimiser already loaded from the same moment) goes
    on after ``resume.epoch``. ``tuned_thresholds`` (``--optimize_thresholds``) measures the
    thresholded stopping metrics at the thresholds tuned on each epoch's validation predictions.
    ``stop_check`` (a search's pruner or deadline) may end training after any epoch by returning
    a reason; the best epoch so far is kept, as with early stopping. ``label_balance``: see
    :func:`train_one_epoch`.
    """
    dist = dist or DistContext()
    module = getattr(model, "module", model)  # the bare model inside a DDP wrapper
    watch = EARLY_STOP_METRICS.get(early_stop_metric)
    stopper = EarlyStopping(mode=watch.mode, patience=early_stop_patience, min_delta=min_delta)
    schedule = LR_SCHEDULERS.get(lr_scheduler)(optimizer, epochs=epochs, mode=watch.mode, patience=early_stop_patience)
    x_train, y_train = train
    x_val, y_val = val
    best_state = copy.deepcopy(module.state_dict())
    history: list[EpochRecord] = []
    first_epoch = 1
    if resume is not None:
        stopper.load_state_dict(resume.stopper)
        if schedule is not None and resume.scheduler is not None:
            schedule.load_state_dict(resume.scheduler)
        best_state = {k: v.clone() for k, v in resume.best_state.items()}
        history = list(resume.history)
        first_epoch = resume.epoch + 1
    # The best epoch's record: recall and precision at tuned thresholds are compared at its operating point.
    matched = tuned_thresholds and watch.held is not None
    best_record = next((r for r in reversed(history) if r.improved and r.member == member), None)
    y_val_np = y_val.cpu().numpy() if matched else None
    stopped_early = stopper.should_stop  # a resumed run may have stopped already
    last_epoch = first_epoch - 1 if stopped_early else epochs
    for epoch in range(first_epoch, last_epoch + 1):
        # Seeding per epoch makes dropout reproducible epoch by epoch, also across a resume.
        torch.manual_seed(seed * 100_003 + epoch)
        lr = optimizer.param_groups[0]["lr"]
        stats = train_one_epoch(
            model, x_train, y_train, dist.shard(sampler.epoch_indices(epoch)),
            loss_fn=loss_fn, optimizer=optimizer, batch_size=batch_size, grad_clip=grad_clip,
            progress=progress and dist.is_main, desc=f"epoch {epoch}", dist=dist, amp=amp, label_balance=label_balance,
        )
        if not math.isfinite(stats["loss"]):
            raise UserError(
                f"training loss became {stats['loss']} in epoch {epoch}; lower --lr or --class_weight_multiplier, or set --grad_clip 1.0"
            )
        val_record, val_prob = evaluate(
            model, x_val, y_val, loss_fn=loss_fn, label_names=label_names, threshold_metric=threshold_metric, dist=dist,
            amp=amp,
        )
        record = EpochRecord(
            epoch=epoch, lr=lr, train_loss=stats["loss"], val_loss=val_record["loss"],
            train_loss_per_label=dict(zip(label_names, stats["loss_per_label"])),
            val_loss_per_label=dict(zip(label_names, val_record["loss_per_label"])),
            val=val_record["at_default"], val_tuned=val_record["tuned"], member=member,
        )
        record.score = score = watch.read(record, tuned_thresholds)
        record.metric = watch.describe(early_stop_metric, tuned_thresholds)
        versus, keep = score, None
        if matched:  # recall (precision) at the best epoch's precision (recall): see early_stopping
            keep = watch.at_operating_point(record, y_val_np, val_prob, label_names)
            if best_record is not None:
                versus = watch.at_operating_point(best_record, y_val_np, val_prob, label_names)
                record.compared = f"{versus:.4f} at epoch {best_record.epoch}'s {watch.held}"
        record.improved = stopper.step(versus, epoch, watch.tiebreak(record) if watch.tiebreak else math.nan, keep=keep)
        record.best_epoch, record.best_score = stopper.best_epoch, stopper.best_score
        if stopper.last_tie is not None and watch.tiebreak is not None:
            tied, mine, theirs = stopper.last_tie
            record.tie = (f"tie with epoch {tied}, broken by val AUPRC {mine:.4f} vs {theirs:.4f}: "
                          f"{'this epoch' if record.improved else f'epoch {tied}'} kept")
        if record.improved:
            best_state = copy.deepcopy(module.state_dict())
            best_record = record
        history.append(record)
        if schedule is not None:
            # Compared at a moving operating point, recall and precision are no series a plateau
            # can follow: it follows the early stopping's own improvements instead.
            schedule.step(sum(r.improved for r in history if r.member == member) if matched else score)
        if on_epoch_end is not None and dist.is_main:
            on_epoch_end(record, val_prob, FitState(
                epoch=epoch, stopper=stopper.state_dict(), scheduler=None if schedule is None else schedule.state_dict(),
                best_state=best_state, history=history))
        reason = stop_check(record) if stop_check is not None else None
        if reason:
            stopped_early = True
            logger.info("training stopped after epoch %d: %s", epoch, reason)
            break
        if stopper.should_stop:
            stopped_early = True
            logger.info(
                "early stop after epoch %d: %s has not improved for %d epochs (best %.4f at epoch %d)",
                epoch, early_stop_metric, stopper.patience, stopper.best_score, stopper.best_epoch,
            )
            break
    best_epoch = stopper.best_epoch if stopper.best_epoch > 0 else history[-1].epoch
    if stopper.best_epoch < 0:
        best_state = copy.deepcopy(module.state_dict())
        logger.warning("%s was undefined in every epoch; keeping the last epoch's weights", early_stop_metric)
    return FitResult(
        best_epoch=best_epoch, best_score=stopper.best_score, best_state=best_state,
        history=history, stopped_early=stopped_early,
    )
