"""``@register_model(name, config_cls)`` and ``create_model(name, **config)`` (timm's pattern)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from imbalance.errors import UserError
from imbalance.registry import Registry

__all__ = ["MODELS", "ModelSpec", "register_model", "create_model", "model_config_for"]


@dataclass(frozen=True)
class ModelSpec:
    config_cls: type
    model_cls: type


MODELS: Registry[ModelSpec] = Registry("model")


def register_model(name: str, config_cls: type) -> Callable[[type], type]:
    """Class decorator: the model is built as ``model_cls(**asdict(config_cls(...)))``."""

    def add(model_cls: type) -> type:
        MODELS.register(name)(ModelSpec(config_cls=config_cls, model_cls=model_cls))
        return model_cls

    return add


def create_model(name: str, **config: Any) -> nn.Module:
    """Build a registered model from its config values (as stored in a checkpoint)."""
    spec = MODELS.get(name)
    try:
        cfg = spec.config_cls(**config)
    except (TypeError, ValueError) as exc:
        raise UserError(f"model '{name}': bad config {config!r} ({exc})") from None
    return spec.model_cls(**dataclasses.asdict(cfg))


def model_config_for(name: str, *, in_features: int, out_features: int, source: Any) -> dict[str, Any]:
    """The model's config: its fields taken from ``source`` (e.g. a TrainConfig) by name."""
    spec = MODELS.get(name)
    values: dict[str, Any] = {"in_features": in_features, "out_features": out_features}
    for f in dataclasses.fields(spec.config_cls):
        if f.name not in values and hasattr(source, f.name):
            value = getattr(source, f.name)
            values[f.name] = list(value) if isinstance(value, (list, tuple)) else value
    return dataclasses.asdict(spec.config_cls(**values))
