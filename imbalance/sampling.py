"""Row weights for weighted sampling, the per-label correction that goes with them on several
labels, and an O(rows) sampler that works beyond 2^24 rows.

For a training split with n rows and labels j = 1..L, let r_j = n_neg_j / n_pos_j (the label's
imbalance ratio). Each ``--weight_method`` gives a positive of label j the weight a_j:

    per_class   a_j = max(1, r_j)        (a label's positives weigh as much as its negatives)
    aggressive  a_j = 5
    balanced    a_j = sqrt(max(1, r_j))  (half-way, on a log scale)

and a row the weight w_i = max(1, max over the row's positive labels of a_j), the strongest pull
it carries. For one binary label: per_class r for positives (50% positives per batch),
aggressive 5, balanced sqrt(r). At 5% prevalence the expected share of positive rows per batch
is 18.7% (balanced) < 20.8% (aggressive) < 50% (per_class).

**Several labels.** Rows drawn by w_i are over-represented for *every* label they carry: rows
of the rarest label (weight r_rare) would also dominate what the model learns about the other
labels, at the other labels' cost. So each label's loss is corrected per row by
:class:`LabelBalance`: label j's term of row i is multiplied by

    c_ij = (w_ij / w_i) * (W / W_j),    w_ij = a_j if the row is positive for j, else 1,

with W = sum_i w_i and W_j = sum_i w_ij. In expectation over the sampler, label j then sees
rows with probability proportional to w_ij (the sampler it would have had alone: half positives
under per_class) and keeps the scale of an unweighted mean. With one label c = 1 and nothing is
applied. Class weights are computed on that per-label mix (:func:`effective_positive_share`).

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
    "positive_weights",
    "row_weights",
    "expected_positive_share",
    "effective_positive_share",
    "LabelBalance",
    "WeightedIndexSampler",
    "ShuffleSampler",
    "iterate_batches",
    "build_sampler",
]

PositiveWeightFn = Callable[[np.ndarray], np.ndarray]  # imbalance ratios (L,) -> positive weights a (L,)
WEIGHT_METHODS: Registry[PositiveWeightFn] = Registry("weight method")

# Above this many distinct weights the grouped draw stops paying; fall back to inverse-CDF.
_MAX_GROUPS = 4096


def _as_matrix(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    return y[:, None] if y.ndim == 1 else y


def _imbalance_ratios(y: np.ndarray) -> np.ndarray:
    n_pos = y.sum(axis=0, dtype=np.float64)
    n_neg = y.shape[0] - n_pos
    # A label without positives cannot be up-weighted; class-weight checks report it by name.
    return np.where(n_pos > 0, n_neg / np.maximum(n_pos, 1.0), 1.0)


@WEIGHT_METHODS.register("per_class")
def _per_class(ratios: np.ndarray) -> np.ndarray:
    return np.maximum(1.0, ratios)


@WEIGHT_METHODS.register("aggressive")
def _aggressive(ratios: np.ndarray) -> np.ndarray:
    return np.full_like(ratios, 5.0)


@WEIGHT_METHODS.register("balanced")
def _balanced(ratios: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(1.0, ratios))


def positive_weights(y: np.ndarray, method: str) -> np.ndarray:
    """a (L,): the weight of a positive of each label under ``method``."""
    return np.asarray(WEIGHT_METHODS.get(method)(_imbalance_ratios(_as_matrix(y))), dtype=np.float64)


def row_weights(y: np.ndarray, method: str) -> np.ndarray:
    """Sampling weight (n,) for every training row of the (n, L) 0/1 label matrix ``y``."""
    y = _as_matrix(y)
    weights = np.ones(y.shape[0], dtype=np.float64)
    for j, a in enumerate(positive_weights(y, method)):
        # One label at a time keeps memory at O(rows), not O(rows x labels) in float64.
        np.maximum(weights, np.where(y[:, j] > 0, a, 1.0), out=weights)
    return weights


def expected_positive_share(y: np.ndarray, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Expected share of rows positive for each label in a batch drawn with ``weights`` (None = uniform)."""
    y = _as_matrix(y)
    if weights is None:
        return y.mean(axis=0, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    return (weights @ y.astype(np.float64)) / weights.sum()


def effective_positive_share(y: np.ndarray, method: str) -> np.ndarray:
    """Each label's positive share as its (corrected) loss sees it under weighted sampling:
    a_j n_pos / (n_neg + a_j n_pos). For one label, the share of positive rows per batch."""
    y = _as_matrix(y)
    n_pos = y.sum(axis=0, dtype=np.float64)
    a = positive_weights(y, method)
    return a * n_pos / (y.shape[0] - n_pos + a * n_pos)


class LabelBalance:
    """The per-(row, label) loss factors c_ij for weighted sampling on several labels (module
    docstring): ``factors(y_batch)`` (B, L) on the batch's device."""

    def __init__(self, y: np.ndarray, method: str, *, device: "torch.device | str" = "cpu") -> None:
        y = _as_matrix(y)
        a = positive_weights(y, method)
        n_pos = y.sum(axis=0, dtype=np.float64)
        total = row_weights(y, method).sum()  # W
        per_label = y.shape[0] - n_pos + a * n_pos  # W_j
        self.positive = torch.tensor(a, dtype=torch.float32, device=device)
        self.scale = torch.tensor(total / per_label, dtype=torch.float32, device=device)

    @classmethod
    def needed(cls, y: np.ndarray, *, weighted: bool, method: str, device: "torch.device | str" = "cpu") -> Optional["LabelBalance"]:
        """The correction for this training split, or None where it would be 1 (no weighted
        sampling, or one label)."""
        return cls(y, method, device=device) if weighted and _as_matrix(y).shape[1] > 1 else None

    def factors(self, y: torch.Tensor) -> torch.Tensor:
        per_label = torch.where(y > 0, self.positive, torch.ones_like(self.positive))  # w_ij
        row = per_label.amax(dim=1, keepdim=True).clamp_min(1.0)  # w_i
        return per_label / row * self.scale


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
