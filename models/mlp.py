"""A multilayer perceptron for tabular features: Linear -> [norm] -> ReLU -> Dropout, repeated."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .registry import register_model

__all__ = ["MLP", "MLPConfig"]

_NORMS = {"none": None, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}


@dataclass
class MLPConfig:
    in_features: int
    out_features: int
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 32])
    dropout: float = 0.3
    norm: str = "none"

    def __post_init__(self) -> None:
        if self.norm not in _NORMS:
            raise ValueError(f"norm must be one of {sorted(_NORMS)}, got {self.norm!r}")
        if self.in_features < 1 or self.out_features < 1:
            raise ValueError("in_features and out_features must be >= 1")


@register_model("mlp", MLPConfig)
class MLP(nn.Module):
    """Outputs one logit per label; the sigmoid is applied by the loss and at inference."""

    def __init__(
        self, *, in_features: int, out_features: int, hidden_sizes: list[int], dropout: float = 0.3, norm: str = "none"
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for hidden in hidden_sizes:
            layers.append(nn.Linear(width, hidden))
            norm_cls = _NORMS[norm]
            if norm_cls is not None:
                layers.append(norm_cls(hidden))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
