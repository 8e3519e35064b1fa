"""``@register_model(name, settings_cls)`` and ``create_model(name, inputs, settings)`` (timm's pattern).

A model is built from two plain-data halves, both stored in the checkpoint:

- :class:`InputSpec`, what the prepared data gives every model: how many standardised numeric
  columns and 0/1 flag columns ``x_num`` holds, the cardinality of each integer-coded
  categorical column of ``x_cat``, the number of labels, and the numeric embedding with its
  data-fitted bins;
- the model's own settings, a dataclass each model declares next to its code (widths, depth,
  dropout, ...). Every field has a default and a ``help`` in its metadata: ``--help`` lists them,
  ``--model_args key=value,...`` and a config file's ``[model]`` table set them.

Every registered model is called as ``model(x_num, x_cat)``: ``x_num`` (B, n_numeric + n_flags)
float32, numeric columns first; ``x_cat`` (B, n_categorical) int64 codes (B, 0 when there are
none). It returns logits (B, n_labels), or (B, k, n_labels) for a model that is itself an
ensemble of k members (TabM): the loss is then applied to every member and the probabilities
are averaged over members.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from torch import nn

from imbalance.errors import UserError
from imbalance.registry import Registry

__all__ = [
    "MODELS",
    "NUM_EMBEDDINGS",
    "InputSpec",
    "ModelSpec",
    "register_model",
    "create_model",
    "model_settings",
    "settings_help",
    "setting",
    "check_at_least_one",
    "check_rates",
]

NUM_EMBEDDINGS = ("none", "piecewise_linear", "periodic")


@dataclass(frozen=True)
class InputSpec:
    """What the prepared data hands a model (plain data: stored in checkpoints)."""

    n_numeric: int  # standardised numeric columns: the first n_numeric columns of x_num
    n_flags: int  # 0/1 columns after them in x_num: yes/no features and missing indicators
    cardinalities: list[int]  # one per column of x_cat; its codes lie in [0, cardinality)
    n_labels: int
    num_embeddings: str = "none"  # none | piecewise_linear | periodic, for the numeric columns
    d_embedding: int = 16  # width of each numeric column's embedding
    bins: Optional[list[list[float]]] = None  # piecewise_linear: sorted bin edges per numeric column

    def __post_init__(self) -> None:
        if self.n_numeric < 0 or self.n_flags < 0 or self.n_labels < 1:
            raise ValueError(f"bad input spec: {self}")
        if self.n_numeric + self.n_flags + len(self.cardinalities) == 0:
            raise ValueError("a model needs at least one input column")
        if any(c < 1 for c in self.cardinalities):
            raise ValueError(f"cardinalities must be >= 1, got {self.cardinalities}")
        if self.num_embeddings not in NUM_EMBEDDINGS:
            raise ValueError(f"num_embeddings must be one of {', '.join(NUM_EMBEDDINGS)}, got {self.num_embeddings!r}")
        if self.num_embeddings == "piecewise_linear" and self.n_numeric and (self.bins is None or len(self.bins) != self.n_numeric):
            raise ValueError("piecewise_linear embeddings need bin edges for every numeric column")

    @property
    def embeds_numerics(self) -> bool:
        return self.num_embeddings != "none" and self.n_numeric > 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "InputSpec":
        return cls(**dict(values))


@dataclass(frozen=True)
class ModelSpec:
    settings_cls: type  # the model's own settings dataclass (every field has a default and a help)
    model_cls: type  # built as model_cls(inputs=InputSpec, settings=settings_cls instance)
    num_embeddings: str  # the numeric embedding this model uses unless --num_embeddings says otherwise
    summary: str  # one line for --help


MODELS: Registry[ModelSpec] = Registry("model")


def register_model(name: str, settings_cls: type, *, num_embeddings: str = "none", summary: str = "") -> Callable[[type], type]:
    """Class decorator registering ``model_cls(*, inputs, settings)`` under ``name``."""
    if num_embeddings not in NUM_EMBEDDINGS:
        raise ValueError(f"num_embeddings default must be one of {NUM_EMBEDDINGS}")

    def add(model_cls: type) -> type:
        doc = summary or (model_cls.__doc__ or name).strip().splitlines()[0]
        MODELS.register(name)(ModelSpec(settings_cls=settings_cls, model_cls=model_cls, num_embeddings=num_embeddings, summary=doc))
        return model_cls

    return add


def _coerce(name: str, key: str, hint: Any, value: Any) -> Any:
    """A setting's value with the field's type (ints may stand for floats); else a UserError."""
    origin = typing.get_origin(hint)
    if origin is typing.Union:  # Optional[X]: TOML has no null, so none / null stand for None
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    ok = False
    if origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]  # hidden_sizes=64 means [64]
        if isinstance(value, (list, tuple)):
            value = [_coerce(name, key, item, v) for v in value]
            ok = True
    elif hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        value, ok = float(value), True
    elif hint is bool:
        ok = isinstance(value, bool)
    elif hint in (int, str):
        ok = isinstance(value, hint) and not isinstance(value, bool)
    if not ok:
        expected = getattr(hint, "__name__", str(hint))
        raise UserError(f"model '{name}': setting '{key}' must be {expected}, got {value!r}")
    return value


def model_settings(name: str, values: Optional[Mapping[str, Any]] = None) -> Any:
    """The settings dataclass of model ``name`` with ``values`` over its defaults.

    Unknown keys, wrong types and out-of-range values fail in one line naming the setting and
    the valid ones.
    """
    spec = MODELS.get(name)
    values = dict(values or {})
    known = {f.name: f for f in dataclasses.fields(spec.settings_cls)}
    hints = typing.get_type_hints(spec.settings_cls)
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"model '{name}': unknown setting '{key}'{hint}; valid settings: {', '.join(known) or 'none'}")
    typed = {key: _coerce(name, key, hints[key], value) for key, value in values.items()}
    try:
        return spec.settings_cls(**typed)
    except (TypeError, ValueError) as exc:
        raise UserError(f"model '{name}': {exc}") from None


def create_model(name: str, *, inputs: "InputSpec | Mapping[str, Any]", settings: "Any | Mapping[str, Any]" = None) -> nn.Module:
    """Build a registered model from its input spec and settings (as stored in a checkpoint)."""
    spec = MODELS.get(name)
    if not isinstance(inputs, InputSpec):
        try:
            inputs = InputSpec.from_dict(inputs)
        except (TypeError, ValueError) as exc:
            raise UserError(f"model '{name}': bad input spec ({exc})") from None
    if not isinstance(settings, spec.settings_cls):
        settings = model_settings(name, settings)
    return spec.model_cls(inputs=inputs, settings=settings)


def settings_help() -> str:
    """Every registered model with its settings and their defaults (for ``--help``)."""
    lines = []
    for name in MODELS:
        spec = MODELS.get(name)
        lines.append(f"{name}: {spec.summary} (numeric embeddings by default: {spec.num_embeddings})")
        for f in dataclasses.fields(spec.settings_cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            lines.append(f"    {f.name}={default!r}  {f.metadata.get('help', '')}".rstrip())
    return "\n".join(lines)


def setting(default: Any, help: str) -> Any:
    """A model-settings field with its help text (lists get a fresh copy per instance)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def check_at_least_one(settings: Any, *names: str) -> None:
    """ValueError unless every named integer setting is >= 1 (None passes: the model's choice)."""
    for name in names:
        value = getattr(settings, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def check_rates(settings: Any, *names: str) -> None:
    """ValueError unless every named setting (a dropout rate) lies in [0, 1)."""
    for name in names:
        value = getattr(settings, name)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
