"""Training toolkit for neural classifiers on imbalanced binary and multi-label tabular outcomes.

Public names are imported lazily (PEP 562) so that ``import imbalance`` does no work and the
``models`` package can depend on ``imbalance.registry`` without an import cycle.
"""

from importlib import import_module
from typing import Any

__all__ = [
    "UserError",
    "Registry",
    "TrainConfig",
    "parse_config",
    "Predictor",
    "load_checkpoint",
    "make_demo_cohort",
    "ImbalanceClassifier",
]

_WHERE = {
    "UserError": "errors",
    "Registry": "registry",
    "TrainConfig": "config",
    "parse_config": "config",
    "Predictor": "inference",
    "load_checkpoint": "checkpoint",
    "make_demo_cohort": "demo",
    "ImbalanceClassifier": "estimator",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'imbalance' has no attribute {name!r}")
