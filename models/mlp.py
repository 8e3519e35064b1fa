"""A multilayer perceptron for tabular rows: Linear -> [norm] -> ReLU -> Dropout, repeated, then a linear head.

The project's first model and the baseline the others are timed against. Its input is
:class:`~models.inputs.FlatInput`: numeric columns (optionally embedded), flags and one-hot
categorical columns side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .inputs import FlatInput
from .registry import InputSpec, check_rates, register_model, setting

__all__ = ["MLP", "MLPSettings", "Dropout", "use_cpu_dropout"]

_NORMS = {"none": None, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper mask on the CPU.

    PyTorch's CPU dropout draws its mask with ``bernoulli_``, which costs more than the rest of
    a training step of a small MLP at large batches (measured ~60% of a batch-4096 step on 2
    cores). A uniform draw compared with ``p`` gives the same Bernoulli(1 - p) keep mask, and
    the kept units are scaled by 1 / (1 - p) as in ``nn.Dropout``. On other devices, in
    evaluation mode, and in place, it is ``nn.Dropout`` unchanged (CUDA's kernel is fused).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        if self.p == 1.0:
            return x * 0.0
        keep = torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        return x * keep


def use_cpu_dropout(module: nn.Module) -> nn.Module:
    """Swap every plain ``nn.Dropout`` inside ``module`` (a library model) for :class:`Dropout`.

    Same rate, same behaviour, no parameters, so the state_dict is unchanged.
    """
    for parent in module.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, Dropout(child.p, inplace=child.inplace))
    return module


@dataclass(frozen=True)
class MLPSettings:
    hidden_sizes: list[int] = setting([64, 32], "width of each hidden layer, first to last ([] makes a linear model)")
    dropout: float = setting(0.3, "dropout after each hidden layer, in [0, 1)")
    norm: str = setting("none", "normalisation after each hidden linear layer: none | batch | layer")

    def __post_init__(self) -> None:
        if any(h < 1 for h in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must all be >= 1, got {self.hidden_sizes}")
        check_rates(self, "dropout")
        if self.norm not in _NORMS:
            raise ValueError(f"norm must be one of {', '.join(_NORMS)}, got {self.norm!r}")


@register_model("mlp", MLPSettings, num_embeddings="none", summary="multilayer perceptron: Linear -> [norm] -> ReLU -> Dropout per hidden layer")
class MLP(nn.Module):
    """Outputs one logit per label; the sigmoid is applied by the loss and at inference."""

    def __init__(self, *, inputs: InputSpec, settings: MLPSettings) -> None:
        super().__init__()
        self.input = FlatInput(inputs)
        layers: list[nn.Module] = []
        width = self.input.d_out
        norm_cls = _NORMS[settings.norm]
        for hidden in settings.hidden_sizes:
            layers.append(nn.Linear(width, hidden))
            if norm_cls is not None:
                layers.append(norm_cls(hidden))
            layers.append(nn.ReLU())
            if settings.dropout > 0:
                layers.append(Dropout(settings.dropout))
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, inputs.n_labels)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.input(x_num, x_cat)))
