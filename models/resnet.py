"""ResNet for tabular rows (Gorishniy et al., "Revisiting Deep Learning Models for Tabular Data").

``rtdl_revisiting_models.ResNet`` over :class:`~models.inputs.FlatInput`: a linear projection to
``d_block``, then blocks of BatchNorm -> Linear -> ReLU -> Dropout -> Linear -> Dropout added to
their input, then BatchNorm -> ReLU -> Linear to one logit per label. The residual path lets it
go deeper than the MLP without losing the gradient; the paper found it a strong simple baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from rtdl_revisiting_models import ResNet as _RTDLResNet
from torch import nn

from .inputs import FlatInput
from .mlp import use_cpu_dropout
from .registry import InputSpec, check_at_least_one, check_rates, register_model, setting

__all__ = ["ResNet", "ResNetSettings", "DEFAULT_NUM_EMBEDDINGS"]

# Piecewise-linear embeddings help MLP-like backbones in the embeddings paper and in TabM's
# benchmarks, for about 1.3x the time per step.
DEFAULT_NUM_EMBEDDINGS = "piecewise_linear"


# Defaults sized for training on a 2-core CPU in a few times the MLP's time: two blocks of width
# 128 (the paper tunes 1-8 blocks of 64-1024) with a 2x hidden layer, hidden dropout 0.15 as a
# middle value of the paper's range and no residual dropout (the paper's tuned configurations
# mostly leave it at zero on small tables).
@dataclass(frozen=True)
class ResNetSettings:
    n_blocks: int = setting(2, "residual blocks (>= 1)")
    d_block: int = setting(128, "width of the residual stream (>= 1)")
    d_hidden_multiplier: float = setting(2.0, "hidden width of a block as a multiple of d_block (> 0)")
    dropout1: float = setting(0.15, "dropout inside each block, after its ReLU, in [0, 1)")
    dropout2: float = setting(0.0, "dropout on each block's output before it joins the residual stream, in [0, 1)")

    def __post_init__(self) -> None:
        check_at_least_one(self, "n_blocks", "d_block")
        if not self.d_hidden_multiplier > 0 or int(self.d_block * self.d_hidden_multiplier) < 1:
            raise ValueError(f"d_hidden_multiplier must be > 0 and leave a hidden width >= 1, got {self.d_hidden_multiplier}")
        check_rates(self, "dropout1", "dropout2")


@register_model("resnet", ResNetSettings, num_embeddings=DEFAULT_NUM_EMBEDDINGS,
                summary="ResNet (Gorishniy et al. 2021): residual blocks with batch norm over the flat input")
class ResNet(nn.Module):
    """One logit per label from the flat input through ``rtdl_revisiting_models.ResNet``."""

    def __init__(self, *, inputs: InputSpec, settings: ResNetSettings) -> None:
        super().__init__()
        self.input = FlatInput(inputs)
        self.resnet = use_cpu_dropout(_RTDLResNet(
            d_in=self.input.d_out,
            d_out=inputs.n_labels,
            n_blocks=settings.n_blocks,
            d_block=settings.d_block,
            d_hidden_multiplier=settings.d_hidden_multiplier,
            dropout1=settings.dropout1,
            dropout2=settings.dropout2,
        ))

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.resnet(self.input(x_num, x_cat))
