"""Early stopping on a validation metric, and the registry of metrics it can watch.

Thresholded metrics (F1, recall, precision) come in two variants:

- ``macro_f1``, ``macro_recall``, ``macro_precision``: at the fixed threshold 0.5;
- ``macro_f1_tuned``, ``macro_recall_tuned``, ``macro_precision_tuned``: at thresholds re-tuned
  on the validation split every epoch (for ``--threshold_metric``). At 1-5% prevalence a few rows
  crossing 0.5 swing the fixed-threshold values from epoch to epoch; the tuned ones follow how
  well the model ranks, and pick a steadier best epoch. They are optimistic as absolute numbers
  (tuned and scored on the same rows); the final report scores the test split instead.

Thresholded metrics tie exactly for many epochs at low prevalence: under heavy weighting every
row can sit above 0.5 (recall 1, F1 = 2p/(1+p)), or below it (0). An exact tie is broken by the
validation macro AUPRC, so the kept epoch keeps improving in ranking during such a plateau
instead of freezing at the first epoch of it; such a tie-break counts as an improvement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from .registry import Registry

__all__ = ["EARLY_STOP_METRICS", "StopMetric", "EarlyStopping"]


@dataclass(frozen=True)
class StopMetric:
    mode: str  # "max" or "min"
    read: Callable[[Any], float]  # epoch record (training.EpochRecord) -> value
    tiebreak: Optional[Callable[[Any], float]] = None  # maximised on exact ties


def _val_auprc(record: Any) -> float:
    return record.val["macro"]["auprc"]


EARLY_STOP_METRICS: Registry[StopMetric] = Registry("early stop metric")

for _name, _key in (("f1", "f1"), ("recall", "recall"), ("precision", "precision"), ("auprc", "auprc"), ("auroc", "auroc")):
    EARLY_STOP_METRICS.register(f"macro_{_name}")(
        StopMetric("max", lambda r, k=_key: r.val["macro"][k], None if _key in ("auprc", "auroc") else _val_auprc)
    )
for _name in ("f1", "recall", "precision"):
    EARLY_STOP_METRICS.register(f"macro_{_name}_tuned")(
        StopMetric("max", lambda r, k=_name: r.val_tuned["macro"][k], _val_auprc)
    )
EARLY_STOP_METRICS.register("val_loss")(StopMetric("min", lambda r: r.val_loss))


class EarlyStopping:
    """Tracks the best epoch; ``should_stop`` after ``patience`` epochs without an improvement
    larger than ``min_delta``. ``patience == 0`` never stops early. NaN never improves. An
    exact tie with the best score improves when its ``tiebreak`` value is higher."""

    def __init__(self, *, mode: str, patience: int, min_delta: float = 0.0) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.mode = mode
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best_score = -math.inf if mode == "max" else math.inf
        self.best_epoch = -1
        self.best_tiebreak = -math.inf
        self.bad_epochs = 0

    def step(self, score: float, epoch: int, tiebreak: float = math.nan) -> bool:
        """Record an epoch's score; True when it is the new best."""
        score, tiebreak = float(score), float(tiebreak)
        if math.isnan(score):
            improved = False
        elif self.best_epoch < 0:
            improved = True
        elif self.mode == "max":
            improved = score > self.best_score + self.min_delta
        else:
            improved = score < self.best_score - self.min_delta
        if not improved and score == self.best_score and tiebreak > self.best_tiebreak:
            improved = True
        if improved:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
            self.best_tiebreak = tiebreak if not math.isnan(tiebreak) else -math.inf
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "best_tiebreak": self.best_tiebreak}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best_score = float(state["best_score"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])
        self.best_tiebreak = float(state.get("best_tiebreak", -math.inf))
