"""Train / validation / test split, stratified on the outcome(s) when asked."""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit
from sklearn.model_selection import train_test_split

from .errors import UserError

__all__ = ["split_indices"]

logger = logging.getLogger(__name__)


def _holdout(
    rows: np.ndarray, y: np.ndarray, size: float, *, stratify: bool, seed: int, names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``rows`` into (kept, held out) with ``size`` the held-out share."""
    if not stratify:
        kept, held = train_test_split(rows, test_size=size, random_state=seed, shuffle=True)
        return kept, held
    labels = y[rows]
    if labels.shape[1] == 1:
        n_pos = int(labels.sum())
        if n_pos < 2 or n_pos > len(rows) - 2:
            raise UserError(
                f"label '{names[0]}' has {n_pos} positive row(s) of {len(rows)}: too few to stratify; "
                "add rows or run without --use_stratified_split"
            )
        kept, held = train_test_split(rows, test_size=size, random_state=seed, shuffle=True, stratify=labels[:, 0])
        return kept, held
    # Iterative stratification (Sechidis et al., 2011) keeps every label's prevalence per split.
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=size, random_state=seed)
    kept_pos, held_pos = next(splitter.split(np.zeros((len(rows), 1)), labels))
    return rows[np.sort(kept_pos)], rows[np.sort(held_pos)]


def split_indices(
    y: np.ndarray,
    *,
    val_fraction: float,
    test_fraction: float,
    stratify: bool,
    seed: int,
    label_names: Sequence[str],
) -> dict[str, np.ndarray]:
    """Row positions of each split: {"train", "val", "test"} (test empty when its fraction is 0).

    The test part is cut first, then validation from the rest, so the fractions are shares of
    all rows. Every split is sorted, so the result depends on the seed and not on row order.
    """
    y = np.asarray(y)
    if y.ndim == 1:
        y = y[:, None]
    rows = np.arange(y.shape[0])
    if y.shape[0] < 20:
        raise UserError(f"only {y.shape[0]} rows with an outcome: too few to split into train/validation/test")
    test = np.array([], dtype=np.int64)
    if test_fraction > 0:
        rows, test = _holdout(rows, y, test_fraction, stratify=stratify, seed=seed, names=label_names)
    train, val = _holdout(rows, y, val_fraction / (1.0 - test_fraction), stratify=stratify, seed=seed + 1, names=label_names)
    splits = {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    for part in ("val", "test"):
        if len(splits[part]) == 0:
            continue
        empty = [label_names[j] for j in np.flatnonzero(y[splits[part]].sum(axis=0) == 0)]
        if empty:
            fix = f"a larger --{part}_fraction" if stratify else f"--use_stratified_split or a larger --{part}_fraction"
            logger.warning(
                "the %s split has no positive rows for %s; its metrics for them are undefined (use %s)",
                part, ", ".join(empty), fix,
            )
    return splits
