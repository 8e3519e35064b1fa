"""Training losses on logits, numerically stable in float32 and under autocast.

Every loss casts logits to float32 first and works in log-space (``logsigmoid``), so logits of
+-100 give finite values and gradients. All return the mean over rows and labels.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Registry

__all__ = ["LOSSES", "build_loss", "focal_alpha_from_weights", "ElementwiseLoss", "BCELoss", "WeightedBCELoss",
           "LogitAdjustedBCELoss", "FocalLoss"]

LossBuilder = Callable[..., "ElementwiseLoss"]
LOSSES: Registry[LossBuilder] = Registry("loss")


def focal_alpha_from_weights(class_weights: torch.Tensor) -> torch.Tensor:
    """alpha = w / (1 + w): the positive:negative weight ratio alpha/(1-alpha) equals w.

    With no class weights (w = 1) this gives 0.5, an unweighted focal loss.
    """
    return class_weights / (1.0 + class_weights)


class ElementwiseLoss(nn.Module):
    """A loss defined per (row, label): ``elementwise`` gives that matrix, ``forward`` its mean.

    The training loop uses ``elementwise`` to report each label's loss at no extra cost.
    """

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.elementwise(logits, targets).mean()

    def positive_weight(self, n_labels: int) -> torch.Tensor:
        """(L,) how many negatives a positive counts as: the factor by which this loss moves a
        positive's odds (the ``prior`` calibration undoes it). 1 unless the loss weighs positives."""
        return torch.ones(n_labels)


class BCELoss(ElementwiseLoss):
    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")


class WeightedBCELoss(ElementwiseLoss):
    """BCE with the class weights as ``pos_weight``: a positive counts w times a negative."""

    def __init__(self, *, pos_weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("pos_weight", pos_weight.detach().float().clone())

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), pos_weight=self.pos_weight, reduction="none")

    def positive_weight(self, n_labels: int) -> torch.Tensor:
        return self.pos_weight.detach().cpu().expand(n_labels).clone()


class LogitAdjustedBCELoss(ElementwiseLoss):
    """BCE on the logits minus log(w) (logit adjustment, Menon et al., 2021): the model learns
    logit(p) + log(w), the same odds shift as ``weighted_bce`` with ``pos_weight = w`` at the
    optimum (a positive counts w times a negative in the decisions), while every row keeps its
    own weight in the loss. Under heavy weights the weighted loss leaves the negatives a small
    share of it (x 25 on a half-positive mix: 1/26) and the network learns little about which
    negatives look like positives; here they keep theirs."""

    def __init__(self, *, pos_weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("log_weight", torch.log(pos_weight.detach().float().clone()))

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float() - self.log_weight, targets.float(), reduction="none")

    def positive_weight(self, n_labels: int) -> torch.Tensor:
        return torch.exp(self.log_weight.detach().cpu()).expand(n_labels).clone()


class FocalLoss(ElementwiseLoss):
    """Focal loss (Lin et al., 2017) per label:

        -alpha * y * (1 - p)^gamma * log(p) - (1 - alpha) * (1 - y) * p^gamma * log(1 - p)

    The modulating factors are exp(gamma * logsigmoid(.)), so gamma = 0 and saturated logits
    stay finite (a plain ``pow`` has an infinite gradient at 0 for gamma < 1).
    """

    def __init__(self, *, gamma: float, alpha: torch.Tensor) -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.register_buffer("alpha", alpha.detach().float().clone())

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        z = logits.float()
        y = targets.float()
        log_p = F.logsigmoid(z)
        log_not_p = F.logsigmoid(-z)
        pos = -self.alpha * y * torch.exp(self.gamma * log_not_p) * log_p
        neg = -(1.0 - self.alpha) * (1.0 - y) * torch.exp(self.gamma * log_p) * log_not_p
        return pos + neg

    def positive_weight(self, n_labels: int) -> torch.Tensor:
        # alpha / (1 - alpha); the focusing term changes the optimum's shape, not this ratio
        alpha = self.alpha.detach().cpu().expand(n_labels)
        return alpha / (1.0 - alpha)


@LOSSES.register("bce")
def _bce(**_: object) -> ElementwiseLoss:
    return BCELoss()


@LOSSES.register("weighted_bce")
def _weighted_bce(*, class_weights: torch.Tensor, **_: object) -> ElementwiseLoss:
    return WeightedBCELoss(pos_weight=class_weights)


@LOSSES.register("logit_adjusted")
def _logit_adjusted(*, class_weights: torch.Tensor, **_: object) -> ElementwiseLoss:
    return LogitAdjustedBCELoss(pos_weight=class_weights)


@LOSSES.register("focal")
def _focal(*, class_weights: torch.Tensor, focal_gamma: float = 2.0, focal_alpha: Optional[float] = None, **_: object) -> ElementwiseLoss:
    if focal_alpha is None:
        alpha = focal_alpha_from_weights(class_weights.float())
    else:
        alpha = torch.full_like(class_weights, float(focal_alpha), dtype=torch.float32)
    return FocalLoss(gamma=focal_gamma, alpha=alpha)


def build_loss(
    name: str, *, class_weights: torch.Tensor, focal_gamma: float = 2.0, focal_alpha: Optional[float] = None
) -> ElementwiseLoss:
    """The registered loss ``name``; ``class_weights`` is the (L,) positive weight per label."""
    return LOSSES.get(name)(class_weights=class_weights, focal_gamma=focal_gamma, focal_alpha=focal_alpha)
