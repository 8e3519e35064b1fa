"""Bin edges for piecewise-linear numeric embeddings, fitted on the real training rows.

The edges come from ``rtdl_num_embeddings.compute_bins`` (Gorishniy et al., "On Embeddings for
Numerical Features in Tabular Deep Learning"):

- ``quantile``: edges at the training quantiles of each standardised numeric column;
- ``tree``: target-aware edges, the split points of a decision tree grown per column on the
  outcome. For several labels the tree's target is the row's label combination, so a split that
  separates any label's positives counts.

They are stored as plain lists of floats in the model's input spec (and so in the checkpoint).
A column with a single value in training gets one bin around it; the library needs at least
two distinct values per column.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

import numpy as np
import torch

from models.inputs import single_bin_warnings_ignored

from .registry import Registry

__all__ = ["BIN_METHODS", "fit_bins"]

logger = logging.getLogger(__name__)

# Quantiles of a million rows are as good as those of all rows, and compute_bins (torch.quantile)
# refuses above 2^24 rows; the trees fit faster on a sample too.
_MAX_ROWS = 1_000_000
# compute_bins' own example settings for tree bins: leaves of at least 64 rows, so that an edge
# is not drawn around a handful of positives.
_TREE_KWARGS = {"min_samples_leaf": 64, "min_impurity_decrease": 1e-4}

BIN_METHODS: Registry[Callable[[torch.Tensor, np.ndarray, int], list[torch.Tensor]]] = Registry("bin method")


@BIN_METHODS.register("quantile")
def _quantile(x: torch.Tensor, y: np.ndarray, n_bins: int) -> list[torch.Tensor]:
    from rtdl_num_embeddings import compute_bins

    return compute_bins(x, n_bins)


@BIN_METHODS.register("tree")
def _tree(x: torch.Tensor, y: np.ndarray, n_bins: int) -> list[torch.Tensor]:
    from rtdl_num_embeddings import compute_bins

    if y.shape[1] == 1:
        target = y[:, 0].astype(np.int64)
    else:  # one class per label combination seen
        _, target = np.unique(y, axis=0, return_inverse=True)
    return compute_bins(x, n_bins, y=torch.as_tensor(target.ravel()), regression=False, tree_kwargs=dict(_TREE_KWARGS))


def fit_bins(x: np.ndarray, y: np.ndarray, *, n_bins: int, method: str = "quantile", seed: int = 0) -> list[list[float]]:
    """Sorted bin edges (at least two) for every column of ``x`` (n, d) float, from labels ``y`` (n, L)."""
    build = BIN_METHODS.get(method)
    if x.shape[1] == 0:
        return []
    rng: Optional[np.random.Generator] = None
    if len(x) > _MAX_ROWS:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(x), _MAX_ROWS, replace=False))
        x, y = x[keep], y[keep]
    x = np.asarray(x, dtype=np.float32)
    edges: list[Optional[list[float]]] = [None] * x.shape[1]
    # The library needs more rows than bins and at least two bins: with two rows or fewer a
    # column gets one bin from its smallest to its largest value (half a unit around a constant).
    varying = [j for j in range(x.shape[1]) if len(x) > 2 and np.ptp(x[:, j]) > 0]
    for j in set(range(x.shape[1])) - set(varying):
        low, high = (float(x[:, j].min()), float(x[:, j].max())) if len(x) else (0.0, 0.0)
        edges[j] = [low, high] if high > low else [low - 0.5, low + 0.5]
    if varying:
        n_bins = min(n_bins, len(x) - 1)  # >= 2: there are at least three rows
        with single_bin_warnings_ignored():  # a column with few distinct values may get one bin
            fitted = build(torch.from_numpy(np.ascontiguousarray(x[:, varying])), np.asarray(y), n_bins)
        for j, column in zip(varying, fitted):
            edges[j] = [float(v) for v in column.tolist()]
    counts = [len(e) - 1 for e in edges]  # type: ignore[arg-type]
    logger.info("numeric embeddings: %s bins per column (%d-%d, %d columns)", method, min(counts), max(counts), len(counts))
    return edges  # type: ignore[return-value]
