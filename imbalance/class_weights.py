"""Per-label positive-class weights from training-split counts (never per batch).

The counts are those of the rows the model is trained on: the training split as it is, or, with
``--use_weighted_sampling``, the mix each label's loss sees under the sampler (n_pos = that
positive share x n; see :func:`imbalance.sampling.effective_positive_share`). So class weights
correct the imbalance that is left after sampling instead of multiplying with it: ``per_class``
sampling brings every label to 50/50, where ``balanced`` weights are 1 and ``aggressive`` ones 3.

With n rows, n_pos positives and n_neg = n - n_pos negatives for a label:

    none             1
    balanced         n / (2 * n_pos)
    inverse          n_neg / n_pos
    aggressive       3 * n_neg / n_pos
    very_aggressive  5 * n_neg / n_pos

then multiplied by ``--class_weight_multiplier`` (except ``none``, which stays 1).
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np

from .errors import UserError
from .registry import Registry

__all__ = ["CLASS_WEIGHT_METHODS", "compute_class_weights", "label_counts"]

logger = logging.getLogger(__name__)

WeightFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
CLASS_WEIGHT_METHODS: Registry[WeightFn] = Registry("class weight method")


@CLASS_WEIGHT_METHODS.register("none")
def _none(n_pos: np.ndarray, n_neg: np.ndarray) -> np.ndarray:
    return np.ones_like(n_pos, dtype=np.float64)


@CLASS_WEIGHT_METHODS.register("balanced")
def _balanced(n_pos: np.ndarray, n_neg: np.ndarray) -> np.ndarray:
    return (n_pos + n_neg) / (2.0 * n_pos)


@CLASS_WEIGHT_METHODS.register("inverse")
def _inverse(n_pos: np.ndarray, n_neg: np.ndarray) -> np.ndarray:
    return n_neg / n_pos


@CLASS_WEIGHT_METHODS.register("aggressive")
def _aggressive(n_pos: np.ndarray, n_neg: np.ndarray) -> np.ndarray:
    return 3.0 * n_neg / n_pos


@CLASS_WEIGHT_METHODS.register("very_aggressive")
def _very_aggressive(n_pos: np.ndarray, n_neg: np.ndarray) -> np.ndarray:
    return 5.0 * n_neg / n_pos


def label_counts(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n_pos, n_neg) per label of a (n, L) 0/1 matrix, as float64."""
    y = np.asarray(y)
    n_pos = y.sum(axis=0, dtype=np.float64)
    return n_pos, y.shape[0] - n_pos


def check_both_classes(y: np.ndarray, label_names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative counts per label of the training split; a label that lacks either is an error."""
    n_pos, n_neg = label_counts(y)
    names = list(label_names) if label_names is not None else [f"label {j}" for j in range(len(n_pos))]
    for count, kind in ((n_pos, "positive"), (n_neg, "negative")):
        empty = [names[j] for j in np.flatnonzero(count == 0)]
        if empty:
            raise UserError(
                f"label(s) {', '.join(empty)} have no {kind} rows in the training split; "
                "check the outcome column(s) or drop them from --target_cols"
            )
    return n_pos, n_neg


def compute_class_weights(
    y: np.ndarray, method: str, multiplier: float = 1.0, label_names: Sequence[str] | None = None,
    positive_share: np.ndarray | None = None,
) -> np.ndarray:
    """Weights (L,) for the training labels ``y`` (n, L); a label without positives or without
    negatives is an error. ``positive_share`` (L,), each label's positive share under weighted
    sampling: the counts become those of that mix."""
    fn = CLASS_WEIGHT_METHODS.get(method)
    n_pos, n_neg = check_both_classes(y, label_names)
    if positive_share is not None:
        share = np.clip(np.asarray(positive_share, dtype=np.float64), 1e-6, 1.0 - 1e-6)
        n = n_pos + n_neg
        n_pos, n_neg = share * n, (1.0 - share) * n
    if method == "none":
        if multiplier != 1.0:
            logger.warning("--class_weight_multiplier %g is ignored with --class_weight_method none", multiplier)
        return fn(n_pos, n_neg)
    return fn(n_pos, n_neg) * float(multiplier)
