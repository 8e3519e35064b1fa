"""Input layers shared by the models: numeric-column embeddings and the flat input of MLP-like models.

Every model receives ``x_num`` (B, n_numeric + n_flags) float, standardised numeric columns first
and 0/1 flag columns after, and ``x_cat`` (B, n_categorical) int64 codes. What differs between
models is how those become the first layer's input:

- MLP-like models (MLP, ResNet) take one flat vector per row: :class:`FlatInput`;
- FT-Transformer and TabM take the numeric columns through :func:`make_num_embeddings`, the
  embedding the input spec names, and handle the rest themselves.

The embeddings are those of Gorishniy et al., "On Embeddings for Numerical Features in Tabular
Deep Learning", from the ``rtdl_num_embeddings`` package.
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from typing import Iterator, Optional

import torch
from torch import nn

from .registry import InputSpec

__all__ = [
    "FlatInput", "OneHot", "make_num_embeddings", "single_bin_warnings_ignored", "categorical_cardinalities",
    "categorical_codes", "PERIODIC_N_FREQUENCIES", "PERIODIC_FREQUENCY_INIT_SCALE",
]

# The package's defaults for PeriodicEmbeddings. Its README advises erring small on the
# frequency scale: a too-large scale can ruin a model, a too-small one only costs a little.
PERIODIC_N_FREQUENCIES = 48
PERIODIC_FREQUENCY_INIT_SCALE = 0.01


@contextlib.contextmanager
def single_bin_warnings_ignored() -> Iterator[None]:
    """Silence rtdl_num_embeddings' warning about a column with one bin (two edges).

    A column with one value range in training gets one bin; the library warns that this is
    min-max scaling, which is what such a column should get. It warns both when the bins are
    computed and when the embedding is built from them.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*has just two bin edges", category=UserWarning)
        yield


def categorical_cardinalities(inputs: InputSpec) -> list[int]:
    """The categorical columns, then every 0/1 flag as a two-level categorical: for models that
    embed or one-hot every non-numeric column (FT-Transformer, TabM)."""
    return list(inputs.cardinalities) + [2] * inputs.n_flags


def categorical_codes(x_num: torch.Tensor, x_cat: torch.Tensor, n_numeric: int) -> torch.Tensor:
    """The codes matching :func:`categorical_cardinalities`: ``x_cat``, then the flags of ``x_num`` as 0/1 codes."""
    if x_num.shape[1] == n_numeric:
        return x_cat
    return torch.cat([x_cat, x_num[:, n_numeric:].long()], dim=1)


def make_num_embeddings(inputs: InputSpec, *, d_embedding: Optional[int] = None) -> Optional[nn.Module]:
    """The embedding of the numeric columns that ``inputs`` names: (B, n_numeric) -> (B, n_numeric, d).

    None when the spec embeds nothing (``num_embeddings == "none"`` or no numeric column).
    ``d_embedding`` overrides the spec's width: FT-Transformer needs tokens as wide as its blocks.
    """
    if not inputs.embeds_numerics:
        return None
    # Imported here: the package imports scikit-learn (about a second) for its tree bins.
    from rtdl_num_embeddings import PeriodicEmbeddings, PiecewiseLinearEmbeddings

    width = inputs.d_embedding if d_embedding is None else d_embedding
    if inputs.num_embeddings == "piecewise_linear":
        assert inputs.bins is not None  # InputSpec checks it
        bins = [torch.tensor(edges, dtype=torch.float32) for edges in inputs.bins]
        with single_bin_warnings_ignored():
            # version "B" (from the TabM paper) starts as a plain linear embedding and learns the
            # piecewise-linear part from zero; TabM refuses the older version "A".
            return PiecewiseLinearEmbeddings(bins, width, activation=False, version="B")
    if inputs.num_embeddings == "periodic":
        # PLR (periodic -> per-column linear -> ReLU), the variant the package and the TabM
        # examples build by default; lite=False keeps a separate linear layer per column.
        return PeriodicEmbeddings(
            inputs.n_numeric,
            width,
            n_frequencies=PERIODIC_N_FREQUENCIES,
            frequency_init_scale=PERIODIC_FREQUENCY_INIT_SCALE,
            lite=False,
        )
    raise ValueError(f"unknown num_embeddings {inputs.num_embeddings!r}")


class OneHot(nn.Module):
    """One-hot codes of integer categorical columns, concatenated: (B, n) int64 -> (B, sum(cardinalities)) float.

    The same values as ``F.one_hot`` per column concatenated, from one scatter into a zero matrix:
    no per-column tensors, no int64 -> float copy, and no range check that would wait for the GPU
    on every batch (the codes are checked once, when the data is prepared).
    """

    def __init__(self, cardinalities: list[int]) -> None:
        super().__init__()
        self.d_out = int(sum(cardinalities))
        starts = [0, *itertools.accumulate(cardinalities)][: len(cardinalities)]
        # Not in the state_dict: it follows from the cardinalities, which the input spec stores.
        self.register_buffer("offsets", torch.tensor(starts, dtype=torch.int64), persistent=False)

    def forward(self, x_cat: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x_cat.shape[0], self.d_out, device=x_cat.device)
        return out.scatter_(1, x_cat + self.offsets, 1.0)


class FlatInput(nn.Module):
    """One flat vector per row: [numeric columns, embedded and flattened or as they are | flags | one-hot categoricals].

    ``d_out`` is its width. Any of the three parts may be empty.
    """

    def __init__(self, inputs: InputSpec) -> None:
        super().__init__()
        self.n_numeric = inputs.n_numeric
        self.n_flags = inputs.n_flags
        self.num_embeddings = make_num_embeddings(inputs)
        self.one_hot = OneHot(inputs.cardinalities) if inputs.cardinalities else None
        d_numeric = inputs.n_numeric * inputs.d_embedding if self.num_embeddings is not None else inputs.n_numeric
        self.d_out = d_numeric + inputs.n_flags + (self.one_hot.d_out if self.one_hot is not None else 0)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        if self.num_embeddings is None and self.one_hot is None:
            return x_num  # numeric columns and flags as they come: nothing to build
        parts = []
        if self.num_embeddings is not None:
            parts.append(self.num_embeddings(x_num[:, : self.n_numeric]).flatten(1))
            if self.n_flags:
                parts.append(x_num[:, self.n_numeric :])
        elif x_num.shape[1]:
            parts.append(x_num)
        if self.one_hot is not None:
            parts.append(self.one_hot(x_cat))
        # Under autocast an embedding may come out in bfloat16; cat promotes to the widest type.
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
