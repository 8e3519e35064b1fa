"""Model architectures, registered by name and rebuilt from a plain input spec and settings.

Importing the package registers every model: ``mlp``, ``resnet``, ``ft_transformer``, ``tabm``.
"""

from .registry import MODELS, NUM_EMBEDDINGS, InputSpec, ModelSpec, create_model, model_settings, register_model, settings_help
from . import mlp, resnet, ft_transformer, tabm  # noqa: F401,E402  (each registers its model)

__all__ = ["MODELS", "InputSpec", "ModelSpec", "NUM_EMBEDDINGS", "create_model", "model_settings", "register_model", "settings_help"]
