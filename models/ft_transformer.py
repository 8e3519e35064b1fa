"""FT-Transformer (Gorishniy et al., "Revisiting Deep Learning Models for Tabular Data").

Every input column becomes a token of width ``d_block``: a numeric column through a per-column
linear map (the paper's choice) or the numeric embedding the input spec names; a categorical
column, and a 0/1 flag as a two-level categorical, through a per-column embedding table. A
learned [CLS] token is prepended, ``rtdl_revisiting_models.FTTransformerBackbone`` runs attention
over the tokens, and the [CLS] token's output gives one logit per label. Attention lets it model
interactions between columns directly, at a cost quadratic in the number of columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from rtdl_revisiting_models import CategoricalEmbeddings, FTTransformerBackbone, LinearEmbeddings
from torch import nn

from .inputs import categorical_cardinalities, categorical_codes, make_num_embeddings
from .mlp import use_cpu_dropout
from .registry import InputSpec, check_at_least_one, check_rates, register_model, setting

__all__ = ["FTTransformer", "FTTransformerSettings", "DEFAULT_NUM_EMBEDDINGS"]

# Linear numeric tokens, as in the paper; both other embeddings are one flag away.
DEFAULT_NUM_EMBEDDINGS = "none"


# The library's default configurations (FTTransformer.get_default_kwargs) go from 1 block of width
# 96 to 6 blocks of width 384. Attention over every column costs far more per step than an MLP on
# a CPU (a stroke-shaped batch of 64, one thread: about 31 ms per step for 2 blocks of width 64,
# 15 ms for one, 2 ms for the MLP), so the default is one block of width 64, which keeps a stroke
# run within 3x the MLP's time; on stroke and mammography (balanced preset, 3 seeds) it scored as
# well as two blocks. Give it more blocks and width on a GPU.
@dataclass(frozen=True)
class FTTransformerSettings:
    n_blocks: int = setting(1, "transformer blocks (>= 1)")
    d_block: int = setting(64, "token width (a multiple of attention_n_heads)")
    attention_n_heads: int = setting(8, "attention heads per block (>= 1, divides d_block)")
    attention_dropout: float = setting(0.15, "dropout on the attention weights, in [0, 1)")
    ffn_d_hidden_multiplier: float = setting(4 / 3, "feed-forward (ReGLU) hidden width as a multiple of d_block (> 0)")
    ffn_dropout: float = setting(0.05, "dropout inside each feed-forward block, in [0, 1)")
    residual_dropout: float = setting(0.0, "dropout on each attention / feed-forward output before the residual sum, in [0, 1)")

    def __post_init__(self) -> None:
        check_at_least_one(self, "n_blocks", "attention_n_heads")
        if self.d_block < 1 or self.d_block % self.attention_n_heads:
            raise ValueError(f"d_block must be a positive multiple of attention_n_heads ({self.attention_n_heads}), got {self.d_block}")
        if not self.ffn_d_hidden_multiplier > 0 or int(self.d_block * self.ffn_d_hidden_multiplier) < 1:
            raise ValueError(f"ffn_d_hidden_multiplier must be > 0 and leave a hidden width >= 1, got {self.ffn_d_hidden_multiplier}")
        check_rates(self, "attention_dropout", "ffn_dropout", "residual_dropout")


@register_model("ft_transformer", FTTransformerSettings, num_embeddings=DEFAULT_NUM_EMBEDDINGS,
                summary="FT-Transformer (Gorishniy et al. 2021): attention over one token per column")
class FTTransformer(nn.Module):
    """One token per column plus [CLS]; one logit per label from the [CLS] output."""

    def __init__(self, *, inputs: InputSpec, settings: FTTransformerSettings) -> None:
        super().__init__()
        d_block = settings.d_block
        self.n_numeric = inputs.n_numeric
        # Initialised like the library's own [CLS] embedding: uniform in +-1/sqrt(d).
        self.cls_token = nn.Parameter(torch.empty(d_block).uniform_(-(d_block**-0.5), d_block**-0.5))
        num_tokens = make_num_embeddings(inputs, d_embedding=d_block)  # tokens must be d_block wide
        if num_tokens is None and inputs.n_numeric:
            num_tokens = LinearEmbeddings(inputs.n_numeric, d_block)
        self.num_tokens = num_tokens
        cardinalities = categorical_cardinalities(inputs)
        self.cat_tokens = CategoricalEmbeddings(cardinalities, d_block) if cardinalities else None
        self.backbone = use_cpu_dropout(FTTransformerBackbone(
            d_out=inputs.n_labels,
            n_blocks=settings.n_blocks,
            d_block=d_block,
            attention_n_heads=settings.attention_n_heads,
            attention_dropout=settings.attention_dropout,
            ffn_d_hidden_multiplier=settings.ffn_d_hidden_multiplier,
            ffn_dropout=settings.ffn_dropout,
            residual_dropout=settings.residual_dropout,
        ))

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        tokens = [self.cls_token.expand(x_num.shape[0], 1, -1)]
        if self.num_tokens is not None:
            tokens.append(self.num_tokens(x_num[:, : self.n_numeric]))
        if self.cat_tokens is not None:
            tokens.append(self.cat_tokens(categorical_codes(x_num, x_cat, self.n_numeric)))
        return self.backbone(torch.cat(tokens, dim=1))
