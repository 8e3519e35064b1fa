"""The simple models users would otherwise reach for, scored on the same split as the network.

Each baseline is fitted per label on the same preprocessed training rows; its threshold is
tuned on the same validation rows when the run tunes thresholds, else 0.5.

    prior     the training prevalence for every row: the naive all-negative model (AUROC 0.5)
    logistic  sklearn LogisticRegression(class_weight="balanced")
    hgb       sklearn HistGradientBoostingClassifier(class_weight="balanced")
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from .registry import Registry

__all__ = ["BASELINES", "baseline_scores"]

logger = logging.getLogger(__name__)

# entry: (x_train, y_train (n,), seed) -> scorer(x) -> probabilities (m,)
Scorer = Callable[[np.ndarray], np.ndarray]
BASELINES: Registry[Callable[[np.ndarray, np.ndarray, int], Scorer]] = Registry("baseline")


@BASELINES.register("prior")
def _prior(x: np.ndarray, y: np.ndarray, seed: int) -> Scorer:
    rate = float(y.mean())
    return lambda rows: np.full(rows.shape[0], rate)


@BASELINES.register("logistic")
def _logistic(x: np.ndarray, y: np.ndarray, seed: int) -> Scorer:
    model = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed).fit(x, y)
    return lambda rows: model.predict_proba(rows)[:, 1]


@BASELINES.register("hgb")
def _hgb(x: np.ndarray, y: np.ndarray, seed: int) -> Scorer:
    model = HistGradientBoostingClassifier(class_weight="balanced", random_state=seed).fit(x, y)
    return lambda rows: model.predict_proba(rows)[:, 1]


def baseline_scores(
    name: str, x_train: np.ndarray, y_train: np.ndarray, parts: dict[str, np.ndarray], *, seed: int = 0
) -> dict[str, np.ndarray]:
    """Fit baseline ``name`` per label; return its probabilities (m, L) for each of ``parts``."""
    build = BASELINES.get(name)
    out = {part: np.empty((x.shape[0], y_train.shape[1])) for part, x in parts.items()}
    for j in range(y_train.shape[1]):
        scorer = build(x_train, y_train[:, j], seed)
        for part, x in parts.items():
            out[part][:, j] = scorer(x) if x.shape[0] else np.empty(0)
    return out
