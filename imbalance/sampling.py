"""Row weights for weighted sampling, and an O(rows) sampler that works beyond 2^24 rows.

For a training split with n rows and labels j = 1..L, let r_j = n_neg_j / n_pos_j (the label's
imbalance ratio). A row's weight under each ``--weight_method``:

    per_class   max(1, max over the row's positive labels of r_j)   (the worst imbalance it carries)
    aggressive  5 if the row carries any positive label, else 1
    balanced    sqrt(per_class weight)                               (half-way, on a log scale)

For one binary label these are: per_class r for positives (50% positives per batch),
aggressive 5, balanced sqrt(r). At 5% prevalence the expected share of positive rows per batch
is 18.7% (balanced) < 20.8% (aggressive) < 50% (per_class).

``torch.multinomial`` (and so ``WeightedRandomSampler``) refuses more than 2^24 categories. The
weights above take few distinct values, so :class:`WeightedIndexSampler` groups rows of equal
weight once, then draws every position independently: a group by its share of the total weight
(a search over a handful of groups), then a row uniformly within it. O(rows) per epoch, exact,
and already in random order.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional

import numpy as np
import pandas as pd
import torch

from .registry import Registry

__all__ = [
    "WEIGHT_METHODS",
    "row_weights",
    "expected_positive_share",
    "WeightedIndexSampler",
    "ShuffleSampler",
    "iterate_batches",
    "build_sampler",
]

RowWeightFn = Callable[[np.ndarray], np.ndarray]
WEIGHT_METHODS: Registry[RowWeightFn] = Registry("weight method")

# Above this many distinct weights the grouped draw stops paying; fall back to inverse-CDF.
_MAX_GROUPS = 4096


def _imbalance_ratios(y: np.ndarray) -> np.ndarray:
    n_pos = y.sum(axis=0, dtype=np.float64)
    n_neg = y.shape[0] - n_pos
    # A label without positives cannot be up-weighted; class-weight checks report it by name.
    return np.where(n_pos > 0, n_neg / np.maximum(n_pos, 1.0), 1.0)


@WEIGHT_METHODS.register("per_class")
def per_class_weights(y: np.ndarray) -> np.ndarray:
    weights = np.ones(y.shape[0], dtype=np.float64)
    for j, ratio in enumerate(_imbalance_ratios(y)):
        # One label at a time keeps memory at O(rows), not O(rows x labels) in float64.
        np.maximum(weights, np.where(y[:, j] > 0, ratio, 1.0), out=weights)
    return weights


@WEIGHT_METHODS.register("aggressive")
def aggressive_weights(y: np.ndarray) -> np.ndarray:
    return np.where(y.any(axis=1), 5.0, 1.0)


@WEIGHT_METHODS.register("balanced")
def balanced_weights(y: np.ndarray) -> np.ndarray:
    return np.sqrt(per_class_weights(y))


def row_weights(y: np.ndarray, method: str) -> np.ndarray:
    """Sampling weight (n,) for every training row of the (n, L) 0/1 label matrix ``y``."""
    y = np.asarray(y)
    if y.ndim == 1:
        y = y[:, None]
    return WEIGHT_METHODS.get(method)(y)


def expected_positive_share(y: np.ndarray, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Expected share of rows positive for each label in a batch drawn with ``weights`` (None = uniform)."""
    y = np.asarray(y)
    if y.ndim == 1:
        y = y[:, None]
    if weights is None:
        return y.mean(axis=0, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    return (weights @ y.astype(np.float64)) / weights.sum()


class WeightedIndexSampler:
    """Draws ``num_samples`` row indices with replacement, P(row i) proportional to ``weights[i]``.

    ``epoch_indices(epoch)`` depends only on (seed, epoch), so every process of a distributed
    run draws the same epoch and can take its own shard.
    """

    def __init__(self, weights: np.ndarray, *, num_samples: Optional[int] = None, seed: int = 0) -> None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1 or weights.size == 0:
            raise ValueError("weights must be a non-empty 1-D array")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError("weights must be finite, non-negative and not all zero")
        self.num_rows = weights.size
        self.num_samples = int(num_samples if num_samples is not None else weights.size)
        self.seed = int(seed)
        # Group rows by weight in O(rows): a hash factorisation, then a radix (stable) sort of
        # small integer codes; np.unique would sort the float weights themselves.
        codes, values = pd.factorize(weights, sort=True)
        if values.size <= _MAX_GROUPS:
            codes = codes.astype(np.int16)
            sizes = np.bincount(codes, minlength=values.size)
            self.group_rows_ = np.argsort(codes, kind="stable")  # rows sorted by group
            self.group_offsets_ = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            self.group_sizes_ = sizes
            mass = np.asarray(values, dtype=np.float64) * sizes
            self.group_cdf_ = np.cumsum(mass / mass.sum())
            self.last_group_ = int(np.flatnonzero(mass)[-1])
            self.cdf_ = None
        else:
            self.group_rows_ = None
            self.cdf_ = np.cumsum(weights)
            # Draws land at or below the last row of positive weight, never on a zero-weight tail.
            self.last_drawable_ = int(np.flatnonzero(weights)[-1])

    def _rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(epoch)])

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        rng = self._rng(epoch)
        n = self.num_samples
        if self.cdf_ is not None:
            draws = np.searchsorted(self.cdf_, rng.random(n) * self.cdf_[-1], side="right")
            return torch.from_numpy(np.minimum(draws, self.last_drawable_))
        # Independent draws, each position on its own: a group by its share of the weight, then a
        # row uniformly within the group. Already in random order, so no shuffle is needed.
        group = np.minimum(np.searchsorted(self.group_cdf_, rng.random(n), side="right"), self.last_group_)
        within = (rng.random(n) * self.group_sizes_[group]).astype(np.int64)
        return torch.from_numpy(self.group_rows_[self.group_offsets_[group] + within])


