"""Model architectures, registered by name and rebuilt from a plain config dict."""

from .registry import MODELS, ModelSpec, create_model, model_config_for, register_model
from . import mlp  # noqa: F401  (registers "mlp")

__all__ = ["MODELS", "ModelSpec", "create_model", "model_config_for", "register_model"]
