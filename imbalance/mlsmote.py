"""MLSMOTE: synthetic minority rows for multi-label data (Charte, Rivera, del Jesus and Herrera,
"MLSMOTE: Approaching imbalanced multilabel learning through synthetic instance generation",
Knowledge-Based Systems 89, 2015). imbalanced-learn has no multi-label oversampler.

Works in the compact space of :class:`~imbalance.preprocessing.TabularPreprocessor` (standardised
numerics; categorical and yes/no columns as integer codes stored as floats). With c_l the number
of rows carrying label l, and labels with c_l = 0 left out of everything below:

- IRLbl(l) = max_j c_j / c_l and MeanIR = the mean of IRLbl over labels. Label l is a minority
  label when IRLbl(l) > MeanIR. With a single label (L = 1, binary) that label is the minority
  label and max_j c_j is replaced by the number of rows *without* it, so ratio 1.0 balances
  positives with negatives as binary SMOTE does.
- Each minority label l gets n_new(l) = max(0, ceil(ratio * max_j c_j) - c_l) synthetic rows
  (ratio 1.0 brings it up to the most frequent label's count; a ratio at or below its current
  share adds nothing). Counts are the original ones: labels that synthetic rows pick up by
  co-occurrence do not reduce what other labels get.
- Seeds come from l's minority bag (the rows carrying l): every bag row ``n_new // bag`` times,
  plus ``n_new % bag`` distinct rows drawn at random, so each is used equally, give or take one.
- Neighbours are the k nearest *within the bag*, the seed excluded, under a simple mixed distance
  (no HVDM): sqrt(sum of squared numeric differences + number of categorical mismatches),
  i.e. Euclidean on the numeric columns with a 0/1 mismatch per categorical column. It is exact
  Euclidean on [numeric, one-hot / sqrt(2)], which is what the neighbour search runs on.
- Features: one of the k neighbours is picked at random; numeric = seed + u * (neighbour - seed)
  with one u ~ U(0, 1) per synthetic row; categorical = the most frequent code among the seed and
  its k neighbours (a tie keeps the seed's code when it is among the most frequent, otherwise the
  smallest tied code), so codes stay valid.
- Labels (the paper's ranking): a label is set when more than half of {seed} and its k neighbours
  carry it, i.e. count > (k + 1) / 2; l itself is always set. This keeps label co-occurrence.
- A bag of fewer than 2 rows is skipped with a warning; one of at most k rows uses
  k = bag - 1, with a warning.

Results are grouped by label: ``added_per_label[l]`` rows for each l, in ``minority_labels`` order.
The same inputs and seed give the same rows.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from sklearn.neighbors import NearestNeighbors

from .errors import UserError

__all__ = ["MLSMOTEResult", "mlsmote", "label_imbalance"]

logger = logging.getLogger(__name__)

# ratio * count is compared after subtracting this, so 0.1 * 30 (3.0000000000000004) asks for 3.
_CEIL_SLACK = 1e-9


@dataclass
class MLSMOTEResult:
    """Synthetic rows only (append them to the originals yourself), grouped by generating label."""

    x: np.ndarray  # (m, d) float64, compact space
    y: np.ndarray  # (m, L) uint8
    seeds: np.ndarray  # (m,) int64, row index in the input of each synthetic row's seed
    minority_labels: list[int]
    added_per_label: dict[int, int]


def label_imbalance(y: np.ndarray) -> tuple[np.ndarray, float]:
    """(IRLbl per label, MeanIR); IRLbl is NaN for a label without positives, which MeanIR ignores."""
    counts = np.asarray(y).sum(axis=0, dtype=np.float64)
    present = counts > 0
    irlbl = np.full(counts.shape, np.nan)
    if not present.any():
        return irlbl, float("nan")
    irlbl[present] = counts[present].max() / counts[present]
    return irlbl, float(irlbl[present].mean())


def _validate(
    x: np.ndarray, y: np.ndarray, categorical: Sequence[bool], label_names: Optional[Sequence[str]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (rows, features), got shape {x.shape}")
    if y.ndim != 2:
        raise ValueError(f"y must be 2-D (rows, labels), got shape {y.shape}; use y[:, None] for one label")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must contain only 0 and 1")
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values; resample the encoded (imputed) matrix")
    cat = np.asarray(categorical, dtype=bool).reshape(-1)
    if cat.size != x.shape[1]:
        raise ValueError(f"categorical has {cat.size} entries but x has {x.shape[1]} columns")
    if label_names is not None and len(label_names) != y.shape[1]:
        raise ValueError(f"label_names has {len(label_names)} names but y has {y.shape[1]} labels")
    return x, y.astype(np.uint8), cat


def _search_space(bag: np.ndarray, cat: np.ndarray) -> np.ndarray:
    """Numeric columns as they are, each categorical one-hot / sqrt(2): Euclidean there = the mixed distance."""
    parts = [bag[:, ~cat]]
    for col in np.flatnonzero(cat):
        _, codes = np.unique(bag[:, col], return_inverse=True)
        onehot = np.zeros((bag.shape[0], int(codes.max()) + 1))
        onehot[np.arange(bag.shape[0]), codes] = math.sqrt(0.5)
        parts.append(onehot)
    return np.hstack(parts)


def _neighbours(space: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """(len(rows), k) bag positions of each row's k nearest bag members, the row itself excluded."""
    nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(space)
    idx = nn.kneighbors(space[rows], return_distance=False)
    # The row is normally its own first hit; with more than k exact duplicates it may be absent,
    # and then the farthest of the k + 1 is dropped instead.
    drop = idx == rows[:, None]
    drop[~drop.any(axis=1), -1] = True
    return idx[~drop].reshape(len(rows), k)


