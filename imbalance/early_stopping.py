"""Early stopping on a validation metric, and the registry of metrics it can watch.

Thresholded metrics (F1, recall, precision) are measured at the thresholds that will be used:

- ``macro_f1``, ``macro_recall``, ``macro_precision``: with ``--optimize_thresholds``, at the
  thresholds tuned (for ``--threshold_metric``) on that epoch's validation predictions, as the
  final model's thresholds will be; without it, at 0.5. At 1-5% prevalence a few rows crossing
  0.5 swing the fixed-threshold values from epoch to epoch, and under heavy weighting every row
  can sit above 0.5 for the whole run; the tuned values follow how well the model ranks. They
  are optimistic as absolute numbers (tuned and scored on the same rows); the final report
  scores the test split instead.
- ``macro_f1_at_0.5``, ``macro_recall_at_0.5``, ``macro_precision_at_0.5``: always at 0.5.

Recall and precision at tuned thresholds are compared **at the best epoch's operating point**.
Thresholds tuned for F1 on a weak model sit at a loose, high-recall point and move to stricter
ones as the model learns to rank, so recall at each epoch's own tuned thresholds tends to fall
while the model gets better (measured on mammography under the very_aggressive preset: the
highest was at epoch 2 of 22, validation AUPRC 0.56 against 0.71 later, test AUPRC 0.45). So an
epoch improves on the best when, at thresholds that keep every label's precision at least at the
best epoch's (its tuned thresholds), its macro recall is higher than the best epoch's; for
``macro_precision``, its precision at the best epoch's recall. The new best then sets the
operating point for the epochs after it. The epoch line shows both values, the epoch's own and
the one compared.

Thresholded metrics tie exactly for many epochs at low prevalence (every row above 0.5: recall
1, F1 = 2p/(1+p); or below it: 0). An exact tie is broken by the validation macro AUPRC, so the
kept epoch keeps improving in ranking during such a plateau instead of freezing at its first
epoch; such a tie-break counts as an improvement, and the epoch's line says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from .registry import Registry
from .thresholds import MATCHED_PAIRS, best_with_floor

__all__ = ["EARLY_STOP_METRICS", "StopMetric", "EarlyStopping"]


@dataclass(frozen=True)
class StopMetric:
    mode: str  # "max" or "min"
    value: Callable[[Any, bool], float]  # (epoch record (training.EpochRecord), thresholds tuned?) -> value
    tiebreak: Optional[Callable[[Any], float]] = None  # maximised on exact ties
    thresholded: bool = False  # measured at decision thresholds (0.5, or tuned ones)
    held: Optional[str] = None  # at tuned thresholds, compared with this ("precision"/"recall") held at the best epoch's

    def at_operating_point(self, best: Any, y_true: np.ndarray, prob: np.ndarray, label_names: Sequence[str]) -> float:
        """The macro value of this metric on ``prob`` at the operating point of epoch record ``best``:
        per label the best value among thresholds where ``held`` is at least ``best``'s at its
        tuned thresholds."""
        floors = [best.val_tuned["labels"][name][self.held] for name in label_names]
        values = best_with_floor(y_true, prob, MATCHED_PAIRS[self.held], floors)
        return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan

    def read(self, record: Any, tuned: bool = False) -> float:
        return self.value(record, tuned)

    def describe(self, name: str, tuned: bool) -> str:
        """How the epoch line names it: 'macro_f1 (tuned thresholds)', 'macro_f1 (at 0.5)', 'macro_auprc'."""
        if not self.thresholded:
            return name
        return f"{name} ({'tuned thresholds' if tuned and not name.endswith('_at_0.5') else 'at 0.5'})"


def _val_auprc(record: Any) -> float:
    return record.val["macro"]["auprc"]


EARLY_STOP_METRICS: Registry[StopMetric] = Registry("early stop metric")

for _key in ("f1", "recall", "precision"):
    EARLY_STOP_METRICS.register(f"macro_{_key}")(StopMetric(
        "max", lambda r, tuned, k=_key: (r.val_tuned if tuned else r.val)["macro"][k], _val_auprc, thresholded=True,
        held=MATCHED_PAIRS.get(_key)))
    EARLY_STOP_METRICS.register(f"macro_{_key}_at_0.5")(StopMetric(
        "max", lambda r, tuned, k=_key: r.val["macro"][k], _val_auprc, thresholded=True))
for _key in ("auprc", "auroc"):
    EARLY_STOP_METRICS.register(f"macro_{_key}")(StopMetric("max", lambda r, tuned, k=_key: r.val["macro"][k]))
EARLY_STOP_METRICS.register("val_loss")(StopMetric("min", lambda r, tuned: r.val_loss))


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
        self.last_tie: Optional[tuple[int, float, float]] = None  # (tied best epoch, this tie-break, its tie-break)

    def step(self, score: float, epoch: int, tiebreak: float = math.nan, keep: Optional[float] = None) -> bool:
        """Record an epoch's score; True when it is the new best. ``keep``: the best score to
        remember when it is (default ``score``), for a score measured against the best epoch's
        operating point, which then becomes this epoch's own."""
        score, tiebreak = float(score), float(tiebreak)
        if math.isnan(score):
            improved = False
        elif self.best_epoch < 0:
            improved = True
        elif self.mode == "max":
            improved = score > self.best_score + self.min_delta
        else:
            improved = score < self.best_score - self.min_delta
        # An exact tie with the best epoch: the tie-break decides, and says how (shown per epoch).
        self.last_tie = None
        if not improved and score == self.best_score and self.best_epoch >= 0:
            self.last_tie = (self.best_epoch, tiebreak, self.best_tiebreak)
            improved = tiebreak > self.best_tiebreak
        if improved:
            self.best_score, self.best_epoch, self.bad_epochs = score if keep is None else float(keep), epoch, 0
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
