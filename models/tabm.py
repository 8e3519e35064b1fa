"""TabM (Gorishniy et al., "TabM: Advancing Tabular Deep Learning with Parameter-Efficient Ensembling").

One network that is an ensemble of k MLPs sharing most of their weights (BatchEnsemble: each
member multiplies a shared linear layer's input and output by its own vectors). All k members
see every batch and are trained together; the model returns every member's logits, (B, k,
n_labels), the loss is applied to each member, and predictions average the members'
probabilities. The paper found it the strongest of the tabular networks it compared, at about
the cost of one MLP of the same width run on a k-times larger batch.

Built with ``tabm.TabM.make``: numeric columns through the numeric embedding the input spec
names, categorical columns and 0/1 flags (as two-level categoricals) one-hot encoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .inputs import OneHot, categorical_cardinalities, categorical_codes, make_num_embeddings
from .mlp import use_cpu_dropout
from .registry import InputSpec, check_at_least_one, check_rates, register_model, setting

__all__ = ["TabM", "TabMSettings", "ARCH_TYPES", "DEFAULT_NUM_EMBEDDINGS"]

ARCH_TYPES = ("tabm", "tabm-mini", "tabm-packed")

# The TabM paper's best variant uses piecewise-linear embeddings (its version "B").
DEFAULT_NUM_EMBEDDINGS = "piecewise_linear"


# TabM.make's defaults are k=32 members of width 512; a step costs about k * d_block (every
# member's copy of the batch goes through every shared layer), 64x these defaults, which a 2-core
# CPU cannot afford. k=8 members of width 128 keep a stroke run within 3x the MLP's time.
@dataclass(frozen=True)
class TabMSettings:
    k: int = setting(8, "ensemble members trained together (>= 1); predictions average their probabilities")
    n_blocks: Optional[int] = setting(None, "hidden layers (>= 1); None: TabM's choice, 2 with numeric embeddings, 3 without")
    d_block: int = setting(128, "width of each hidden layer (>= 1)")
    dropout: float = setting(0.1, "dropout after each hidden layer, in [0, 1)")
    arch_type: str = setting("tabm", "tabm (BatchEnsemble layers) | tabm-mini (members differ only in an input scaling) | tabm-packed (k independent MLPs)")

    def __post_init__(self) -> None:
        check_at_least_one(self, "k", "n_blocks", "d_block")
        check_rates(self, "dropout")
        if self.arch_type not in ARCH_TYPES:
            raise ValueError(f"arch_type must be one of {', '.join(ARCH_TYPES)}, got {self.arch_type!r}")


@register_model("tabm", TabMSettings, num_embeddings=DEFAULT_NUM_EMBEDDINGS,
                summary="TabM (Gorishniy et al. 2025): k weight-sharing MLPs trained as one ensemble")
class TabM(nn.Module):
    """Logits of every member: (B, k, n_labels)."""

    def __init__(self, *, inputs: InputSpec, settings: TabMSettings) -> None:
        super().__init__()
        # Imported here: tabm imports rtdl_num_embeddings, which imports scikit-learn (about a second).
        import tabm

        self.n_numeric = inputs.n_numeric
        cardinalities = categorical_cardinalities(inputs)
        self.has_categorical = bool(cardinalities)
        kwargs = dict(
            n_num_features=inputs.n_numeric,
            cat_cardinalities=cardinalities,
            d_out=inputs.n_labels,
            num_embeddings=make_num_embeddings(inputs),
            k=settings.k,
            d_block=settings.d_block,
            dropout=settings.dropout,
            arch_type=settings.arch_type,
        )
        if settings.n_blocks is not None:  # else TabM.make's default, which depends on the embeddings
            kwargs["n_blocks"] = settings.n_blocks
        self.tabm = use_cpu_dropout(tabm.TabM.make(**kwargs))
        if self.has_categorical:
            # TabM's own one-hot is int64: with no numeric column to promote it to float, the
            # tabm-packed layers fail on it ("expected scalar type Long"). This one gives the
            # same values as float and needs no per-column tensors.
            self.tabm.cat_module = OneHot(cardinalities)

    @property
    def k(self) -> int:
        return self.tabm.k

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        numeric = x_num[:, : self.n_numeric] if self.n_numeric else None
        codes = categorical_codes(x_num, x_cat, self.n_numeric) if self.has_categorical else None
        return self.tabm(numeric, codes)