def _mode_codes(values: np.ndarray) -> np.ndarray:
    """(m, k + 1) codes, seed first -> the most frequent per row; ties keep the seed, else the smallest."""
    counts = (values[:, :, None] == values[:, None, :]).sum(axis=2)
    best = counts.max(axis=1)
    tied = np.where(counts == best[:, None], values, np.inf)
    return np.where(counts[:, 0] == best, values[:, 0], tied.min(axis=1))


def mlsmote(
    x: np.ndarray,
    y: np.ndarray,
    *,
    categorical: Sequence[bool],
    k_neighbors: int = 5,
    ratio: float = 1.0,
    seed: int = 0,
    label_names: Optional[Sequence[str]] = None,
) -> MLSMOTEResult:
    """Synthetic rows for each minority label (see the module docstring for the exact rules)."""
    x, y, cat = _validate(x, y, categorical, label_names)
    if int(k_neighbors) != k_neighbors or k_neighbors < 1:
        raise UserError(f"MLSMOTE k_neighbors must be a whole number >= 1, got {k_neighbors}")
    if not (math.isfinite(ratio) and ratio >= 0):
        raise UserError(f"MLSMOTE ratio must be a finite number >= 0, got {ratio}")
    k_neighbors = int(k_neighbors)
    n, d = x.shape
    n_labels = y.shape[1]
    names = [str(s) for s in label_names] if label_names is not None else [f"label {j}" for j in range(n_labels)]
    counts = y.sum(axis=0, dtype=np.int64)
    for j in np.flatnonzero(counts == 0):
        logger.warning("MLSMOTE: %s has no positive rows and is skipped", names[j])

    if n_labels == 1:
        minority = [0] if counts[0] > 0 else []
        target_count = n - int(counts[0])  # binary: balance against the negatives
    else:
        irlbl, mean_ir = label_imbalance(y)
        minority = [int(j) for j in np.flatnonzero(counts > 0) if irlbl[j] > mean_ir]
        target_count = int(counts.max())
    target = max(0, math.ceil(ratio * target_count - _CEIL_SLACK))

    rng = np.random.default_rng(seed)
    xs, ys, seeds = [], [], []
    added: dict[int, int] = {}
    for label in minority:
        bag_rows = np.flatnonzero(y[:, label])
        n_new = max(0, target - int(counts[label]))
        added[label] = 0
        if n_new == 0:
            continue
        if len(bag_rows) < 2:
            logger.warning(
                "MLSMOTE: %s has %d row(s), too few to interpolate; no rows are added for it", names[label], len(bag_rows)
            )
            continue
        k = k_neighbors
        if len(bag_rows) <= k:
            k = len(bag_rows) - 1
            logger.warning(
                "MLSMOTE: %s has only %d rows, so k_neighbors is reduced from %d to %d for it",
                names[label], len(bag_rows), k_neighbors, k,
            )

        # Seeds: whole passes over the bag, then the remainder without replacement.
        full, rest = divmod(n_new, len(bag_rows))
        pos = np.concatenate([np.tile(np.arange(len(bag_rows)), full), rng.choice(len(bag_rows), rest, replace=False)])
        used, inverse = np.unique(pos, return_inverse=True)
        near = _neighbours(_search_space(x[bag_rows], cat), used, k)[inverse]  # (n_new, k) bag positions
        group = bag_rows[np.column_stack([pos, near])]  # (n_new, k + 1) input rows, seed first

        pick = group[np.arange(n_new), 1 + rng.integers(0, k, size=n_new)]
        u = rng.random((n_new, 1))
        new_x = x[bag_rows[pos]] + u * (x[pick] - x[bag_rows[pos]])
        for col in np.flatnonzero(cat):
            new_x[:, col] = _mode_codes(x[group, col])

        votes = y[group].sum(axis=1, dtype=np.int64)  # (n_new, L)
        new_y = (2 * votes > k + 1).astype(np.uint8)
        new_y[:, label] = 1

        xs.append(new_x)
        ys.append(new_y)
        seeds.append(bag_rows[pos])
        added[label] = n_new
        logger.info("MLSMOTE: %s: %d rows -> +%d synthetic (k=%d)", names[label], len(bag_rows), n_new, k)

    return MLSMOTEResult(
        x=np.vstack(xs) if xs else np.empty((0, d)),
        y=np.vstack(ys) if ys else np.empty((0, n_labels), dtype=np.uint8),
        seeds=np.concatenate(seeds).astype(np.int64) if seeds else np.empty(0, dtype=np.int64),
        minority_labels=minority,
        added_per_label=added,
    )
