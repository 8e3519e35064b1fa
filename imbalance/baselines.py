"""The simple models users would otherwise reach for, scored on the same split as the network.

Each baseline is fitted per label on the same encoded training rows as the network; its
threshold is tuned on the same validation rows when the run tunes thresholds, else 0.5.

    prior     the training prevalence for every row: the naive all-negative model (AUROC 0.5)
    logistic  sklearn LogisticRegression(class_weight="balanced") on numerics, flags and one-hot categories
    hgb       sklearn HistGradientBoostingClassifier(class_weight="balanced") with the category codes
              as native categorical features
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from .preprocessing import EncodedRows
from .registry import Registry

__all__ = ["BASELINES", "baseline_scores"]

logger = logging.getLogger(__name__)

# entry: (train rows, y_train (n,), cardinalities, seed) -> scorer(rows) -> probabilities (m,)
Scorer = Callable[[EncodedRows], np.ndarray]
BASELINES: Registry[Callable[[EncodedRows, np.ndarray, list[int], int], Scorer]] = Registry("baseline")


@BASELINES.register("prior")
def _prior(rows: EncodedRows, y: np.ndarray, cardinalities: list[int], seed: int) -> Scorer:
    rate = float(y.mean())
    return lambda new: np.full(len(new), rate)


@BASELINES.register("logistic")
def _logistic(rows: EncodedRows, y: np.ndarray, cardinalities: list[int], seed: int) -> Scorer:
    model = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed).fit(rows.one_hot(cardinalities), y)
    return lambda new: model.predict_proba(new.one_hot(cardinalities))[:, 1]


@BASELINES.register("hgb")
def _hgb(rows: EncodedRows, y: np.ndarray, cardinalities: list[int], seed: int) -> Scorer:
    # HistGradientBoosting bins at most 255 categories of a native categorical column; wider
    # ones go in as ordinal codes.
    native = [rows.num.shape[1] + j for j, c in enumerate(cardinalities) if c <= 255]
    model = HistGradientBoostingClassifier(class_weight="balanced", random_state=seed,
                                           categorical_features=native or None).fit(rows.native(), y)
    return lambda new: model.predict_proba(new.native())[:, 1]


def baseline_scores(
    name: str, train: EncodedRows, y_train: np.ndarray, parts: dict[str, EncodedRows], *, cardinalities: list[int],
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Fit baseline ``name`` per label; return its probabilities (m, L) for each of ``parts``."""
    build = BASELINES.get(name)
    out = {part: np.empty((len(rows), y_train.shape[1])) for part, rows in parts.items()}
    for j in range(y_train.shape[1]):
        scorer = build(train, y_train[:, j], list(cardinalities), seed)
        for part, rows in parts.items():
            out[part][:, j] = scorer(rows) if len(rows) else np.empty(0)
    return out