class ShuffleSampler:
    """Every row once per epoch in a fresh random order (no weighting).

    With ``num_samples`` above the row count (a distributed run needs an epoch that splits
    evenly over its processes) the permutation is padded with its own first rows.
    """

    def __init__(self, num_rows: int, *, num_samples: Optional[int] = None, seed: int = 0) -> None:
        self.num_rows = int(num_rows)
        self.num_samples = int(num_samples if num_samples is not None else num_rows)
        if self.num_samples < self.num_rows:
            raise ValueError("num_samples must be at least the number of rows")
        self.seed = int(seed)

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        order = np.random.default_rng([self.seed, int(epoch)]).permutation(self.num_rows)
        if self.num_samples > self.num_rows:
            order = np.concatenate([order, order[: self.num_samples - self.num_rows]])
        return torch.from_numpy(order)


def iterate_batches(indices: torch.Tensor, batch_size: int, *, drop_singleton: bool = True) -> Iterator[torch.Tensor]:
    """Consecutive slices of an epoch's indices; batches are then cut from tensors by ``X[idx]``.

    A trailing batch of one row is dropped: batch norm cannot train on it, and one row in an
    epoch changes nothing.
    """
    n = indices.numel()
    for start in range(0, n, batch_size):
        batch = indices[start : start + batch_size]
        if drop_singleton and batch_size > 1 and batch.numel() == 1 and n > 1:
            return
        yield batch


def build_sampler(
    y_train: np.ndarray, *, weighted: bool, method: str, seed: int, world_size: int = 1
) -> "WeightedIndexSampler | ShuffleSampler":
    """The training sampler: weighted draws with replacement, or a plain shuffle.

    An epoch is the row count rounded up to a multiple of ``world_size``, so that it splits
    evenly over the processes of a distributed run.
    """
    num_samples = -(-len(y_train) // world_size) * world_size
    if weighted:
        return WeightedIndexSampler(row_weights(y_train, method), num_samples=num_samples, seed=seed)
    return ShuffleSampler(len(y_train), num_samples=num_samples, seed=seed)
